"""One cycle of wpnotify's main job: read what changed on each site, queue what it owes, send
what is due. The daemon and the CLI both call ``Service.poll``.

Which posts count (PROTOCOLS.md §5): published posts of the configured types. A scheduled post
is watched while ``future`` and handled when WordPress publishes it (its ``modified_gmt`` does
not move then, so the modified cursor alone would miss it). Drafts, pending and private posts are
never asked for; password-protected posts are never notified from, since their text would leak.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import structlog

from wpnotify import pingback, trackback
from wpnotify.discovery import extract_links, select_targets
from wpnotify.errors import SourceError
from wpnotify.http import Http
from wpnotify.sender import Sender, Tally
from wpnotify.settings import Settings, SiteSettings
from wpnotify.store import SiteState, Store, iso
from wpnotify.wordpress import Post, RestSource, SiteInfo, wp_format, wp_time

log = structlog.get_logger("wpnotify.service")
ALREADY_PINGED = "already in WordPress's pinged list (notified before wpnotify took over)"
NO_BRIDGE = ("the wpnotify bridge is not installed, so trackbacks queued in \"Send trackbacks "
             "to\" cannot be read and are not sent (pingbacks are); install "
             "wordpress/wpnotify-bridge.php as a must-use plugin, see README \"The bridge\"")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SiteReport:
    """How reading one site went."""

    site: str
    error: str | None = None
    posts: int = 0
    queued: int = 0
    first_poll: bool = False


@dataclass(frozen=True)
class PollReport:
    sites: list[SiteReport]
    delivery: Tally

    @property
    def ok(self) -> bool:
        return all(report.error is None for report in self.sites)


class Service:
    """Reads sites and sends their notifications, on one store and one HTTP client."""

    def __init__(self, settings: Settings, store: Store, http: Http, *,
                 clock: Callable[[], datetime] = utcnow,
                 sleep: Callable[[float], None] = time.sleep,
                 stopping: Callable[[], bool] = lambda: False, per_page: int = 100) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.sources = {site.name: RestSource(http, site, per_page) for site in settings.sites}
        self.sender = Sender(settings, store, http, self.sources, clock, sleep, stopping)

    def poll(self) -> PollReport:
        """One full cycle for every configured site."""
        reports = [self.read(site) for site in self.settings.sites]
        tally = self.sender.deliver([site.name for site in self.settings.sites])
        return PollReport(reports, tally)

    def read(self, site: SiteSettings) -> SiteReport:
        """Reads one site's changes and queues their notifications; never raises SourceError."""
        source = self.sources[site.name]
        now = self.clock()
        state = self.store.site(site.name)
        try:
            if state is None or state.cursor is None:
                return self._start(site, source, now)
            cursor, posts, queued, bridge = state.cursor, 0, 0, None
            for post in self._changes(site, source, state, now):
                posts += 1
                queued += self._consider(site, source, post, now)
                if post.status == "publish":  # a future post's modified_gmt is its future date
                    cursor = max(cursor, min(post.modified_gmt, wp_format(now)))
                if bridge is None:
                    bridge = post.to_ping is not None
        except SourceError as exc:
            log.error("site.unreadable", site=site.name, error=str(exc))
            self.store.record_poll(site.name, now, error=str(exc))
            return SiteReport(site.name, error=str(exc))
        if bridge is False and state.bridge is not False:
            log.warning("site.no_bridge", site=site.name, detail=NO_BRIDGE)
        self.store.record_poll(site.name, now, cursor=cursor, bridge=bridge)
        log.info("site.read", site=site.name, posts=posts, queued=queued, cursor=cursor)
        return SiteReport(site.name, posts=posts, queued=queued)

    def _changes(self, site: SiteSettings, source: RestSource, state: SiteState,
                 now: datetime) -> Iterator[Post]:
        """Posts modified since the cursor, then watched scheduled posts whose time has come."""
        for post in source.changed(state.cursor or wp_format(now)):
            if (post.id, post.modified_gmt) not in state.baseline:  # archive when we began
                yield post
        if due := self.store.scheduled_due(site.name, now):
            found = source.posts(due)
            present = {p.id for p in found}
            self.store.unwatch(site.name, [i for i in due if i not in present])  # trashed
            yield from found

    def _start(self, site: SiteSettings, source: RestSource, now: datetime) -> SiteReport:
        """The first poll of a site: remember where "now" is, and the posts scheduled for
        later; notify nothing from the archive (that is backfill's job)."""
        cursor = source.newest_modified() or wp_format(now)
        # Later polls ask from a little before the cursor (wordpress.OVERLAP), so the posts of
        # that window are remembered as archive, not news.
        baseline = [(p.id, p.modified_gmt) for p in source.changed(cursor)
                    if p.status == "publish"]
        for post in source.scheduled():
            self._watch(site, post)
        self.store.record_poll(site.name, now, cursor=cursor, baseline=baseline)
        log.info("site.first_poll", site=site.name, cursor=cursor,
                 detail="watching from now on; older posts are not notified")
        return SiteReport(site.name, first_poll=True)

    def _watch(self, site: SiteSettings, post: Post) -> None:
        if post.date_gmt:
            self.store.watch(site.name, post.id, iso(wp_time(post.date_gmt)))

    def _consider(self, site: SiteSettings, source: RestSource, post: Post,
                  now: datetime) -> int:
        """Queues what one post owes; returns how many notifications were new."""
        if post.status == "future":
            self._watch(site, post)
            return 0
        if post.status != "publish":
            self.store.unwatch(site.name, [post.id])
            return 0
        self.store.unwatch(site.name, [post.id])
        if post.protected:
            log.info("post.skipped", site=site.name, post=post.id, reason="password-protected")
            return 0
        info = source.info()
        return (self._queue_pingbacks(site, info, post, now)
                + self._queue_trackbacks(site, source, info, post, now))

    def _queue_pingbacks(self, site: SiteSettings, info: SiteInfo, post: Post,
                         now: datetime) -> int:
        links = extract_links(post.content_html, post.link)
        targets = select_targets(links, permalink=post.link, home=info.home,
                                 self_pings=site.self_pings)
        known = self.store.targets(site.name, post.id, pingback.KIND)
        pinged = set(post.pinged or ())
        queued = 0
        for target in targets:
            if target in known:
                continue
            if target in pinged:
                self.store.add(site.name, post.id, pingback.KIND, target, post.link, now,
                               status="skipped", error=ALREADY_PINGED,
                               error_code="already-pinged")
            else:
                queued += self.store.add(site.name, post.id, pingback.KIND, target, post.link,
                                         now)
        return queued

    def _queue_trackbacks(self, site: SiteSettings, source: RestSource, info: SiteInfo,
                          post: Post, now: datetime) -> int:
        if not post.to_ping:
            return 0
        known = self.store.targets(site.name, post.id, trackback.KIND)
        pinged = set(post.pinged or ())
        fresh = [url for url in dict.fromkeys(post.to_ping) if url not in known]
        if not fresh:
            return 0
        ping = trackback.build_ping(permalink=post.link, title_html=post.title_html,
                                    content_html=post.content_html,
                                    excerpt_html=post.excerpt_html, blog_name=info.name)
        queued, already = 0, []
        for url in fresh:
            if url in pinged:
                already.append(url)
                self.store.add(site.name, post.id, trackback.KIND, url, post.link, now,
                               status="skipped", error=ALREADY_PINGED,
                               error_code="already-pinged")
            else:
                queued += self.store.add(site.name, post.id, trackback.KIND, url, post.link,
                                         now, payload=asdict(ping))
        if already:  # core would drop them from to_ping too
            try:
                source.record_pinged(post.id, already)
            except SourceError as exc:
                log.warning("wordpress.record_pinged_failed", site=site.name, post=post.id,
                            error=str(exc))
        return queued
