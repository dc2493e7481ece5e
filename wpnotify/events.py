"""What happened, for whoever watches: the metrics, systemd's watchdog, ``/healthz``.

The sending and the daemon report through ``Events`` and know nothing of who listens; they are
handed ``NO_EVENTS`` unless a watcher is configured. Every implementation must be cheap and
thread-safe (the sender's threads call it) and must never raise into its caller.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Events(Protocol):
    """Things worth counting or watching, as they happen."""

    def attempt(self, kind: str, outcome: str, seconds: float) -> None:
        """One send attempt ended: its kind (as sent), its outcome's status, how long it took."""
        ...

    def takeover(self, count: int) -> None:
        """``count`` notifications were taken over from a dead worker or an expired lease."""
        ...

    def polled(self, site: str, ok: bool, at: datetime) -> None:
        """A site's poll ended, read (``ok``) or not, at ``at`` (aware UTC)."""
        ...

    def judged(self, site: str, verdict: str, action: str) -> None:
        """A received ping was judged (``verdict``) or acted on (``action``, "none" when
        nothing was done)."""
        ...

    def alive(self) -> None:
        """The loop that would stall made progress (the watchdog's and /healthz's signal)."""
        ...


class NoEvents:
    """Listens to nothing: what a service has when nobody watches."""

    def attempt(self, kind: str, outcome: str, seconds: float) -> None:
        pass

    def takeover(self, count: int) -> None:
        pass

    def polled(self, site: str, ok: bool, at: datetime) -> None:
        pass

    def judged(self, site: str, verdict: str, action: str) -> None:
        pass

    def alive(self) -> None:
        pass


NO_EVENTS: Events = NoEvents()


class Fanout:
    """Hands each event to every listener added, in order. Listeners are added while the
    daemon starts, before the threads that report run; a list swapped whole (never changed in
    place) keeps a report that races an ``add`` safe."""

    def __init__(self, *listeners: Events) -> None:
        self._listeners: tuple[Events, ...] = tuple(listeners)

    def add(self, listener: Events) -> None:
        self._listeners = (*self._listeners, listener)

    def attempt(self, kind: str, outcome: str, seconds: float) -> None:
        for listener in self._listeners:
            listener.attempt(kind, outcome, seconds)

    def takeover(self, count: int) -> None:
        for listener in self._listeners:
            listener.takeover(count)

    def polled(self, site: str, ok: bool, at: datetime) -> None:
        for listener in self._listeners:
            listener.polled(site, ok, at)

    def judged(self, site: str, verdict: str, action: str) -> None:
        for listener in self._listeners:
            listener.judged(site, verdict, action)

    def alive(self) -> None:
        for listener in self._listeners:
            listener.alive()
