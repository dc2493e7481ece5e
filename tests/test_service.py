"""The service's reading of a site, with a stand-in source: what a poll remembers between
polls, where real WordPress cannot be timed to the second."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from standins import StandinSource

from wpnotify.http import Http
from wpnotify.service import Service, make_sources
from wpnotify.settings import Settings, SiteSettings
from wpnotify.sources import Changes, Deleted, Post
from wpnotify.state.sqlite import SqliteState
from wpnotify.times import wp_text, wp_time

NOW = datetime(2026, 11, 26, 12, 40, tzinfo=UTC)


class Bridge(StandinSource):
    """A site with nothing new but posts deleted for good, listed as the bridge lists them:
    those deleted after ``since``, strictly, with WordPress's clock at the answer."""

    def __init__(self) -> None:
        self.log: list[Deleted] = []
        self.clock: datetime | None = None
        self.asked: list[str] = []  # as WordPress's text, as the request carries it

    def changed(self, since: datetime, seen: frozenset[tuple[int, datetime]] = frozenset()
                ) -> Changes:
        """Nothing changed; these changes do not say whether anything was deleted."""
        return Changes(())

    def deletions(self, since: datetime) -> list[Deleted]:
        self.asked.append(wp_text(since))
        return [Deleted(d.id, d.type, d.link, d.deleted_gmt, self.clock)
                for d in self.log if d.deleted_gmt > since]

    def bridge(self) -> bool:
        """The bridge's own answer (asked by a poll once it decides by it)."""
        return True


def reading(tmp_path: Path, site: Bridge) -> tuple[Settings, SqliteState, Service]:
    """One site's settings, a fresh state file, and the service reading it at NOW through
    the stand-in ``site``."""
    settings = Settings(sites=(SiteSettings(name="s", url="https://s.example", username="u",
                                            password="p"),))
    store = SqliteState.open(tmp_path / "state.sqlite3")
    return settings, store, Service(settings, store, Http(settings.http), sources={"s": site},
                                    clock=lambda: NOW)


def test_a_deletion_later_in_the_second_of_the_last_one_read_is_not_missed(
        tmp_path: Path) -> None:
    """Two posts deleted for good in one second, a poll reading between them: the next poll
    asks from the start of that second again, so the second deletion is followed too."""
    bridge = Bridge()
    settings, store, service = reading(tmp_path, bridge)
    store.record_poll("s", NOW, cursor=wp_time("2026-11-26T12:00:00"),
                      deletions_seen=wp_time("2026-11-26T12:00:00"))
    for post in (7, 8):  # each sent a Webmention while it was public
        store.add("s", post, "webmention", f"https://r.example/{post}", f"https://s.example/{post}",
                  NOW)
        [row] = store.history(post_id=post)
        store.finish(row.id, "sent", NOW)

    bridge.log.append(Deleted(7, "post", "https://s.example/7", wp_time("2026-11-26T12:39:34")))
    bridge.clock = wp_time("2026-11-26T12:39:34")  # the same second: more may come in it
    service.read(settings.sites[0])
    bridge.log.append(Deleted(8, "post", "https://s.example/8", wp_time("2026-11-26T12:39:34")))
    bridge.clock = wp_time("2026-11-26T12:39:50")
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

    def newest_modified(self) -> datetime | None:
        return wp_time("2026-11-26T12:39:00")

    def scheduled(self) -> Iterator[Post]:
        return iter(())


def test_a_deletion_in_the_second_of_the_first_poll_is_not_missed(tmp_path: Path) -> None:
    """The first poll marks where deletions start; one later in that very second (a post
    published, notified and deleted for good within it) is followed all the same."""
    bridge = FirstPollBridge()
    settings, store, service = reading(tmp_path, bridge)
    service.read(settings.sites[0])  # the first poll, at 12:40:00.000
    store.add("s", 9, "webmention", "https://r.example/9", "https://s.example/9", NOW)
    [row] = store.history(post_id=9)
    store.finish(row.id, "sent", NOW)
    bridge.log.append(Deleted(9, "post", "https://s.example/9", wp_time("2026-11-26T12:40:00")))
    bridge.clock = wp_time("2026-11-26T12:40:05")
    service.read(settings.sites[0])
    [row] = store.history(post_id=9)
    assert row.status == "pending", bridge.asked
    assert row.payload["resend"] == "the post is no longer public (deleted)"


class Outbox(StandinSource):
    """A site whose outbox of links to add to `pinged` is all the service has to send."""

    def __init__(self) -> None:
        self.told: list[dict[int, list[str]]] = []

    def record_pinged_many(self, posts: Mapping[int, list[str]]) -> None:
        self.told.append(dict(posts))


def test_send_due_sends_for_the_sites_named_or_else_for_every_site(tmp_path: Path) -> None:
    """The daemon's retry tick sends for every site, a site's poll for that site only: a
    cycle tells WordPress about the sites it delivered, no others."""
    settings = Settings(sites=tuple(SiteSettings(name=n, url=f"https://{n}.example",
                                                 username="u", password="p") for n in "ab"))
    store = SqliteState.open(tmp_path / "state.sqlite3")
    sites = {name: Outbox() for name in "ab"}
    for name in "ab":
        store.record_poll(name, NOW, cursor=wp_time("2026-11-26T12:00:00"), bridge=True)
        store.queue_pinged_many([(name, 3, f"https://{name}.example/t")], NOW)
    service = Service(settings, store, Http(settings.http), sources=sites, clock=lambda: NOW)
    service.send_due(["a"])
    assert (sites["a"].told, sites["b"].told) == ([{3: ["https://a.example/t"]}], [])
    store.queue_pinged_many([("a", 4, "https://a.example/u")], NOW)
    service.send_due()
    assert sites["a"].told[1:] == [{4: ["https://a.example/u"]}]
    assert sites["b"].told == [{3: ["https://b.example/t"]}]


def test_make_sources_gives_each_site_the_source_of_its_api() -> None:
    """One source per configured site, by name, over REST or XML-RPC as configured."""
    from wpnotify.sources.rest import RestSource
    from wpnotify.sources.xmlrpc import XmlrpcSource

    settings = Settings(sites=(
        SiteSettings(name="r", url="https://r.example", username="u", password="p"),
        SiteSettings(name="x", url="https://x.example", username="u", password="p",
                     api="xmlrpc")))
    sources = make_sources(settings, Http(settings.http), per_page=3)
    assert set(sources) == {"r", "x"}
    assert isinstance(sources["r"], RestSource) and isinstance(sources["x"], XmlrpcSource)
    assert sources["r"].per_page == sources["x"].per_page == 3
