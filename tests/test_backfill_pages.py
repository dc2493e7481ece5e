"""A backfill of posts given by ID (`backfill --post`, as an operator splits an archive over
workers) reads them a page at a time on the reader's thread, the first page small, so that
sending starts while the rest are read: issue 15's bench, 3 workers against one."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from standins import OnePostSite

from wpnotify.http import Http
from wpnotify.service import Service
from wpnotify.service.backfilling import FIRST_PAGE, PAGE
from wpnotify.settings import HttpSettings, Settings, SiteSettings
from wpnotify.sources import Post
from wpnotify.state.sqlite import SqliteState
from wpnotify.times import wp_time

NOW = datetime(2026, 11, 26, 12, 40, tzinfo=UTC)


class Archive(OnePostSite):
    """Posts without links, each ID asked for answered; notes each request's IDs and the
    thread that made it."""

    def __init__(self) -> None:
        self.asked: list[tuple[list[int], str]] = []

    def posts(self, ids: list[int]) -> list[Post]:
        self.asked.append((list(ids), threading.current_thread().name))
        return [Post(id=i, type="post", status="publish", link=f"https://s.example/{i}/",
                     title_html="T", content_html="<p>nothing</p>", excerpt_html="",
                     protected=False, modified_gmt=wp_time("2026-11-20T12:00:00"),
                     date_gmt=wp_time("2026-11-20T12:00:00"), to_ping=(), pinged=())
                for i in ids]


def test_posts_given_by_id_are_read_a_page_at_a_time_off_the_senders_thread(
        tmp_path: Path) -> None:
    """Before, all of a worker's share came in one request on the caller's thread, and its
    first notification waited for the last post read."""
    settings = Settings(sites=(SiteSettings(name="s", url="https://s.example", username="u",
                                            password="p"),),
                        http=HttpSettings(allowed_networks=("127.0.0.1/32",)))
    store = SqliteState.open(tmp_path / "state.sqlite3")
    site = Archive()
    made = Service(settings, store, Http(settings.http), sources={"s": site},
                   clock=lambda: NOW)
    ids = list(range(1, FIRST_PAGE + PAGE + 11)) + [5]  # a repeated ID is read once
    pages: list[tuple[int, int]] = []
    made.backfill(settings.site("s"), datetime(2026, 1, 1, tzinfo=UTC), None, ids,
                  on_page=lambda done, total: pages.append((done, total)))
    assert [len(asked) for asked, _ in site.asked] == [FIRST_PAGE, PAGE, 10]
    assert [i for asked, _ in site.asked for i in asked] == ids[:-1]
    assert {thread for _, thread in site.asked} == {"wpnotify-backfill-reader"}
    total = FIRST_PAGE + PAGE + 10
    assert pages == [(FIRST_PAGE, total), (FIRST_PAGE + PAGE, total), (total, total)]


def test_a_page_is_recorded_in_post_order(tmp_path: Path) -> None:
    """A unit that changes many posts' rows takes them in post order, as the outcome batches
    and status_told do: a page read newest first is queued lowest ID first."""
    from wpnotify.service.recording import Recorder

    site = SiteSettings(name="s", url="https://s.example", username="u", password="p")
    store = SqliteState.open(tmp_path / "state.sqlite3")
    source = Archive()
    posts = [replace(post, content_html=f'<p><a href="https://t.example/{post.id}">x</a></p>')
             for post in source.posts([9, 5, 2])]
    queued: list[int] = []
    real = store.add_many

    def spy(site_name: str, items: list[Any], now: datetime) -> Any:
        queued.extend(item.post_id for item in items)
        return real(site_name, items, now)
    store.add_many = spy  # type: ignore[method-assign]  # (a spy on the one write)
    recorder = Recorder(store, site, source)
    recorder.record_many(recorder.plan_many(posts), NOW)
    assert queued and queued == sorted(queued)
