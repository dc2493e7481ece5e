"""The one error family. Every error a user can cause or fix is a WpnotifyError with a message
that names the problem and the fix; the CLI turns it into one line and an exit code."""

from __future__ import annotations


class WpnotifyError(Exception):
    """Base of every error wpnotify raises on purpose."""

    exit_code = 1


class ConfigError(WpnotifyError):
    """The configuration is missing or invalid."""

    exit_code = 2


class StateError(WpnotifyError):
    """The state (its SQLite file or PostgreSQL database) cannot be opened, read or
    written."""


class SourceError(WpnotifyError):
    """A watched WordPress site could not be read (down, bad credentials, not WordPress)."""


class PostGone(SourceError):
    """The post asked about no longer exists on the site (deleted for good): there is
    nothing left to record on it, which is no failure of the site."""


class BridgeTooOld(SourceError):
    """The site's bridge has no route for this (a version before the one that added it):
    asking again will not help until the bridge is updated."""


class SendError(WpnotifyError):
    """One notification could not be delivered.

    ``code`` is stable (it lands in the history and in logs); ``permanent`` says whether trying
    again can help; ``skip`` marks outcomes that are no failure of the receiver (no endpoint,
    an address we refuse to contact), recorded as ``skipped``. The retry policy reads only these.
    ``unreachable``: no connection to the host could be made at all (refused, no route, connect
    timeout), so its other notifications wait too instead of each trying.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        permanent: bool,
        skip: bool = False,
        endpoint: str | None = None,
        retry_after: float | None = None,
        unreachable: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.permanent = permanent or skip
        self.skip = skip
        self.endpoint = endpoint
        self.retry_after = retry_after
        self.unreachable = unreachable

    def with_endpoint(self, endpoint: str) -> SendError:
        """The same error, tagged with the endpoint it happened at (if it had none yet)."""
        if self.endpoint is None:
            self.endpoint = endpoint
        return self
