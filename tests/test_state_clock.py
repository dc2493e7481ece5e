"""One clock for the fleet: the state's (see wpnotify/state/clock.py). Workers on machines
whose clocks disagree write and compare times in one database; each corrects its own by the
server's offset, measured at start and at each heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog

from wpnotify.errors import StateError
from wpnotify.state.clock import StateClock

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class Server:
    """A state whose server clock runs ``ahead`` of the machine's; or fails, or is a file."""

    def __init__(self, ahead: timedelta | None, local: list[datetime]) -> None:
        self.ahead, self.local, self.fail = ahead, local, False

    def server_time(self) -> datetime | None:
        if self.fail:
            raise StateError("cannot read state database postgresql://u@h/db: gone")
        self.local[0] += timedelta(milliseconds=2)  # the round trip takes 2 ms each way
        now = None if self.ahead is None else self.local[0] + self.ahead
        self.local[0] += timedelta(milliseconds=2)
        return now


def machine(at: datetime) -> tuple[list[datetime], StateClock, Server]:
    local = [at]
    server = Server(timedelta(seconds=25), local)
    return local, StateClock(server, local=lambda: local[0]), server


def test_a_machine_behind_the_server_reads_the_servers_time() -> None:
    local, clock, _ = machine(T0)
    assert clock.offset == timedelta(seconds=25)  # midpoint of the round trip: exact here
    assert clock() == local[0] + timedelta(seconds=25)


def test_two_machines_whose_clocks_disagree_agree_through_the_server() -> None:
    """The machines' clocks are 40 s apart; the times they write and compare are not."""
    ahead, behind = [T0 + timedelta(seconds=20)], [T0 - timedelta(seconds=20)]
    true = [T0]

    class Shared:
        def server_time(self) -> datetime:
            return true[0]

    first = StateClock(Shared(), local=lambda: ahead[0])
    second = StateClock(Shared(), local=lambda: behind[0])
    assert first() == second() == T0


def test_a_skew_is_told_once_and_an_unreadable_server_keeps_the_last_offset() -> None:
    with structlog.testing.capture_logs() as logs:
        local, clock, server = machine(T0)
        clock.sync()
    assert [e["event"] for e in logs] == ["clock.skew"]
    assert logs[0]["seconds"] == 25.0 and "NTP" in logs[0]["detail"]
    server.fail = True
    clock.sync()
    assert clock.offset == timedelta(seconds=25)


def test_a_file_has_no_offset_and_a_small_one_says_nothing() -> None:
    local = [T0]
    with structlog.testing.capture_logs() as logs:
        file_clock = StateClock(Server(None, local), local=lambda: local[0])
        near = StateClock(Server(timedelta(milliseconds=300), local), local=lambda: local[0])
    assert file_clock.offset == timedelta(0) and file_clock() == local[0]
    assert near.offset == timedelta(milliseconds=300)
    assert logs == []
