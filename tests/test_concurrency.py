"""Concurrent sending against local receivers: the global and per-host limits hold, a slow
host does not hold up the others, a page is fetched once per cycle, an unreachable host's queue
waits without a try each, and WordPress learns what was sent in one request per batch.
No timing assertions: receivers record what happened, in order."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from receivers import CountingReceiver as Receiver
from receivers import Log, serving_all

from wpnotify.http import Http
from wpnotify.sending.dispatch import Dispatcher
from wpnotify.settings import HttpSettings, Settings, SiteSettings
from wpnotify.state.sqlite import SqliteState

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture()
def log() -> Log:
    return Log()


@pytest.fixture()
def receivers(log: Log) -> Iterator[list[Receiver]]:
    with serving_all([Receiver(log, delay=0.05) for _ in range(3)]
                     + [Receiver(log, delay=3.0)]) as servers:
        yield servers


class FakeSource:
    """Only what the sender asks of a site: recording pings in WordPress."""

    def __init__(self) -> None:
        self.batches: list[dict[int, list[str]]] = []

    def record_pinged_many(self, posts: dict[int, list[str]]) -> None:
        self.batches.append({k: list(v) for k, v in posts.items()})


def make_sender(tmp_path: Path, source: Any = None, **http: Any) -> tuple[Dispatcher, SqliteState]:
    settings = Settings(sites=(SiteSettings(name="s", url="https://s.example", username="u",
                                            password="p"),),
                        http=HttpSettings(allowed_networks=("127.0.0.1/32",), timeout=10,
                                          **http))
    store = SqliteState.open(tmp_path / "state.sqlite3")
    sources = {"s": source} if source is not None else {}
    return Dispatcher(settings, store, Http(settings.http), sources,
                  lambda: datetime.now(UTC)), store


def queue(store: SqliteState, post: int, target: str) -> None:
    store.add("s", post, "pingback", target, f"https://s.example/{post}/", NOW)


def test_the_per_host_and_global_limits_hold(tmp_path: Path, receivers: list[Receiver],
                                             log: Log) -> None:
    sender, store = make_sender(tmp_path, concurrency=4, per_host_concurrency=2)
    fast = receivers[:3]
    for i in range(30):
        queue(store, i, fast[i % 3].url(f"/p/{i}"))
    assert sender.deliver(["s"]).sent == 30
    assert max(log.peak[r.port] for r in fast) == 2  # two at a time per host, not one
    assert log.peak_total == 4


def test_a_slow_host_does_not_hold_up_the_others(tmp_path: Path, receivers: list[Receiver],
                                                 log: Log) -> None:
    sender, store = make_sender(tmp_path, concurrency=8, per_host_concurrency=2)
    slow, fast = receivers[3], receivers[0]
    for i in range(2):
        queue(store, i, slow.url(f"/slow/{i}"))
    for i in range(20):
        queue(store, 100 + i, fast.url(f"/fast/{i}"))
    assert sender.deliver(["s"]).sent == 22
    fast_ends = [i for i, (port, what, _) in enumerate(log.events)
                 if port == fast.port and what == "end"]
    slow_ends = [i for i, (port, what, _) in enumerate(log.events)
                 if port == slow.port and what == "end"]
    # The slow host answers each request after 3 s; all 40 fast answers (20 pages, 20
    # pings) came in before its first.
    assert len(fast_ends) == 40 and len(slow_ends) == 4
    assert slow_ends[0] > fast_ends[-1]


def test_a_page_linked_from_several_posts_is_fetched_once(tmp_path: Path,
                                                          receivers: list[Receiver],
                                                          log: Log) -> None:
    sender, store = make_sender(tmp_path)
    target = receivers[0].url("/popular")
    for post in (1, 2, 3):
        queue(store, post, target)
    assert sender.deliver(["s"]).sent == 3
    gets = [e for e in log.events if e[1] == "start" and e[2] == "/popular"]
    pings = [e for e in log.events if e[1] == "start" and e[2] == f"ping {target}"]
    assert (len(gets), len(pings)) == (1, 3)


def test_an_unreachable_host_waits_without_a_try_each(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sender, store = make_sender(tmp_path, concurrency=4, per_host_concurrency=1)
    for post in range(5):
        queue(store, post, f"http://127.0.0.1:{port}/p/{post}")
    tally = sender.deliver(["s"])
    assert (tally.sent, tally.retrying) == (0, 5)
    rows = store.history()
    tried = [r for r in rows if r.attempts == 1]
    waiting = [r for r in rows if r.attempts == 0]
    assert len(tried) == 1 and tried[0].error_code == "connect"
    assert len(waiting) == 4
    assert {r.error_code for r in waiting} == {"host-unreachable"}
    assert {r.next_attempt_at for r in waiting} == {tried[0].next_attempt_at}
    assert all("not tried" in (r.error or "") for r in waiting)


def test_wordpress_learns_what_was_sent_in_one_request(tmp_path: Path,
                                                       receivers: list[Receiver]) -> None:
    source = FakeSource()
    sender, store = make_sender(tmp_path, source=source)
    for i in range(6):
        queue(store, 1 + i % 2, receivers[i % 3].url(f"/p/{i}"))
    assert sender.deliver(["s"]).sent == 6
    assert len(source.batches) == 1
    (batch,) = source.batches
    assert {post: sorted(urls) for post, urls in batch.items()} == {
        1: sorted(receivers[i % 3].url(f"/p/{i}") for i in (0, 2, 4)),
        2: sorted(receivers[i % 3].url(f"/p/{i}") for i in (1, 3, 5))}
