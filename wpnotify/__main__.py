"""``python -m wpnotify``."""

from wpnotify.cli import main

main()
