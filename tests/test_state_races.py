"""Several processes on one state file at the same moment: creating it, and planning the same
post. Each must see the other's work and go on, never fail or record a thing twice."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from standins import OnePostSite

from wpnotify.errors import StateError
from wpnotify.http import Http
from wpnotify.sending.backlog import Tally
from wpnotify.service import Service
from wpnotify.settings import Settings, SiteSettings
from wpnotify.sources import Post
from wpnotify.state import Finished, Status
from wpnotify.state.migrations import LATEST
from wpnotify.state.sqlite import SqliteState
from wpnotify.times import wp_time

OPENERS = 8


def open_at_once(path: Path, count: int) -> list[StateError]:
    """``count`` threads open ``path`` at one moment, each with its own connection (as
    separate processes have); returns the errors."""
    start = threading.Barrier(count)
    errors: list[StateError] = []

    def open_it() -> None:
        start.wait()
        try:
            SqliteState.open(path).close()
        except StateError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_threads_creating_one_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """The migrations are applied once, and those who find them done go on."""
    for round_ in range(20):
        path = tmp_path / f"state{round_}.sqlite3"
        assert open_at_once(path, OPENERS) == []
        check = SqliteState.open(path)
        assert check.db.execute("PRAGMA user_version").fetchone()[0] == LATEST
        assert [r[0] for r in check.db.execute("SELECT version FROM migrations")] == list(
            range(1, LATEST + 1))
        check.close()


def test_processes_creating_one_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """`wpnotify status` while a fresh daemon creates the file: real processes."""
    path = tmp_path / "state.sqlite3"
    at = time.time() + 1.5  # every process imports first, then all open at this moment
    code = ("import sys, time; from pathlib import Path; "
            "from wpnotify.state.sqlite import SqliteState; "
            "from wpnotify.errors import StateError\n"
            f"time.sleep(max({at!r} - time.time(), 0))\n"
            "try:\n    SqliteState.open(Path(sys.argv[1])).close()\n"
            "except StateError as exc:\n    print(exc); sys.exit(1)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(OPENERS)]
    outputs = [(proc.wait(timeout=60), proc.communicate()[0]) for proc in procs]
    assert all(rc == 0 for rc, _ in outputs), outputs


LINKS = [f"https://r{i}.example/page" for i in range(40)]
NOW = datetime(2026, 11, 26, 12, 40, tzinfo=UTC)


class OnePost(OnePostSite):
    """A site whose one new post links to LINKS (only what Service.read asks)."""

    post = Post(id=7, type="post", status="publish", link="https://s.example/7/",
                title_html="T", content_html="".join(f'<a href="{u}">x</a>' for u in LINKS),
                excerpt_html="", protected=False, modified_gmt=wp_time("2026-11-26T12:39:00"),
                date_gmt=wp_time("2026-11-26T12:39:00"), to_ping=(), pinged=())


class Interleaved(SqliteState):
    """A store that, between the first read of what a post already has and the next write
    unit of work, lets ``rival`` run (in another thread, as another process would) for up to
    a second. Where deciding and inserting were apart, the rival does all its work in that
    gap; where they are one step, it waits for the write lock."""

    def __init__(self, db: sqlite3.Connection, path: Path, read_only: bool = False) -> None:
        super().__init__(db, path, read_only)
        self.rival: Callable[[], None] = lambda: None
        self.stage = "waiting"  # then "read" (a post's rows were read), then "done"
        self.threads: list[threading.Thread] = []

    def targets_by_kind(self, site: str, post_ids: Collection[int]
                        ) -> dict[int, dict[str, set[str]]]:
        if self.stage == "waiting":
            self.stage = "read"
        return super().targets_by_kind(site, post_ids)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        if self.stage == "read":
            self.stage = "done"
            thread = threading.Thread(target=self.rival)
            thread.start()
            thread.join(1.0)
            self.threads.append(thread)
        with super().atomic():
            yield


def poll_service(path: Path, store_class: type[SqliteState] = SqliteState) -> Service:
    settings = Settings(sites=(SiteSettings(name="s", url="https://s.example", username="u",
                                            password="p"),))
    store = store_class.open(path)
    return Service(settings, store, Http(settings.http), sources={"s": OnePost()},
                   clock=lambda: NOW)


def test_two_polls_of_one_post_record_and_report_it_once(tmp_path: Path) -> None:
    """The second poll plans the post; the first then records it and sends one Webmention
    row as a pingback (it fell back); then the second records. One row per link, the new
    ones reported once in all, no phantom Webmention row to end `skipped/duplicate`."""
    path = tmp_path / "state.sqlite3"
    setup = SqliteState.open(path)
    setup.record_poll("s", NOW, cursor=wp_time("2026-11-26T12:00:00"))
    setup.close()
    first = poll_service(path)
    second = poll_service(path, Interleaved)
    reports = []

    def rival() -> None:
        reports.append(first.read(first.settings.sites[0]))
        (row,) = [r for r in first.store.history(limit=1000) if r.target == LINKS[0]]
        assert row.kind == "webmention" and first.store.claim(row.id, NOW)
        assert first.store.finish_many([Finished(row.id, Status.SENT, kind="pingback")],
                                       NOW) == {row.id}

    store = second.store
    assert isinstance(store, Interleaved)
    store.rival = rival
    reports.append(second.read(second.settings.sites[0]))
    assert len(store.threads) == 1
    store.threads[0].join(10)
    assert len(reports) == 2 and all(r.error is None for r in reports)
    rows = first.store.history(limit=1000)
    assert sorted(r.target for r in rows) == sorted(LINKS)  # one row per link
    assert sum(r.queued for r in reports) == len(LINKS)
    assert {r.kind for r in rows if r.target == LINKS[0]} == {"pingback"}


def test_a_backfill_beside_a_poll_records_and_reports_the_post_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backfill plans the post; a poll records it before the backfill does: the
    backfill's summary counts nothing of it, and no second set of rows appears."""
    path = tmp_path / "state.sqlite3"
    setup = SqliteState.open(path)
    setup.record_poll("s", NOW, cursor=wp_time("2026-11-26T12:00:00"))
    setup.close()
    poll, backfill = poll_service(path), poll_service(path, Interleaved)
    for service in (poll, backfill):  # what is recorded is the point here, not the sending
        monkeypatch.setattr(service.sender, "deliver", lambda *a, **k: Tally())
    reports = []
    store = backfill.store
    assert isinstance(store, Interleaved)
    store.rival = lambda: reports.append(poll.read(poll.settings.sites[0]))
    summary = backfill.backfill(backfill.settings.sites[0], NOW - timedelta(days=1), None, [7])
    assert len(store.threads) == 1
    store.threads[0].join(10)
    assert sorted(r.target for r in poll.store.history(limit=1000)) == sorted(LINKS)
    assert reports[0].queued + summary.planned == len(LINKS)
