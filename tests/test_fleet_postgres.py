"""The fleet's tests (test_fleet.py) on PostgreSQL, where a fleet's workers share a database:
each test gets a database of its own (conftest's fresh_database)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from receivers import CountingReceiver, Log, serving
from test_fleet import *  # noqa: F403 (the fleet's tests run here, on PostgreSQL)
from test_fleet import finish, open_store, queue, start_worker


@pytest.fixture()
def where(fresh_database: str) -> str:
    """The fleet's state: a PostgreSQL database."""
    return fresh_database


def test_a_worker_whose_clock_runs_ahead_leaves_a_live_lease_alone(where: str) -> None:
    """Its machine's clock 25 s ahead (more than a lease's 20 s): by that clock the lease
    of a live worker would have passed and it would take the site (and the notifications in
    flight) over. By the state's clock, which it reads the time from, the lease holds."""
    from datetime import UTC, datetime, timedelta

    from test_fleet import open_store

    from wpnotify.state.clock import StateClock

    store = open_store(where)
    now = datetime.now(UTC)
    assert store.take_site("blog", "live:1:1", now, now + timedelta(seconds=20))

    def ahead() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=25)

    rival = open_store(where)
    clock = StateClock(rival, local=ahead)
    assert abs(clock() - datetime.now(UTC)) < timedelta(seconds=1)
    assert not rival.take_site("blog", "fast:2:2", clock(), clock() + timedelta(seconds=20))
    assert rival.take_site("blog", "fast:2:2", ahead(), ahead() + timedelta(seconds=20))


class GatedReceiver(CountingReceiver):
    """Answers after ``delay`` seconds, each request first waiting for ``gate``."""

    def __init__(self, log: Log, delay: float) -> None:
        super().__init__(log)
        self.gate, self.wait_after = threading.Event(), delay

    @property  # type: ignore[override]  # read by the handler before each answer
    def delay(self) -> float:
        self.gate.wait(60)
        return self.wait_after

    @delay.setter
    def delay(self, value: float) -> None:
        pass


def test_a_worker_waiting_for_room_is_told_when_another_leaves_it(
        where: str, log: Log, tmp_path: Path) -> None:
    """The second worker's posts wait behind the first's requests to the one host they
    share (one at a time: the first's held until the second waits); once the first has
    sent its own, the second is told at once (LISTEN and NOTIFY), not at its next look,
    set here to a minute: a wait that ran out would show. Each goes once, one at a time."""
    waits = tmp_path / "second-waits"
    with serving(GatedReceiver(log, delay=0.1)) as host:
        store = open_store(where)
        for post in range(8):
            queue(store, post, host.url(f"/r/{post}"))
        first = start_worker(where, 4, 1, "--posts=0,1,2,3", "--others-wait=60")
        deadline = time.monotonic() + 30
        while not store.in_flight(datetime.now(UTC)) and time.monotonic() < deadline:
            time.sleep(0.02)
        second = start_worker(where, 4, 1, "--posts=4,5,6,7", "--others-wait=60",
                              f"--mark-wait={waits}")
        while not waits.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        host.gate.set()
        tallies = [finish(first), finish(second)]
    assert waits.exists()
    assert sum(t["sent"] for t in tallies) == 8
    assert tallies[1]["told"] >= 1 and tallies[1]["waited_out"] == 0
    assert sorted(int(target.rsplit("/", 1)[1]) for _, target, _ in log.pings) == list(range(8))
    assert max(log.peak.values()) == 1


def test_a_run_that_ends_with_an_error_stops_listening(where: str, log: Log) -> None:
    """The run's first claim listens for room; its second claim fails (a StateError, as a
    full disk or a lost server gives): the run ends, and the connection no longer listens,
    so what other workers tell meanwhile does not pile up in psycopg's backlog."""
    from wpnotify.errors import StateError
    from wpnotify.http import Http
    from wpnotify.sending.dispatch import Dispatcher
    from wpnotify.settings import HttpSettings, Settings, SiteSettings

    settings = Settings(
        sites=(SiteSettings(name="s", url="https://s.example", username="u", password="p"),),
        http=HttpSettings(allowed_networks=("127.0.0.1/32",), timeout=10, concurrency=4,
                          per_host_concurrency=1))
    with serving(CountingReceiver(log)) as host:
        store = open_store(where)
        for post in range(2):  # one host, one at a time: two claims
            queue(store, post, host.url(f"/r/{post}"))
        claim_view = store.claim_view
        calls: list[int] = []

        def failing(*args: object) -> object:
            calls.append(1)
            if len(calls) > 1:
                raise StateError("cannot write state database: disk full")
            return claim_view(*args)  # type: ignore[arg-type]
        store.claim_view = failing  # type: ignore[method-assign]
        http = Http(settings.http)
        with pytest.raises(StateError):
            Dispatcher(settings, store, http, {}, lambda: datetime.now(UTC)).deliver(["s"])
        http.close()
    other = open_store(where)
    for _ in range(20):
        with other.claiming():
            other.room_freed()
    for _ in range(20):
        store.in_flight(datetime.now(UTC))  # a heartbeat's, the metrics' reads
    conn = store.conn  # type: ignore[attr-defined]
    listening = [row[0] for row in conn.execute("SELECT pg_listening_channels()")]
    assert (listening, len(conn._notifies_backlog)) == ([], 0)


def test_a_worker_waiting_for_room_stops_waiting_when_asked_to_stop(
        where: str, log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its one host is full of another worker's request; while it waits for room, the
    daemon is asked to stop: the run ends then, not once room is freed (which a helper
    does only if the run has not ended 10 s after the stop)."""
    import threading
    from datetime import timedelta

    import psycopg

    from wpnotify.http import Http
    from wpnotify.sending import dispatch
    from wpnotify.sending.dispatch import Dispatcher
    from wpnotify.settings import HttpSettings, Settings, SiteSettings

    monkeypatch.setattr(dispatch, "OTHERS_WAIT", 30.0)  # a crowded worker's long pause
    settings = Settings(
        sites=(SiteSettings(name="s", url="https://s.example", username="u", password="p"),),
        http=HttpSettings(allowed_networks=("127.0.0.1/32",), timeout=10, concurrency=4,
                          per_host_concurrency=1))
    with serving(CountingReceiver(log)) as host:
        store, other = open_store(where), open_store(where)
        for post in range(2):
            queue(store, post, host.url(f"/r/{post}"))
        now = datetime.now(UTC)
        with other.claiming():  # the second, in flight at another worker's
            other.claim_with_kinds([2], now, now + timedelta(hours=1))
        with psycopg.connect(where, autocommit=True) as db:
            db.execute("UPDATE notifications SET claimed_by = 'elsewhere:1:1' WHERE id = 2")
        stop, entered, done = threading.Event(), threading.Event(), threading.Event()
        order: list[str] = []
        wait_for_room = store.wait_for_room

        def waiting(*args: Any, **kwargs: Any) -> bool:
            entered.set()
            return wait_for_room(*args, **kwargs)
        store.wait_for_room = waiting  # type: ignore[method-assign]

        def stopper() -> None:
            if entered.wait(30):
                stop.set()
                if not done.wait(10):
                    order.append("freed")
                    with other.claiming():
                        other.room_freed()
        helper = threading.Thread(target=stopper)
        helper.start()
        http = Http(settings.http)
        tally = Dispatcher(settings, store, http, {}, lambda: datetime.now(UTC),
                           sleep=stop.wait, stopping=stop.is_set).deliver(["s"])
        order.append("returned")
        done.set()
        helper.join()
        http.close()
    assert entered.is_set() and tally.sent == 0
    assert order == ["returned"]


def test_a_worker_with_its_own_request_in_flight_is_told_of_room_too(
        where: str, log: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    """One notification to a slow host (its answer held back), one to a host where another
    worker's request fills the one slot. That worker records its outcome and tells: the
    second goes then, while the first is still in flight (the worker's own look at what
    finished set here to a minute: a look that came only then would show)."""
    from datetime import timedelta

    import psycopg

    from wpnotify.attempt import host_of
    from wpnotify.http import Http
    from wpnotify.sending import dispatch
    from wpnotify.sending.dispatch import Dispatcher
    from wpnotify.settings import HttpSettings, Settings, SiteSettings

    monkeypatch.setattr(dispatch, "COLLECT_WAIT", 60.0)
    settings = Settings(
        sites=(SiteSettings(name="s", url="https://s.example", username="u", password="p"),),
        http=HttpSettings(allowed_networks=("127.0.0.1/32",), timeout=30, concurrency=4,
                          per_host_concurrency=1))
    with serving(GatedReceiver(log, delay=0.0)) as slow, \
            serving(CountingReceiver(log)) as free:
        store, other = open_store(where), open_store(where)
        queue(store, 0, slow.url("/slow/0"))
        queue(store, 1, free.url("/free/1"))
        queue(store, 2, free.url("/free/2"))
        elsewhere = next(r.id for r in store.history() if r.target.endswith("/free/2"))
        now = datetime.now(UTC)
        with other.claiming():  # in flight at another worker's
            other.claim_with_kinds([elsewhere], now, now + timedelta(hours=1))
        with psycopg.connect(where, autocommit=True) as db:
            db.execute("UPDATE notifications SET claimed_by = 'elsewhere:1:1' WHERE id = %s",
                       (elsewhere,))
        order: list[str] = []

        def arrived(port: str) -> bool:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if any(event[0] == port for event in list(log.events)):
                    return True
                time.sleep(0.02)
            return False

        def helper() -> None:
            if arrived(slow.port):  # this worker's own request, in flight
                with psycopg.connect(where, autocommit=True) as db:
                    db.execute("UPDATE notifications SET status = 'sent' WHERE id = %s",
                               (elsewhere,))
                with other.claiming():
                    other.room_freed({host_of(free.url("/"))})
                order.append("told" if arrived(free.port) else "not told")
            slow.gate.set()
        thread = threading.Thread(target=helper)
        thread.start()
        http = Http(settings.http)
        tally = Dispatcher(settings, store, http, {},
                           lambda: datetime.now(UTC)).deliver(["s"])
        thread.join()
        http.close()
    assert tally.sent == 2
    assert order == ["told"]
