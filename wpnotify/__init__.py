"""wpnotify: sends the trackbacks and pingbacks of a WordPress site, once each, on the record."""

__version__ = "0.1.0"
