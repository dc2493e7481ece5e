"""The time as the state's clock has it: workers on several machines write times into one
database (leases, holds, retry times) and compare them with each other's, so they must all
read one clock. Each keeps its own, corrected by the offset of the database server's clock,
measured when it starts and again at each heartbeat: one clock for the fleet, whatever NTP
does on each machine. A SQLite file is one machine's: there the offset is zero."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from wpnotify.errors import StateError

SKEW_WARNING = timedelta(seconds=2)  # an offset worth telling the operator about


class HasClock(Protocol):
    def server_time(self) -> datetime | None: ...


def local_now() -> datetime:
    return datetime.now(UTC)


class StateClock:
    """``clock()``: this machine's time plus the state's offset (see the module)."""

    def __init__(self, store: HasClock, local: Callable[[], datetime] = local_now) -> None:
        self.store = store
        self.local = local
        self.offset = timedelta(0)
        self._warned = False
        self.sync()

    def sync(self) -> None:
        """Measures the offset again: the server's time against this machine's at the middle
        of the round trip (within half of it: a fraction of a millisecond nearby). One that
        cannot be read keeps the last."""
        before = self.local()
        try:
            server = self.store.server_time()
        except StateError:
            return  # the command's next use of the state says what is wrong
        if server is None:
            return  # one machine's file: its clock is this one
        after = self.local()
        offset = server - (before + (after - before) / 2)
        if abs(offset) > SKEW_WARNING and not self._warned:
            import structlog  # only when there is something to say (start-up time)

            structlog.get_logger("wpnotify.clock").warning(
                "clock.skew", seconds=round(offset.total_seconds(), 3),
                detail="this machine's clock differs from the database server's; wpnotify "
                       "times leases, holds and retries by the server's, but keep the "
                       "clocks in sync (NTP, chrony or systemd-timesyncd)")
            self._warned = True
        self.offset = offset

    def __call__(self) -> datetime:
        return self.local() + self.offset
