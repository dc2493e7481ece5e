"""Issue 14, wpnotify's side: every change to a notification marks its post, and the mirror
tells WordPress the marked posts' full status rows (50 posts a request, with the newest Send
again request taken), keeping what could not be told; a poll takes WordPress's Send again
requests only when its posts list named a newer one, and queues each again with a fresh
retry budget so that the same run sends it. Stand-in sites, a real state file."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer
from standins import StandinSource
from structlog.testing import capture_logs

from wpnotify import statusrows
from wpnotify.errors import BridgeTooOld, SourceError
from wpnotify.http import Http
from wpnotify.sending.pinged import (
    NO_ROUTE_RECHECK,
    PINGED_BATCHES,
    STATUS_BATCH,
    STATUS_BATCHES_WITHIN,
    STATUS_BYTES,
    STATUS_EVERY,
    PingedMirror,
)
from wpnotify.service import Service
from wpnotify.settings import HttpSettings, Settings, SiteSettings
from wpnotify.sources import Changes, Deleted, Post, ResendRequest
from wpnotify.state import Status
from wpnotify.state.processes import this_process
from wpnotify.state.sqlite import SqliteState
from wpnotify.times import wp_time
from wpnotify.trackback import Ping

NOW = datetime(2026, 11, 26, 12, 40, tzinfo=UTC)
SETTINGS = Settings(sites=(SiteSettings(name="s", url="https://s.example", username="u",
                                        password="p"),),
                    http=HttpSettings(allowed_networks=("127.0.0.1/32",)))
Push = tuple[dict[int, list[dict[str, Any]]], int]  # the rows by post, and resend_seen


class EditorSite(StandinSource):
    """A site with the bridge 1.2: nothing new to read, Send again ``requests`` (the posts
    list names ``newest``), and a status route that fails ``failures`` times, refuses
    ``refuse``, and runs ``during`` while a push is in flight."""

    def __init__(self, requests: Sequence[ResendRequest] = (), newest: int | None = None,
                 failures: int = 0) -> None:
        self.requests = list(requests)
        self.newest = newest
        self.failures = failures
        self.refuse: list[int] = []
        self.during: Callable[[], None] = lambda: None
        self.pushes: list[Push] = []
        self.asked: list[int] = []  # the ``since`` of each request for Send again requests
        self.unreadable = False

    def changed(self, since: datetime, seen: frozenset[tuple[int, datetime]] = frozenset()
                ) -> Changes:
        return Changes((), newest_resend=self.newest)

    def deletions(self, since: datetime) -> list[Deleted]:
        return []

    def resend_requests(self, since: int) -> list[ResendRequest]:
        self.asked.append(since)
        if self.unreadable:
            raise SourceError("https://s.example returned a Send again request without an id")
        return [r for r in self.requests if r.id > since]

    def record_pinged_many(self, posts: Mapping[int, list[str]]) -> None:
        pass

    def record_status_many(self, posts: Mapping[int, list[dict[str, Any]]],
                           resend_seen: int) -> list[int]:
        if self.failures:
            self.failures -= 1
            raise SourceError("cannot reach https://s.example: connection refused")
        self.during()
        self.pushes.append((dict(posts), resend_seen))
        return [post for post in self.refuse if post in posts]


def opened(tmp_path: Path, bridge: bool | None = True) -> SqliteState:
    store = SqliteState.open(tmp_path / "state.sqlite3")
    store.record_poll("s", NOW, cursor=wp_time("2026-11-26T12:00:00"), bridge=bridge)
    return store


def mirror_of(store: SqliteState, site: EditorSite, **kwargs: Any) -> PingedMirror:
    mirror = PingedMirror(store, {"s": site}, **kwargs)
    mirror.include(["s"])
    return mirror


def plan(store: SqliteState, posts: range, kind: str = "pingback") -> None:
    with store.atomic():
        for post in posts:
            store.add("s", post, kind, f"https://t.example/{post}", f"https://s.example/{post}",
                      NOW)


def expected_rows(store: SqliteState, post: int) -> list[dict[str, Any]]:
    return statusrows.post_rows(store.history(site="s", post_id=post, limit=1000))


# --- the mirror ---------------------------------------------------------------------------


def test_marked_posts_rows_go_a_batch_a_request_with_the_newest_request_taken(
        tmp_path: Path) -> None:
    store, site = opened(tmp_path), EditorSite()
    plan(store, range(1, 2 * STATUS_BATCH + 21))
    store.add("s", 3, "webmention", "https://w.example/", "https://s.example/3", NOW,
              status=Status.SKIPPED, error="no endpoint", error_code="no-endpoint")
    store.set_resend_seen("s", 9)
    mirror_of(store, site).flush(final=True)
    assert [len(rows) for rows, _ in site.pushes] == [STATUS_BATCH, STATUS_BATCH, 20]
    assert {seen for _, seen in site.pushes} == {9}
    told = {post: rows for batch, _ in site.pushes for post, rows in batch.items()}
    assert sorted(told) == list(range(1, 2 * STATUS_BATCH + 21))
    assert all(told[post] == expected_rows(store, post) for post in told)
    assert [row["kind"] for row in told[3]] == ["pingback", "webmention"]  # every kind
    assert store.status_waiting("s", 10) == []


def test_a_failing_push_keeps_the_marks_for_the_next_cycle(tmp_path: Path) -> None:
    store, site = opened(tmp_path), EditorSite(failures=1)
    plan(store, range(1, 4))
    with capture_logs() as logs:
        mirror_of(store, site).flush(final=True)
    assert site.pushes == [] and len(store.status_waiting("s", 10)) == 3
    assert [e["event"] for e in logs] == ["wordpress.record_status_failed"]
    mirror_of(store, site).flush(final=True)  # the next cycle
    assert sorted(site.pushes[0][0]) == [1, 2, 3] and store.status_waiting("s", 10) == []


def test_a_post_changed_while_its_push_was_in_flight_is_pushed_again(tmp_path: Path) -> None:
    """The change counter: the mark read before the push no longer matches, so it stays,
    and the post's new rows follow; nothing told is lost."""
    store, site = opened(tmp_path), EditorSite()
    plan(store, range(1, 3))
    [row] = store.history(post_id=1)

    def sent_meanwhile() -> None:
        site.during = lambda: None
        store.claim(row.id, NOW)
        store.finish(row.id, Status.SENT, NOW, response="thanks")

    site.during = sent_meanwhile
    mirror_of(store, site).flush(final=True)
    first, again = site.pushes
    assert first[0][1][0]["status"] == "pending"
    assert list(again[0]) == [1] and again[0][1][0]["status"] == "sent"
    assert again[0][1] == expected_rows(store, 1)
    assert store.status_waiting("s", 10) == []


def test_refused_posts_leave_the_outbox_with_a_word(tmp_path: Path) -> None:
    store, site = opened(tmp_path), EditorSite()
    plan(store, range(1, 3))
    site.refuse = [2]
    with capture_logs() as logs:
        mirror_of(store, site).flush(final=True)
    assert store.status_waiting("s", 10) == []
    assert [(e["event"], e["posts"]) for e in logs] == [("wordpress.status_refused", [2])]


def test_a_site_without_the_bridge_keeps_its_marks(tmp_path: Path) -> None:
    store, site = opened(tmp_path, bridge=False), EditorSite()
    plan(store, range(1, 3))
    mirror_of(store, site).flush(final=True)
    assert site.pushes == [] and len(store.status_waiting("s", 10)) == 2


class OlderBridge(EditorSite):
    """A bridge 1.1: no status route."""

    def record_status_many(self, posts: Mapping[int, list[dict[str, Any]]],
                           resend_seen: int) -> list[int]:
        self.pushes.append((dict(posts), resend_seen))
        raise BridgeTooOld("https://s.example has no /wpnotify/v1/statuses route: its "
                           "wpnotify bridge is older than 1.2")


def test_an_older_bridge_costs_no_request_at_every_cycle(tmp_path: Path) -> None:
    """Its marks are dropped (kept, every poll would make a failing request), and it is
    asked again after NO_ROUTE_RECHECK, in case it was updated."""
    store, site = opened(tmp_path), OlderBridge()
    clock = [100.0]
    mirror = mirror_of(store, site, clock=lambda: clock[0])
    plan(store, range(1, 3 * STATUS_BATCH))
    with capture_logs() as logs:
        mirror.flush(final=True)
    assert len(site.pushes) == 1 and store.status_waiting("s", 10) == []
    assert [e["event"] for e in logs] == ["wordpress.no_status_route"]
    plan(store, range(200, 202))
    clock[0] += NO_ROUTE_RECHECK / 2
    mirror.flush(final=True)
    assert len(site.pushes) == 1 and store.status_waiting("s", 10) == []
    plan(store, range(300, 302))
    clock[0] += NO_ROUTE_RECHECK
    mirror.flush(final=True)
    assert len(site.pushes) == 2


def test_a_long_backlog_goes_over_several_cycles(tmp_path: Path) -> None:
    """PINGED_BATCHES requests a flush at most, as for the pinged lists."""
    store, site = opened(tmp_path), EditorSite()
    plan(store, range(1, PINGED_BATCHES * STATUS_BATCH + 8))
    mirror_of(store, site).flush(final=True)
    assert len(site.pushes) == PINGED_BATCHES and len(store.status_waiting("s", 100)) == 7
    mirror_of(store, site).flush(final=True)
    assert len(site.pushes) == PINGED_BATCHES + 1 and store.status_waiting("s", 100) == []


def test_shutting_down_makes_one_request_at_most(tmp_path: Path) -> None:
    store, site = opened(tmp_path), EditorSite()
    plan(store, range(1, 3 * STATUS_BATCH))
    mirror_of(store, site, stopping=lambda: True).flush(final=True)
    assert len(site.pushes) == 1


def test_within_a_cycle_done_posts_go_now_and_then_and_all_at_its_end(tmp_path: Path
                                                                       ) -> None:
    """A post's rows change with every claim and outcome: a pinged write-back mid-cycle
    takes along the posts whose notifications are all done, at most every STATUS_EVERY
    seconds; the cycle's end takes every marked post."""
    store, site = opened(tmp_path), EditorSite()
    clock = [100.0]
    mirror = mirror_of(store, site, clock=lambda: clock[0])
    plan(store, range(1, 3))
    first, second = (store.history(post_id=post)[0].id for post in (1, 2))
    store.finish(first, Status.SENT, NOW)
    mirror.flush()
    assert [list(rows) for rows, _ in site.pushes] == [[1]]  # 2 is still pending
    store.finish(second, Status.FAILED, NOW, error="refused", error_code="refused")
    clock[0] += STATUS_EVERY / 2
    mirror.flush()
    assert len(site.pushes) == 1
    clock[0] += STATUS_EVERY
    mirror.flush()
    plan(store, range(3, 4))
    mirror.flush(final=True)
    assert [list(rows) for rows, _ in site.pushes] == [[1], [2], [3]]
    assert site.pushes[-1][0][3][0]["status"] == "pending"


def test_within_a_cycle_a_long_backlog_costs_two_requests_a_second(tmp_path: Path) -> None:
    """The sending goes on meanwhile; the rest waits for the cycle's end."""
    store, site = opened(tmp_path), EditorSite()
    plan(store, range(1, 5 * STATUS_BATCH + 1))
    with store.atomic():
        for n in store.history(site="s", limit=1000):
            store.finish(n.id, Status.SENT, NOW)
    mirror_of(store, site, clock=lambda: 100.0).flush()
    assert len(site.pushes) == STATUS_BATCHES_WITHIN
    mirror_of(store, site, clock=lambda: 100.0).flush(final=True)
    assert len(site.pushes) == 5


def test_workers_sending_together_space_their_pushes_by_their_number(tmp_path: Path
                                                                    ) -> None:
    """Two other workers in flight: each pushes done posts every 3 x STATUS_EVERY, so the
    three together ask WordPress about as often as one alone."""
    store, site = opened(tmp_path), EditorSite()
    clock = [100.0]
    mirror = mirror_of(store, site, clock=lambda: clock[0])
    mirror.sharing(2, NOW)
    plan(store, range(1, 4))
    first, second, third = (store.history(post_id=post)[0].id for post in (1, 2, 3))
    store.finish(first, Status.SENT, NOW)
    mirror.flush()
    store.finish(second, Status.SENT, NOW)
    clock[0] += 2 * STATUS_EVERY
    mirror.flush()
    assert [list(rows) for rows, _ in site.pushes] == [[1]]
    clock[0] += STATUS_EVERY
    mirror.flush()
    assert [list(rows) for rows, _ in site.pushes] == [[1], [2]]
    mirror.sharing(0, NOW)  # alone again: every STATUS_EVERY
    store.finish(third, Status.SENT, NOW)
    clock[0] += STATUS_EVERY
    mirror.flush()
    assert [list(rows) for rows, _ in site.pushes] == [[1], [2], [3]]


def by_another_process(tmp_path: Path, sql: str, *params: object) -> None:
    """A write to the state file from another process (another worker's claim or outcome),
    which no API of this one makes."""
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        db.execute(sql, params)
    db.close()


def test_a_cycles_end_leaves_the_posts_other_workers_send_to_them(tmp_path: Path) -> None:
    """The first worker done pushed every marked post, the others' unfinished ones too,
    each pushed again once done: those (a notification in another's hands, or due) stay
    marked for whoever sends them. Alone, a worker's end pushes every marked post."""
    store, site = opened(tmp_path), EditorSite()
    plan(store, range(1, 5))
    theirs, mine, done = (store.history(post_id=post)[0].id for post in (1, 2, 3))
    for claimed in (theirs, mine, done):
        store.claim(claimed, NOW)
    store.finish(done, Status.SENT, NOW)
    by_another_process(tmp_path, "UPDATE notifications SET claimed_by = "
                       "'elsewhere.example:1:2' WHERE id = ?", theirs)
    mirror = mirror_of(store, site, worker=this_process())
    mirror.sharing(1, NOW)
    mirror.flush(final=True)
    assert sorted(site.pushes[0][0]) == [2, 3]  # 4 is due: in another worker's queue
    assert sorted(post for post, _ in store.status_waiting("s", 10)) == [1, 4]
    mirror.sharing(0, NOW)
    mirror.flush(final=True)
    assert [sorted(rows) for rows, _ in site.pushes] == [[2, 3], [1, 4]]


def test_a_cycles_end_with_others_sending_pushes_what_was_marked_when_it_looked(
        tmp_path: Path) -> None:
    """A first worker done kept pushing the others' posts as each settled while they sent
    (up to 20 requests, WordPress's CPU taken from their sending): with others sending, a
    cycle's end pushes what is marked when it looks; a post another worker settles
    meanwhile stays marked, for that worker's own end."""
    store, site = opened(tmp_path), EditorSite()
    plan(store, range(1, 3))
    mine, theirs = (store.history(post_id=post)[0].id for post in (1, 2))
    for claimed in (mine, theirs):
        store.claim(claimed, NOW)
    store.finish(mine, Status.SENT, NOW)
    by_another_process(tmp_path, "UPDATE notifications SET claimed_by = "
                       "'elsewhere.example:1:2' WHERE id = ?", theirs)

    def settled_by_the_other() -> None:
        site.during = lambda: None
        by_another_process(tmp_path, "UPDATE notifications SET status = 'sent' WHERE id = ?",
                           theirs)

    site.during = settled_by_the_other
    mirror = mirror_of(store, site, worker=this_process())
    mirror.sharing(1, NOW)
    mirror.flush(final=True)
    assert [sorted(rows) for rows, _ in site.pushes] == [[1]]
    assert [post for post, _ in store.status_waiting("s", 10)] == [2]
    mirror.sharing(0, NOW)  # alone: its end pushes every marked post
    mirror.flush(final=True)
    assert [sorted(rows) for rows, _ in site.pushes] == [[1], [2]]


def test_an_xmlrpc_site_tells_no_statuses_and_makes_no_request(tmp_path: Path) -> None:
    from wpnotify.sources.xmlrpc import XmlrpcSource

    class NoNetwork:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"a request was made ({name})")

    source = XmlrpcSource(NoNetwork(), SiteSettings(  # type: ignore[arg-type]  # never used
        name="x", url="https://x.example", username="u", password="p", api="xmlrpc"))
    assert source.record_status_many({1: []}, 5) == []
    assert source.resend_requests(0) == []


# --- Send again ---------------------------------------------------------------------------


def failed_trackback(store: SqliteState, target: str, post: int = 7) -> int:
    ping = Ping(url=f"https://s.example/{post}/", title="T", excerpt="x", blog_name="B")
    store.add("s", post, "trackback", target, ping.url, NOW - timedelta(days=1),
              payload=ping.to_dict())
    [row] = store.history(post_id=post)
    store.claim(row.id, NOW - timedelta(days=1))
    store.finish(row.id, Status.FAILED, NOW - timedelta(days=1), endpoint=target,
                 error="Sorry, trackbacks are closed for this item.", error_code="closed")
    return row.id


def service_for(store: SqliteState, site: EditorSite) -> Service:
    return Service(SETTINGS, store, Http(SETTINGS.http), sources={"s": site},
                   clock=lambda: NOW)


def test_a_send_again_request_is_sent_in_the_same_run(tmp_path: Path,
                                                      httpserver: HTTPServer) -> None:
    """Queued again (pending, attempts 0, due now, error cleared), sent by the same poll's
    sending, and WordPress is told the new row and the request taken; a request for a
    notification wpnotify does not have is logged and skipped."""
    httpserver.expect_request("/tb", method="POST").respond_with_data(
        "<?xml version='1.0'?><response><error>0</error></response>", content_type="text/xml")
    store = opened(tmp_path)
    target = httpserver.url_for("/tb")
    number = failed_trackback(store, target)
    site = EditorSite([ResendRequest(3, 7, "trackback", target, "2026-11-26 12:39:00"),
                       ResendRequest(4, 99, "pingback", "https://gone.example/", "")], newest=4)
    with capture_logs() as logs:
        report = service_for(store, site).poll()
    assert report.ok and report.delivery.sent == 1
    row = store.get(number)
    assert row is not None and (row.status, row.attempts, row.error) == (Status.SENT, 1, None)
    assert len(httpserver.log) == 1 and site.asked == [0]
    assert store.resend_seen("s") == 4
    events = {e["event"]: e for e in logs}
    assert events["notification.resend_requested"]["post"] == 7
    assert events["notification.resend_skipped"]["detail"] == "wpnotify has no such notification"
    rows, seen = site.pushes[-1]
    assert seen == 4 and rows[7] == expected_rows(store, 7) and rows[7][0]["status"] == "sent"


def test_the_requeue_resets_the_retry_budget(tmp_path: Path) -> None:
    store = opened(tmp_path)
    number = failed_trackback(store, "https://tb.example/7/trackback/")
    site = EditorSite([ResendRequest(1, 7, "trackback", "https://tb.example/7/trackback/", "")],
                      newest=1)
    service_for(store, site).read(SETTINGS.sites[0])
    row = store.get(number)
    assert row is not None
    assert (row.status, row.attempts, row.next_attempt_at, row.error, row.error_code) == (
        Status.PENDING, 0, NOW, None, None)


def test_an_idle_poll_asks_for_no_requests(tmp_path: Path) -> None:
    store = opened(tmp_path)
    store.set_resend_seen("s", 4)
    for newest in (None, 3, 4):
        site = EditorSite(newest=newest)
        service_for(store, site).read(SETTINGS.sites[0])
        assert site.asked == []


def test_requests_that_cannot_be_read_are_asked_again_without_failing_the_poll(
        tmp_path: Path) -> None:
    store = opened(tmp_path)
    number = failed_trackback(store, "https://tb.example/7/trackback/")
    site = EditorSite([ResendRequest(2, 7, "trackback", "https://tb.example/7/trackback/", "")],
                      newest=2)
    site.unreadable = True
    with capture_logs() as logs:
        report = service_for(store, site).read(SETTINGS.sites[0])
    assert report.error is None and store.resend_seen("s") == 0
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["site.resend_unreadable"]
    site.unreadable = False
    service_for(store, site).read(SETTINGS.sites[0])
    assert site.asked == [0, 0] and store.resend_seen("s") == 2
    assert store.get(number).status == Status.PENDING  # type: ignore[union-attr]  # it exists


def test_requests_none_of_which_are_listed_move_the_mark_to_the_header(tmp_path: Path) -> None:
    """Requests on posts this user may not edit are named by the header, not listed: taken
    as seen, or every poll would ask again."""
    store, site = opened(tmp_path), EditorSite(newest=5)
    service_for(store, site).read(SETTINGS.sites[0])
    service_for(store, site).read(SETTINGS.sites[0])
    assert site.asked == [0] and store.resend_seen("s") == 5


def test_a_request_for_a_row_sent_meanwhile_is_not_sent_twice(tmp_path: Path) -> None:
    store = opened(tmp_path)
    number = failed_trackback(store, "https://tb.example/7/trackback/")
    store.requeue(ids=[number])
    store.claim(number, NOW)
    store.finish(number, Status.SENT, NOW)
    store.status_told("s", store.status_waiting("s", 10))  # WordPress was told it is sent
    site = EditorSite([ResendRequest(1, 7, "trackback", "https://tb.example/7/trackback/", "")],
                      newest=1)
    with capture_logs() as logs:
        service_for(store, site).read(SETTINGS.sites[0])
    assert store.get(number).status == Status.SENT  # type: ignore[union-attr]  # it exists
    [skipped] = [e for e in logs if e["event"] == "notification.resend_skipped"]
    assert skipped["detail"] == "it is sent, nothing to send again"
    assert store.resend_seen("s") == 1
    # WordPress shows the row "queued" until told the request was taken: the post goes in
    # the next push, with its rows as history has them and the request taken.
    assert [post for post, _ in store.status_waiting("s", 10)] == [7]
    mirror_of(store, site).flush(final=True)
    [(posts, seen)] = site.pushes
    assert seen == 1 and [row["status"] for row in posts[7]] == ["sent"]


def test_a_request_for_a_notification_wpnotify_lacks_empties_that_posts_rows(
        tmp_path: Path) -> None:
    """wpnotify has nothing of it (a state file started anew): WordPress is told the post
    has no rows, so the editor and `history` agree and nothing stays "queued"."""
    store = opened(tmp_path)
    site = EditorSite([ResendRequest(4, 9, "trackback", "https://tb.example/", "")], newest=4)
    service_for(store, site).read(SETTINGS.sites[0])
    mirror_of(store, site).flush(final=True)
    assert site.pushes == [({9: []}, 4)]


def test_a_request_for_a_row_sent_meanwhile_still_tells_wordpress_it_was_taken(
        tmp_path: Path) -> None:
    """The bridge shows the row "queued" until a push carries the request taken: a request
    that queues nothing (sent meanwhile) still sends that post's rows, with resend_seen."""
    store, site = opened(tmp_path), EditorSite()
    number = failed_trackback(store, "https://tb.example/7/trackback/")
    store.requeue(ids=[number])
    store.claim(number, NOW)
    store.finish(number, Status.SENT, NOW)
    mirror_of(store, site).flush(final=True)  # WordPress has the sent row; nothing marked
    assert store.status_waiting("s", 10) == [] and len(site.pushes) == 1
    site.requests = [ResendRequest(1, 7, "trackback", "https://tb.example/7/trackback/", "")]
    site.newest = 1
    service_for(store, site).read(SETTINGS.sites[0])
    mirror_of(store, site).flush(final=True)
    rows, seen = site.pushes[-1]
    assert len(site.pushes) == 2 and seen == 1 and rows[7][0]["status"] == "sent"


def test_the_first_poll_takes_no_request_made_before_it(tmp_path: Path) -> None:
    """A fresh state has none of the notifications they name: not one warning each."""
    store = SqliteState.open(tmp_path / "state.sqlite3")

    class FirstPoll(EditorSite):
        def newest_modified(self) -> datetime | None:
            return wp_time("2026-11-26T12:39:00")

        def scheduled(self) -> Iterator[Post]:
            return iter(())

    site = FirstPoll([ResendRequest(3, 7, "trackback", "https://tb.example/", "")], newest=3)
    service_for(store, site).read(SETTINGS.sites[0])
    service_for(store, site).read(SETTINGS.sites[0])
    assert site.asked == [] and store.resend_seen("s") == 3


def test_a_request_stays_small_enough_for_wordpress(tmp_path: Path) -> None:
    """Posts with many long rows go in several requests, under STATUS_BYTES each."""
    store, site = opened(tmp_path), EditorSite()
    with store.atomic():
        for post in range(1, 4):
            for i in range(200):
                store.add("s", post, "pingback", f"https://t.example/{post}/{i}/" + "x" * 1900,
                          f"https://s.example/{post}", NOW)
    mirror_of(store, site).flush(final=True)
    assert [sorted(rows) for rows, _ in site.pushes] == [[2, 3], [1]]
    assert all(len(json.dumps(rows)) <= STATUS_BYTES for rows, _ in site.pushes)
    assert store.status_waiting("s", 10) == []


def test_requests_that_queue_nothing_cost_no_read_of_the_post_history(tmp_path: Path) -> None:
    """500 requests (a poll's most) for sent links of a post with 2,000: each is explained by
    its own key, not by reading the post's whole history (that took minutes at 20,000)."""
    store = opened(tmp_path)
    with store.atomic():
        for i in range(2000):
            store.add("s", 7, "pingback", f"https://t.example/{i}", "https://s.example/7", NOW,
                      status=Status.SENT)
    site = EditorSite([ResendRequest(i, 7, "pingback", f"https://t.example/{i}", "")
                       for i in range(1, 501)], newest=500)
    started = time.perf_counter()
    with capture_logs() as logs:
        service_for(store, site).read(SETTINGS.sites[0])
    assert time.perf_counter() - started < 3.0
    skipped = [e for e in logs if e["event"] == "notification.resend_skipped"]
    assert len(skipped) == 500 and skipped[0]["detail"] == "it is sent, nothing to send again"
    assert store.resend_seen("s") == 500


def _steps(store: SqliteState, read: Callable[[], object]) -> int:
    """SQLite virtual machine steps (in thousands) that ``read`` costs: a measure of work
    that no machine's speed changes."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    store.db.set_progress_handler(tick, 1000)
    try:
        read()
    finally:
        store.db.set_progress_handler(None, 0)
    return count[0]


def test_settled_posts_are_found_without_reading_the_whole_backlog(tmp_path: Path) -> None:
    """Asked every second while a backfill sends: with 20,000 posts waiting instead of
    2,500, finding the settled ones costs no more (it read every mark: 0.45 s at 166,000)."""
    store = opened(tmp_path)
    costs = []
    for start, end in ((1, 2501), (2501, 20001)):
        plan(store, range(start, end))  # pending: not settled
        with store.atomic():
            for post in range(end, end + 10):  # the newest changes: settled posts
                store.add("s", post, "pingback", f"https://t.example/{post}",
                          f"https://s.example/{post}", NOW, status=Status.SENT)
        found = store.status_waiting("s", 50, settled=True)
        assert {post for post, _ in found} >= set(range(end, end + 10))
        costs.append(_steps(store, lambda: store.status_waiting("s", 50, settled=True)))
    assert costs[1] <= costs[0] * 1.5, costs
