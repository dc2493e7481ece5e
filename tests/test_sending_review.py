"""Sending edge cases found in review of issue 12's fixes: rows queued before links were
checked, a dry-run backfill, and telling WordPress only about the sites a cycle delivered."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from standins import OnePostSite
from test_sender import make_world

from wpnotify.errors import SourceError
from wpnotify.http import Http
from wpnotify.service import Service
from wpnotify.settings import HttpSettings, Settings, SiteSettings
from wpnotify.sources import Changes, Post
from wpnotify.state.sqlite import SqliteState
from wpnotify.times import wp_time

NOW = datetime(2026, 11, 26, 12, 40, tzinfo=UTC)


def test_a_malformed_row_queued_before_links_were_checked_does_not_stop_sending(
        tmp_path: Path) -> None:
    """An older wpnotify queued to_ping URLs unchecked: such a row ends skipped (bad-url)
    instead of crashing every delivery (and the daemon's every send job)."""
    world = make_world(tmp_path)
    store: SqliteState = world["store"]
    for target in ("http://[your link here]/", "http://example.com:8O80/trackback/"):
        store.add("s", 1, "trackback", target, "https://s.example/1/", world["clock"](),
                  payload={"title": "T", "excerpt": "", "blog_name": "B",
                           "url": "https://s.example/1/"})
    tally = world["sender"].deliver(["s"])
    rows = store.history()
    assert {(row.status, row.error_code) for row in rows} == {("skipped", "bad-url")}, rows
    assert tally.skipped == 2


class Blog(OnePostSite):
    """A site with one published post linking nowhere; counts what WordPress is told."""

    post = Post(id=3, type="post", status="publish", link="https://s.example/3/",
                title_html="T", content_html="<p>nothing</p>", excerpt_html="",
                protected=False, modified_gmt=wp_time("2026-11-20T12:00:00"),
                date_gmt=wp_time("2026-11-20T12:00:00"), to_ping=(), pinged=())

    def __init__(self) -> None:
        self.told: list[Mapping[int, list[str]]] = []

    def record_pinged_many(self, posts: Mapping[int, list[str]]) -> None:
        self.told.append(dict(posts))

    def changed(self, since: datetime, seen: Any = frozenset()) -> Changes:
        return Changes(())  # nothing new: only the backfill reads its post


def service(tmp_path: Path, *names: str, blog: type[Blog] | None = None,
            stopping: Callable[[], bool] = lambda: False) -> tuple[Service, dict[str, Blog]]:
    """Sites with one post each, whose outboxes hold one link; ``blog``: what they are."""
    settings = Settings(sites=tuple(SiteSettings(name=n, url=f"https://{n}.example",
                                                 username="u", password="p") for n in names),
                        http=HttpSettings(allowed_networks=("127.0.0.1/32",)))
    store = SqliteState.open(tmp_path / "state.sqlite3")
    blogs = {n: (blog or Blog)() for n in names}
    for name in names:
        store.record_poll(name, NOW, cursor=wp_time("2026-11-26T12:00:00"), bridge=True)
        store.queue_pinged_many([(name, 3, f"https://{name}-target.example/")], NOW)
    return Service(settings, store, Http(settings.http), sources=blogs, clock=lambda: NOW,
                   stopping=stopping), blogs


def test_a_dry_run_backfill_does_not_tell_wordpress_anything(tmp_path: Path) -> None:
    """--dry-run sends nothing and records nothing: not even the outbox of earlier runs."""
    made, blogs = service(tmp_path, "a")
    made.backfill(made.settings.site("a"), datetime(2026, 1, 1, tzinfo=UTC), None, [],
                  dry_run=True)
    assert blogs["a"].told == []
    assert made.store.pinged_waiting("a", 10) == {3: ["https://a-target.example/"]}


def test_a_backfill_tells_wordpress_about_its_own_site_only(tmp_path: Path) -> None:
    """A backfill of one site beside the daemon must not empty other sites' outboxes (the
    daemon tells those; two writers of one post's pinged list could lose a link)."""
    made, blogs = service(tmp_path, "a", "b")
    made.backfill(made.settings.site("a"), datetime(2026, 1, 1, tzinfo=UTC), None, [])
    assert blogs["a"].told == [{3: ["https://a-target.example/"]}]
    assert blogs["b"].told == []
    assert made.store.pinged_waiting("b", 10) == {3: ["https://b-target.example/"]}


class FailingBridge(Blog):
    """The posts are read; asking the bridge fails (a timeout, a 500 from its route)."""

    def __init__(self) -> None:
        super().__init__()
        self.changed_posts = [Post(
            id=4, type="post", status="publish", link="https://a.example/4/", title_html="T",
            content_html="<p>nothing</p>", excerpt_html="", protected=False,
            modified_gmt=wp_time("2026-11-26T12:30:00"), date_gmt=wp_time("2026-11-26T12:30:00"),
            to_ping=(), pinged=())]

    def changed(self, since: datetime, seen: Any = frozenset()) -> Changes:
        return Changes(self.changed_posts)

    def bridge(self) -> bool:
        raise SourceError("cannot reach https://a.example: timed out")


def test_a_failing_bridge_question_does_not_fail_the_poll(tmp_path: Path) -> None:
    """The posts were read and queued: the cursor moves on, the stored answer stays."""
    made, _ = service(tmp_path, "a", blog=FailingBridge)
    report = made.poll()
    assert report.ok, report
    state = made.store.site("a")
    assert state is not None and state.cursor == wp_time("2026-11-26T12:30:00")
    assert state.bridge is True and state.last_error is None


def test_a_shutdown_tells_wordpress_one_batch_at_most(tmp_path: Path) -> None:
    """After SIGTERM the cycle's end must not make 20 slow requests to WordPress (past the
    unit's stop timeout): one batch goes, the rest waits in the outbox for the next run."""
    from wpnotify.sending.pinged import PINGED_BATCH

    made, blogs = service(tmp_path, "a", stopping=lambda: True)
    with made.store.atomic():
        for i in range(PINGED_BATCH * 3):
            made.store.queue_pinged_many([("a", 100 + i, f"https://t.example/{i}")], NOW)
    made.send_due(["a"])
    assert len(blogs["a"].told) == 1
    assert made.store.pinged_waiting("a", 10)  # the rest is kept
