"""The service's reading of a site, with a stand-in source: what a poll remembers between
polls, where real WordPress cannot be timed to the second."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from wpnotify.http import Http
from wpnotify.service import Service
from wpnotify.settings import Settings, SiteSettings
from wpnotify.state.sqlite import SqliteState
from wpnotify.times import wp_time
from wpnotify.wordpress import Deleted, Post

NOW = datetime(2026, 11, 26, 12, 40, tzinfo=UTC)


class Bridge:
    """A site with nothing new but posts deleted for good, listed as the bridge lists them:
    those deleted after ``since``, strictly, with WordPress's clock at the answer."""

    def __init__(self) -> None:
        self.log: list[Deleted] = []
        self.clock = ""
        self.asked: list[str] = []

    def changed(self, since: str, seen: frozenset[tuple[int, str]] = frozenset()
                ) -> Iterator[Post]:
        return iter(())

    def deletions(self, since: str) -> list[Deleted]:
        self.asked.append(since)
        return [Deleted(d.id, d.type, d.link, d.deleted_gmt, self.clock)
                for d in self.log if d.deleted_gmt > since]

    def bridge(self) -> bool:
        """The bridge's own answer (asked by a poll once it decides by it)."""
        return True


def reading(tmp_path: Path) -> tuple[Settings, SqliteState, Service]:
    """One site's settings, a fresh state file, and the service reading it at NOW."""
    settings = Settings(sites=(SiteSettings(name="s", url="https://s.example", username="u",
                                            password="p"),))
    store = SqliteState.open(tmp_path / "state.sqlite3")
    return settings, store, Service(settings, store, Http(settings.http), clock=lambda: NOW)


def test_a_deletion_later_in_the_second_of_the_last_one_read_is_not_missed(
        tmp_path: Path) -> None:
    """Two posts deleted for good in one second, a poll reading between them: the next poll
    asks from the start of that second again, so the second deletion is followed too."""
    settings, store, service = reading(tmp_path)
    bridge = Bridge()
    service.sources["s"] = bridge  # type: ignore[assignment]  # only what read() asks
    store.record_poll("s", NOW, cursor=wp_time("2026-11-26T12:00:00"),
                      deletions_seen=wp_time("2026-11-26T12:00:00"))
    for post in (7, 8):  # each sent a Webmention while it was public
        store.add("s", post, "webmention", f"https://r.example/{post}", f"https://s.example/{post}",
                  NOW)
        [row] = store.history(post_id=post)
        store.finish(row.id, "sent", NOW)

    bridge.log.append(Deleted(7, "post", "https://s.example/7", "2026-11-26T12:39:34"))
    bridge.clock = "2026-11-26T12:39:34"  # the same second: more may come in it
    service.read(settings.sites[0])
    bridge.log.append(Deleted(8, "post", "https://s.example/8", "2026-11-26T12:39:34"))
    bridge.clock = "2026-11-26T12:39:50"
    service.read(settings.sites[0])
    service.read(settings.sites[0])

    assert bridge.asked == ["2026-11-26T12:00:00", "2026-11-26T12:39:33",
                            "2026-11-26T12:39:34"]  # settled: from the second after
    for post in (7, 8):
        [row] = store.history(post_id=post)
        assert row.status == "pending"
        assert row.payload["resend"] == "the post is no longer public (deleted)"


class FirstPollBridge(Bridge):
    """What the first poll asks of a site besides its deletions."""

    def newest_modified(self) -> str | None:
        return "2026-11-26T12:39:00"

    def scheduled(self) -> Iterator[Post]:
        return iter(())


def test_a_deletion_in_the_second_of_the_first_poll_is_not_missed(tmp_path: Path) -> None:
    """The first poll marks where deletions start; one later in that very second (a post
    published, notified and deleted for good within it) is followed all the same."""
    settings, store, service = reading(tmp_path)
    bridge = FirstPollBridge()
    service.sources["s"] = bridge  # type: ignore[assignment]  # only what read() asks
    service.read(settings.sites[0])  # the first poll, at 12:40:00.000
    store.add("s", 9, "webmention", "https://r.example/9", "https://s.example/9", NOW)
    [row] = store.history(post_id=9)
    store.finish(row.id, "sent", NOW)
    bridge.log.append(Deleted(9, "post", "https://s.example/9", "2026-11-26T12:40:00"))
    bridge.clock = "2026-11-26T12:40:05"
    service.read(settings.sites[0])
    [row] = store.history(post_id=9)
    assert row.status == "pending", bridge.asked
    assert row.payload["resend"] == "the post is no longer public (deleted)"
