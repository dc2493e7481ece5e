"""The library's front door: one cycle of wpnotify's main job (read what changed on each site,
queue what it owes, send what is due), backfill, and sending what is due. The daemon and the
CLI call ``Service``; it composes the parts (``reading``, ``recording``, ``backfilling``, the
sender) over the sources, the state and the HTTP client it is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from wpnotify.http import Http
from wpnotify.plan import Known, Planned
from wpnotify.sender import Sender, Tally
from wpnotify.service.backfilling import Backfill, Backfiller, OnPage, OnPlanned
from wpnotify.service.reading import SiteReport, read_site
from wpnotify.service.recording import Recorder
from wpnotify.settings import Settings, SiteSettings
from wpnotify.sources import Post, Source, make_source
from wpnotify.state import State

__all__ = ["Backfill", "PollReport", "Service", "SiteReport", "make_sources", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_sources(settings: Settings, http: Http, per_page: int = 100) -> dict[str, Source]:
    """Each configured site's source, by site name, over its ``api``. ``per_page`` is
    WordPress's maximum, 100, unless a test lowers it."""
    return {site.name: make_source(http, site, per_page) for site in settings.sites}


@dataclass(frozen=True)
class PollReport:
    sites: list[SiteReport]
    delivery: Tally

    @property
    def ok(self) -> bool:
        return all(report.error is None for report in self.sites)


class Service:
    """Reads sites and sends their notifications, on one store and one HTTP client.

    ``sources``: one per configured site, by name (``make_sources`` builds them); a test
    passes stand-ins. ``sleep`` and ``stopping`` let a daemon cut waits short on shutdown."""

    def __init__(self, settings: Settings, store: State, http: Http, *,
                 sources: Mapping[str, Source],
                 clock: Callable[[], datetime] = utcnow,
                 sleep: Callable[[float], None] = time.sleep,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.sources = sources
        self.sender = Sender(settings, store, http, sources, clock, sleep, stopping)

    def poll(self) -> PollReport:
        """One full cycle for every configured site."""
        self.store.require_writable()
        reports = [self.read(site) for site in self.settings.sites]
        tally = self.sender.deliver([site.name for site in self.settings.sites])
        return PollReport(reports, tally)

    def read(self, site: SiteSettings) -> SiteReport:
        """Reads one site's changes and queues their notifications; never raises SourceError."""
        return read_site(self.store, site, self.sources[site.name], self.clock())

    def send_due(self, sites: list[str] | None = None) -> Tally:
        """Sends what is due for these sites (every configured site if None)."""
        names = [site.name for site in self.settings.sites] if sites is None else sites
        return self.sender.deliver(names)

    def owed(self, site: SiteSettings, source: Source, post: Post,
             announce: bool = False, known: Known | None = None) -> list[Planned]:
        """What a post owes beyond what the state holds (``known``: the targets it holds per
        kind); nothing unless published and open. ``announce``: also ping the update
        services (a fresh publish)."""
        return Recorder(self.store, site, source).owed(post, announce, known)

    def backfill(self, site: SiteSettings, since: datetime, until: datetime | None,
                 post_ids: list[int], *, dry_run: bool = False,
                 on_page: OnPage = lambda done, total: None,
                 on_planned: OnPlanned = lambda post, item: None) -> Backfill:
        """Sends what older published posts owe, page by page (memory stays flat), under the
        same rules and state as polling. ``dry_run`` sends and records nothing; each planned
        notification is handed to ``on_planned`` either way."""
        backfiller = Backfiller(self.store, self.sender, site, self.sources[site.name],
                                self.clock, on_page, on_planned)
        if dry_run:  # outside a sending cycle: no request to a receiver, nor to WordPress
            return backfiller.preview(since, until, post_ids)
        self.store.require_writable()
        with self.sender.cycle():  # one discovery cache for the whole archive
            return backfiller.run(since, until, post_ids)
