"""systemd's notify protocol, as much as the daemon needs: READY, STATUS, STOPPING and the
watchdog's pings, each a datagram to ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract
socket). Without ``$NOTIFY_SOCKET`` (not under systemd, or ``Type=simple``) it does nothing.

A failure to notify is logged once and never raised: the daemon's work matters more than its
supervisor's news (and systemd's watchdog then restarts it, which is the right outcome).

The watchdog is fed only from ``alive()``, which the loop that would stall calls (the sender's
passes, the daemon's jobs): never from a thread of its own, which would go on pinging while
the work it vouches for is wedged.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

import structlog

from wpnotify.events import NoEvents

log = structlog.get_logger("wpnotify.systemd")


def _address(value: str) -> str | None:
    """``$NOTIFY_SOCKET`` as ``socket.sendto`` takes it: ``@name`` is the abstract ``\\0name``."""
    if value.startswith("@"):
        return "\0" + value[1:]
    return value if value.startswith("/") else None


def watchdog_seconds(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog's timeout when it applies to this process (``$WATCHDOG_PID`` unset or
    ours), else None."""
    usec, for_pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if for_pid and for_pid != str(pid):
        return None
    try:
        seconds = int(usec) / 1_000_000
    except ValueError:
        return None
    return seconds if seconds > 0 else None


class Notifier(NoEvents):
    """Tells systemd how the daemon is doing. Thread-safe; an ``Events`` listener whose
    ``alive()`` feeds the watchdog, at most every half of its timeout."""

    def __init__(self, environ: Mapping[str, str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._to = _address(environ.get("NOTIFY_SOCKET", ""))
        self.watchdog = watchdog_seconds(environ, os.getpid()) if self._to else None
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ping: float | None = None
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._to is not None

    def send(self, *lines: str) -> bool:
        """Sends ``KEY=value`` lines as one datagram; False (logged once) if it could not."""
        if self._to is None:
            return False
        message = "\n".join(lines).encode("utf-8", "replace")
        try:
            with self._lock:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self._sock.setblocking(False)  # systemd reads fast; never wait on it
                self._sock.sendto(message, self._to)
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.warning("systemd.notify_failed", error=exc.strerror or str(exc),
                            detail="systemd is not told how the daemon is doing; it goes on")
            return False
        return True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    # --- Events: only alive() matters here -------------------------------------------------

    def alive(self) -> None:
        """A ping, unless one went less than half the watchdog's timeout ago."""
        if self.watchdog is None:
            return
        now = self._clock()
        with self._lock:
            if self._last_ping is not None and now - self._last_ping < self.watchdog / 2:
                return
            self._last_ping = now
        self.send("WATCHDOG=1")

