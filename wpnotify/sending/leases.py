"""Leases: how workers sharing one state keep what they hold, and lose it when they stop.

A worker's claims and site polls are leased until a time its heartbeat moves on every third
of ``worker_lease``, each time to two thirds of it ahead. A worker that is killed (or cut off
from the database) stops renewing; its leases pass within two thirds of ``worker_lease``, and
another worker, looking every third of it, takes its work over: within ``worker_lease`` of the
kill, whatever machine it ran on. (On the same machine a dead process is seen at once.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from types import TracebackType

import structlog

from wpnotify.errors import StateError
from wpnotify.state import Fleet
from wpnotify.state.clock import StateClock
from wpnotify.state.processes import this_process

log = structlog.get_logger("wpnotify.leases")


def lease_span(worker_lease: float) -> timedelta:
    """How far ahead a claim or a renewal sets a lease."""
    return timedelta(seconds=worker_lease * 2 / 3)


def renew_every(worker_lease: float) -> float:
    """Seconds between two heartbeats (and between two looks for expired leases)."""
    return worker_lease / 3


class Heartbeat:
    """Keeps this process's leases alive while it works: joins the workers, renews every
    ``renew_every`` seconds on a thread of its own, and leaves on exit (its sites are then
    free at once). Re-entrant: only the outermost ``with`` joins and leaves."""

    def __init__(self, store: Fleet, worker_lease: float,
                 clock: Callable[[], datetime]) -> None:
        self.store = store
        self.worker = this_process()
        self.span = lease_span(worker_lease)
        self.every = renew_every(worker_lease)
        self.clock = clock
        self.held: list[str] = []  # the sites this worker polls, as of its last heartbeat
        self.daemon = False  # takes its share of the sites' polls (set before entering)
        self._depth = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def working(self) -> bool:
        """Entered (and not left) at least once."""
        return self._depth > 0

    def __enter__(self) -> Heartbeat:
        self._depth += 1
        if self._depth == 1:
            self.store.join(self.worker, self.clock(), daemon=self.daemon)
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="wpnotify-heartbeat",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._depth -= 1
        if self._depth:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            self.store.leave(self.worker)
        except StateError as error:  # the state is gone: the leases pass on their own
            log.warning("worker.leave_failed", error=str(error))

    def beat(self) -> list[str]:
        """One renewal, now (the state's clock measured again first, when it is one);
        returns the sites still held."""
        if isinstance(self.clock, StateClock):
            self.clock.sync()
        now = self.clock()
        self.held = self.store.renew(self.worker, now, now + self.span, daemon=self.daemon)
        return self.held

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.every):
            try:
                self.beat()
            # Any error, not only the state's: a thread that died would leave the worker
            # working on, its leases passing, and another worker sending what it sends.
            except Exception as error:  # noqa: BLE001 (the heartbeat must outlive a bug)
                if not failing:  # once per outage, not every few seconds
                    log.error("worker.heartbeat_failed",
                              error=str(error) if isinstance(error, StateError)
                              else f"{type(error).__name__}: {error}",
                              detail="leases not renewed: once they pass, other workers "
                                     "take this one's work over")
                failing = True
                continue
            if failing:
                log.info("worker.heartbeat_recovered")
            failing = False
