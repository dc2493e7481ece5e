"""WordPress's `pinged` lists are told what was sent through a durable outbox in the state
file: a write-back that fails, or waits for the bridge, is tried again at the next cycle, and
survives a restart; nothing is dropped."""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from standins import OnePostSite

from wpnotify.errors import SourceError
from wpnotify.http import Http
from wpnotify.sending.dispatch import Dispatcher
from wpnotify.service import Service
from wpnotify.settings import HttpSettings, Settings, SiteSettings
from wpnotify.sources import Post
from wpnotify.state.sqlite import SqliteState
from wpnotify.times import wp_time

NOW = datetime(2026, 11, 26, 12, 40, tzinfo=UTC)
SETTINGS = Settings(sites=(SiteSettings(name="s", url="https://s.example", username="u",
                                        password="p"),),
                    http=HttpSettings(allowed_networks=("127.0.0.1/32",)))


class FlakyBridge(OnePostSite):
    """A site whose bridge refuses the first ``failures`` write-backs, then takes them. One
    post, linking nowhere, with a queued trackback WordPress had already pinged."""

    post = Post(id=7, type="post", status="publish", link="https://s.example/7/",
                title_html="T", content_html="<p>no links</p>", excerpt_html="",
                protected=False, modified_gmt=wp_time("2026-11-26T12:39:00"),
                date_gmt=wp_time("2026-11-26T12:39:00"), to_ping=("https://tb.example/7/trackback/",),
                pinged=("https://tb.example/7/trackback/",))

    def __init__(self, failures: int = 1) -> None:
        self.failures = failures
        self.calls = 0
        self.told: dict[int, list[str]] = {}

    def record_pinged_many(self, posts: Mapping[int, list[str]]) -> None:
        self._tell(posts)

    def record_pinged(self, post_id: int, urls: list[str]) -> None:
        self._tell({post_id: urls})

    def _tell(self, posts: Mapping[int, list[str]]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise SourceError("cannot reach https://s.example: connection refused")
        for post, urls in posts.items():
            self.told.setdefault(post, []).extend(urls)


def pingable(server: HTTPServer, path: str) -> str:
    server.expect_request(path, method="GET").respond_with_data(
        "<html><body>a post</body></html>", content_type="text/html",
        headers={"X-Pingback": server.url_for("/rpc")})  # not WordPress: unpaced
    return server.url_for(path)


def sender(path: Path, bridge: FlakyBridge) -> tuple[Dispatcher, SqliteState]:
    store = SqliteState.open(path)
    return Dispatcher(SETTINGS, store, Http(SETTINGS.http), {"s": bridge},  # type: ignore[dict-item]
                  lambda: NOW), store


def test_sent_links_reach_wordpress_after_a_failed_write_back_and_a_restart(
        tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/rpc", method="POST").respond_with_data(
        xmlrpc.client.dumps(("ok",), methodresponse=True), content_type="text/xml")
    targets = [pingable(httpserver, f"/p{i}") for i in range(3)]
    bridge = FlakyBridge(failures=1)
    first, store = sender(tmp_path / "state.sqlite3", bridge)
    for i, target in enumerate(targets):
        store.add("s", 1 + i % 2, "pingback", target, "https://s.example/p", NOW)
    assert first.deliver(["s"]).sent == 3
    assert (bridge.calls, bridge.told) == (1, {})  # refused: kept, not dropped
    store.close()

    again, store = sender(tmp_path / "state.sqlite3", bridge)  # a new process
    again.deliver(["s"])  # nothing to send; the outbox is emptied at the cycle's end
    assert {post: sorted(urls) for post, urls in bridge.told.items()} == {
        1: sorted([targets[0], targets[2]]), 2: [targets[1]]}
    again.deliver(["s"])
    assert bridge.calls == 2  # told once: nothing left to tell


def test_links_wait_while_the_site_has_no_bridge(tmp_path: Path) -> None:
    bridge = FlakyBridge(failures=0)
    quiet, store = sender(tmp_path / "state.sqlite3", bridge)
    store.record_poll("s", NOW, cursor=wp_time("2026-11-26T12:00:00"), bridge=False)
    store.queue_pinged_many([("s", 4, "https://t.example/")], NOW)
    quiet.deliver(["s"])
    assert bridge.calls == 0
    store.record_poll("s", NOW, bridge=True)  # installed since
    quiet.deliver(["s"])
    assert bridge.told == {4: ["https://t.example/"]}


@pytest.mark.parametrize("failures", [0, 1])
def test_an_already_pinged_trackback_leaves_to_ping_even_if_wordpress_was_down(
        tmp_path: Path, failures: int) -> None:
    """A queued trackback WordPress had pinged before is recorded as skipped, and WordPress
    is told to move it to pinged: at the next poll when it could not be told at first."""
    bridge = FlakyBridge(failures)
    path = tmp_path / "state.sqlite3"
    SqliteState.open(path).record_poll("s", NOW, cursor=wp_time("2026-11-26T12:00:00"), bridge=True)
    for _ in range(2):  # two polls, each a new process
        service = Service(SETTINGS, SqliteState.open(path), Http(SETTINGS.http),
                          sources={"s": bridge}, clock=lambda: NOW)
        report: Any = service.poll()
        assert report.ok
        service.store.close()
    assert bridge.told == {7: ["https://tb.example/7/trackback/"]}
    (row,) = SqliteState.open(path).history()
    assert (row.kind, row.status, row.error_code) == ("trackback", "skipped", "already-pinged")


def test_a_long_backlog_goes_over_several_cycles_in_batches(tmp_path: Path) -> None:
    """A bridge installed after months: 50 links a request, 20 requests a flush at most, so
    one cycle's end is not held by thousands of requests; the rest goes next time."""
    from wpnotify.sending.pinged import PINGED_BATCH, PINGED_BATCHES

    bridge = FlakyBridge(failures=0)
    quiet, store = sender(tmp_path / "state.sqlite3", bridge)
    total = PINGED_BATCH * PINGED_BATCHES + 10
    with store.atomic():
        for i in range(total):
            store.queue_pinged_many([("s", 1 + i // 100, f"https://t.example/{i}")], NOW)
    quiet.deliver(["s"])
    assert bridge.calls == PINGED_BATCHES
    quiet.deliver(["s"])
    assert bridge.calls == PINGED_BATCHES + 1
    assert sum(len(urls) for urls in bridge.told.values()) == total
    assert store.pinged_waiting("s", 10) == {}


def test_within_a_cycle_only_full_batches_go_and_its_end_takes_the_rest(
        tmp_path: Path) -> None:
    """Links sent meanwhile went in a request each (a backfill's 1,200 links made 80
    requests, each costing WordPress its start-up): a mid-cycle write-back sends full
    batches only; the cycle's end sends what is left."""
    from wpnotify.sending.pinged import PINGED_BATCH, PingedMirror

    bridge = FlakyBridge(failures=0)
    store = SqliteState.open(tmp_path / "state.sqlite3")
    store.record_poll("s", NOW, cursor=wp_time("2026-11-26T12:00:00"), bridge=True)
    mirror = PingedMirror(store, {"s": bridge})
    mirror.include(["s"])
    links = [("s", 1 + i // 10, f"https://t.example/{i}") for i in range(PINGED_BATCH + 10)]
    mirror.sent_many(links[:PINGED_BATCH - 1], NOW)
    mirror.flush()
    assert bridge.calls == 0
    mirror.sent_many(links[PINGED_BATCH - 1:], NOW)
    mirror.flush()  # 60 waiting: one full batch
    assert bridge.calls == 1
    assert sum(len(urls) for urls in store.pinged_waiting("s", 100).values()) == 10
    mirror.flush(final=True)
    assert bridge.calls == 2 and store.pinged_waiting("s", 100) == {}
    assert sorted(url for urls in bridge.told.values() for url in urls) == sorted(
        url for _, _, url in links)


def test_within_a_cycle_a_worker_tells_the_links_of_its_own_posts(tmp_path: Path) -> None:
    """Workers sending together each told every link of the site, the same ones at once
    (three workers made twice the requests of one): mid-cycle, a worker tells the links it
    sent; its cycle's end tells every link waiting (another's left by a crash, too)."""
    from wpnotify.sending.pinged import PINGED_BATCH, PingedMirror

    bridge = FlakyBridge(failures=0)
    store = SqliteState.open(tmp_path / "state.sqlite3")
    store.record_poll("s", NOW, cursor=wp_time("2026-11-26T12:00:00"), bridge=True)
    theirs = [("s", 1000 + i // 10, f"https://t.example/x{i}") for i in range(PINGED_BATCH)]
    store.queue_pinged_many(theirs, NOW)  # another worker's
    mirror = PingedMirror(store, {"s": bridge})
    mirror.include(["s"])
    mine = [("s", 1 + i // 10, f"https://t.example/{i}") for i in range(PINGED_BATCH)]
    mirror.sent_many(mine[:-1], NOW)
    mirror.flush()
    assert bridge.calls == 0  # 99 waiting, 49 of them its own
    mirror.sent_many(mine[-1:], NOW)
    mirror.flush()
    assert bridge.calls == 1
    assert sorted(url for urls in bridge.told.values() for url in urls) == sorted(
        url for _, _, url in mine)
    mirror.flush(final=True)
    assert bridge.calls == 2 and store.pinged_waiting("s", 1000) == {}


class RefusingBridge(FlakyBridge):
    """The same post, its queued trackbacks never pinged before: one to a host the site's
    deny_hosts refuses, one whose URL is malformed. Neither is ever sent."""

    post = Post(id=8, type="post", status="publish", link="https://s.example/8/",
                title_html="T", content_html="<p>no links</p>", excerpt_html="",
                protected=False, modified_gmt=wp_time("2026-11-26T12:39:00"),
                date_gmt=wp_time("2026-11-26T12:39:00"),
                to_ping=("https://denied.example/8/trackback/", "http://[your link here]/"),
                pinged=())


def test_a_trackback_skipped_for_another_reason_stays_queued_in_wordpress(
        tmp_path: Path) -> None:
    """Only what was sent, or WordPress had pinged itself, goes to `pinged`: a trackback
    refused by deny_hosts or with a malformed URL was never sent, so WordPress must not be
    told it was (its editor would show it as pinged)."""
    settings = Settings(sites=(SiteSettings(name="s", url="https://s.example", username="u",
                                            password="p", deny_hosts=("denied.example",)),),
                        http=HttpSettings(allowed_networks=("127.0.0.1/32",)))
    bridge = RefusingBridge(failures=0)
    path = tmp_path / "state.sqlite3"
    SqliteState.open(path).record_poll("s", NOW, cursor=wp_time("2026-11-26T12:00:00"), bridge=True)
    service = Service(settings, SqliteState.open(path), Http(settings.http),
                      sources={"s": bridge}, clock=lambda: NOW)
    assert service.poll().ok
    rows = {row.target: row for row in service.store.history()}
    assert {row.error_code for row in rows.values()} == {"host-refused", "bad-url"}, rows
    assert bridge.told == {}
    assert service.store.pinged_waiting("s", 10) == {}
