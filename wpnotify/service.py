"""One cycle of wpnotify's main job: read what changed on each site, queue what it owes, send
what is due. The daemon and the CLI both call ``Service.poll``.

Which posts count (PROTOCOLS.md §5): published posts of the configured types. A scheduled post
is watched while ``future`` and handled when WordPress publishes it (its ``modified_gmt`` does
not move then, so the modified cursor alone would miss it). Drafts, pending and private posts are
never asked for; password-protected posts are never notified from, since their text would leak.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import structlog

from wpnotify import trackback, webmention
from wpnotify.discovery import extract_links, select_targets
from wpnotify.errors import SourceError, WpnotifyError
from wpnotify.http import Http
from wpnotify.plan import Known, Planned, plan
from wpnotify.sender import Feed, Sender, Tally
from wpnotify.settings import Settings, SiteSettings
from wpnotify.state import SiteState, State, Status
from wpnotify.wordpress import (
    OVERLAP,
    Deleted,
    Post,
    Source,
    make_source,
    wp_format,
    wp_time,
)

log = structlog.get_logger("wpnotify.service")
T = TypeVar("T")
# A post dated within this window is a fresh publish, announced to update services; an older
# one seen again (edited, backfilled) is not. Generous, for a daemon that was down a while.
ANNOUNCE_WINDOW = timedelta(days=1)
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

    def __init__(self, settings: Settings, store: State, http: Http, *,
                 clock: Callable[[], datetime] = utcnow,
                 sleep: Callable[[float], None] = time.sleep,
                 stopping: Callable[[], bool] = lambda: False, per_page: int = 100) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.sources = {site.name: make_source(http, site, per_page)
                        for site in settings.sites}
        self.sender = Sender(settings, store, http, self.sources, clock, sleep, stopping)

    def poll(self) -> PollReport:
        """One full cycle for every configured site."""
        self.store.require_writable()
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
            cursor, posts, queued = wp_format(state.cursor), 0, 0
            handled: set[tuple[int, str]] = set()
            for post in self._changes(site, source, state, now):
                posts += 1
                if post.settled:  # else it may change again in that second: read it again
                    handled.add((post.id, post.modified_gmt))
                queued += self._guard(site, post,
                                      partial(self._consider, site, source, post, now), 0)
                if post.status != "future":  # a future post's modified_gmt is its future date
                    cursor = max(cursor, min(post.modified_gmt, wp_format(now)))
            deletions_seen = self._follow_deletions(site, source, state, now)
            # Asked of the bridge itself, once per poll that read posts (an idle poll stays
            # one request); a post whose lists were not read is no sign of a missing bridge.
            bridge = self._bridge(site, source) if posts else None
        except SourceError as exc:
            log.error("site.unreadable", site=site.name, error=str(exc))
            self.store.record_poll(site.name, now, error=str(exc))
            return SiteReport(site.name, error=str(exc))
        if bridge is False and state.bridge is not False:
            log.warning("site.no_bridge", site=site.name, detail=NO_BRIDGE)
        # What was read in the window that the next poll reads again: it skips those.
        window = wp_format(wp_time(cursor) - OVERLAP)
        seen = sorted(key for key in baseline_of(state) | handled if key[1] >= window)
        self.store.record_poll(site.name, now, cursor=wp_time(cursor), bridge=bridge,
                               deletions_seen=None if deletions_seen is None
                               else wp_time(deletions_seen),
                               baseline=[(i, wp_time(modified)) for i, modified in seen])
        log.info("site.read", site=site.name, posts=posts, queued=queued, cursor=cursor)
        return SiteReport(site.name, posts=posts, queued=queued)

    def _bridge(self, site: SiteSettings, source: Source) -> bool | None:
        """Whether the site runs the bridge; None (the stored answer stays) when it cannot be
        asked now: the posts are read and queued, so one more failing request must not fail
        the poll and hold its cursor back."""
        try:
            return source.bridge()
        except SourceError as exc:
            log.warning("site.bridge_unknown", site=site.name, error=str(exc))
            return None

    def _changes(self, site: SiteSettings, source: Source, state: SiteState,
                 now: datetime) -> Iterator[Post]:
        """Posts modified since the cursor, then watched scheduled posts whose time has come."""
        # ``baseline``: posts of the overlap window already handled (or, after the first poll,
        # the archive when we began): read again with the same modified time, they are skipped.
        yield from source.changed(wp_format(state.cursor or now), baseline_of(state))
        if due := self.store.scheduled_due(site.name, now):
            found = source.posts(due)
            present = {p.id for p in found}
            self.store.unwatch(site.name, [i for i in due if i not in present])  # trashed
            yield from found

    def _start(self, site: SiteSettings, source: Source, now: datetime) -> SiteReport:
        """The first poll of a site: remember where "now" is, and the posts scheduled for
        later; notify nothing from the archive (that is backfill's job)."""
        cursor = source.newest_modified() or wp_format(now)
        # Later polls ask from a little before the cursor (wordpress.OVERLAP), so the posts of
        # that window are remembered as archive, not news.
        baseline = [(p.id, p.modified_gmt) for p in source.changed(cursor)
                    if p.status == "publish"]
        for post in source.scheduled():
            self._watch(site, post)
        # Deletions are asked for strictly after this mark, to the second: a post deleted later
        # in this very second would be missed, so the mark is the second before. (What was
        # deleted earlier in it has no sent Webmention to take back: nothing is resent.)
        self.store.record_poll(site.name, now, cursor=wp_time(cursor),
                               baseline=[(i, wp_time(modified)) for i, modified in baseline],
                               deletions_seen=now - timedelta(seconds=1))
        log.info("site.first_poll", site=site.name, cursor=cursor,
                 detail="watching from now on; older posts are not notified")
        return SiteReport(site.name, first_poll=True)

    def _watch(self, site: SiteSettings, post: Post) -> None:
        if post.date_gmt:
            self.store.watch(site.name, post.id, wp_time(post.date_gmt))

    def _guard(self, site: SiteSettings, post: Post, work: Callable[[], T], failed: T) -> T:
        """Runs the work for one post; a bug it trips is logged and passed over (``failed``
        stands for its result), so one bad post cannot block its site forever (backfill can
        send it once fixed)."""
        try:
            return work()
        except WpnotifyError:
            raise
        except Exception:  # noqa: BLE001 (the isolation boundary for one post)
            log.exception("post.failed", site=site.name, post=post.id)
            return failed

    def _consider(self, site: SiteSettings, source: Source, post: Post,
                  now: datetime) -> int:
        """Queues what one post owes; returns how many notifications were new."""
        if post.status == "future":
            self._watch(site, post)
            return 0
        self.store.unwatch(site.name, [post.id])
        info = source.info()
        self._follow_webmentions(site, post, info.home, now)
        fresh = post.date_gmt is not None and wp_time(post.date_gmt) >= now - ANNOUNCE_WINDOW
        recorded = self._record(site, source, self._plan(site, source, post, fresh), now)
        return sum(item.status == "pending" for item in recorded)

    def _follow_webmentions(self, site: SiteSettings, post: Post, home: str,
                            now: datetime) -> None:
        """Webmention's update and delete rules (PROTOCOLS.md §3.3): a target whose link left
        the post, or every target of a post that is no longer public, is sent the Webmention
        again, once, so the receiver re-checks the source (and finds the link, or the post,
        gone); a link that comes back, or a post public again, likewise. Pingbacks and
        trackbacks have no such rules and are never sent again."""
        public = post.status == "publish" and not post.protected
        links = set(select_targets(extract_links(post.content_html, post.link),
                                   permalink=post.link, home=home,
                                   self_pings=site.self_pings)) if public else set()
        self._resend_changed(site, post.id, links, public, post.status, now)

    def _follow_deletions(self, site: SiteSettings, source: Source, state: SiteState,
                          now: datetime) -> str | None:
        """Posts deleted for good (the bridge remembers them): their Webmention targets are
        told, like a trashed post's. Returns the newest deletion handled."""
        since = wp_format(state.deletions_seen or now - timedelta(seconds=1))
        newest: Deleted | None = None
        for gone in source.deletions(since):
            if gone.type in site.post_types:
                self._resend_changed(site, gone.id, set(), False, "deleted", now)
            if newest is None or gone.deleted_gmt > newest.deleted_gmt:
                newest = gone
        if newest is None:
            return None
        if not newest.settled:  # more may come in that second: ask from its start next time
            return wp_format(wp_time(newest.deleted_gmt) - timedelta(seconds=1))
        return newest.deleted_gmt

    def _resend_changed(self, site: SiteSettings, post_id: int, links: set[str],
                        public: bool, status: str, now: datetime) -> None:
        for row in self.store.history(site=site.name, post_id=post_id, kind=webmention.KIND,
                                      status=Status.SENT, limit=100_000):
            was_gone = bool(row.payload.get("gone"))
            gone = row.target not in links
            if gone == was_gone:
                continue
            why = ("the link is back in the post" if not gone else
                   "the link was removed from the post" if public else
                   f"the post is no longer public ({status})")
            self.store.resend(row.id, now, {**row.payload, "gone": gone, "resend": why})
            log.info("webmention.resend", site=site.name, post=post_id, target=row.target,
                     reason=why)

    def _plan(self, site: SiteSettings, source: Source, post: Post,
              announce: bool = False) -> Plan:
        """What a post owes, worked out outside any transaction (parsing a page of posts
        must not hold the sender's commits), with the state it was worked out from."""
        seen: dict[str, set[str]] = {}

        def known(kind: str) -> set[str]:
            if kind not in seen:
                seen[kind] = self.store.targets(site.name, post.id, kind)
            return seen[kind]

        return Plan(post, announce, self.owed(site, source, post, announce, known), seen)

    def _record(self, site: SiteSettings, source: Source, plan: Plan,
                now: datetime) -> list[Planned]:
        """Records a plan, in one write transaction (the caller's, if it has one), and returns
        what was really recorded. Deciding and inserting are one step against other
        processes: under the write lock the post's rows are read again, and if another
        process (a second poll, a backfill beside the daemon) recorded some since the plan
        was made (a Webmention row that went out as a pingback included), the post is
        planned again from them. So each notification is recorded, and counted as new, once.
        (The plan is a pure function of the post and these rows.)"""
        with self.store.atomic():
            owed = plan.owed
            if any(self.store.targets(site.name, plan.post.id, kind) != targets
                   for kind, targets in plan.seen.items()):
                owed = self.owed(site, source, plan.post, plan.announce)
            recorded = [item for item in owed
                        if self.store.add(site.name, plan.post.id, item.kind, item.target,
                                          plan.post.link, now, payload=item.payload,
                                          status=Status(item.status), error=item.error,
                                          error_code=item.error_code)]
            # Queued trackbacks WordPress had already pinged leave to_ping, as core would do:
            # WordPress is told at the end of the cycle, from the state file's outbox (so
            # never lost). Those skipped for another reason (refused, too many, a bad URL)
            # were never sent, so they stay queued in WordPress, not marked as pinged.
            self.store.queue_pinged(site.name, plan.post.id, [
                item.target for item in recorded
                if item.kind == trackback.KIND and item.error_code == "already-pinged"], now)
            return recorded

    def owed(self, site: SiteSettings, source: Source, post: Post,
             announce: bool = False, known: Known | None = None) -> list[Planned]:
        """What a post owes beyond what the state holds (``known``: the targets it holds per
        kind); nothing unless published and open. ``announce``: also ping the update
        services (a fresh publish)."""
        if post.status != "publish" or post.type not in site.post_types:
            return []
        if post.protected:
            log.info("post.skipped", site=site.name, post=post.id, reason="password-protected")
            return []
        info = source.info()
        return plan(post, site, home=info.home, blog_name=info.name, announce=announce,
                    known=known or (lambda kind: self.store.targets(site.name, post.id, kind)))

    def backfill(self, site: SiteSettings, since: datetime, until: datetime | None,
                 post_ids: list[int], *, dry_run: bool = False,
                 on_page: Callable[[int, int], None] = lambda done, total: None,
                 on_planned: Callable[[Post, Planned], None] = lambda post, item: None,
                 ) -> Backfill:
        """Sends what older published posts owe, page by page (memory stays flat), under the
        same rules and state as polling. ``dry_run`` sends and records nothing; each planned
        notification is handed to ``on_planned`` either way."""
        if dry_run:  # outside a sending cycle: no request to a receiver, nor to WordPress
            return self._backfill(site, since, until, post_ids, dry_run, on_page, on_planned)
        self.store.require_writable()
        with self.sender.cycle():  # one discovery cache for the whole archive
            return self._backfill(site, since, until, post_ids, dry_run, on_page, on_planned)

    def _backfill(self, site: SiteSettings, since: datetime, until: datetime | None,
                  post_ids: list[int], dry_run: bool, on_page: Callable[[int, int], None],
                  on_planned: Callable[[Post, Planned], None]) -> Backfill:
        """Reading and sending overlap: a reader thread reads and plans page after page (one
        page ahead at most), and the sender takes each page's notifications as they come,
        with no pause between pages."""
        source = self.sources[site.name]
        result = Backfill()
        pages = ([(source.posts(post_ids), len(post_ids))] if post_ids
                 else source.archive(since, until))
        if dry_run:
            done = 0
            for posts, total in pages:
                self._plan_page(site, source, posts, result, on_planned, record=False)
                done += len(posts)
                on_page(done, total)
            return result
        feed = Feed()
        failure: list[BaseException] = []

        def read() -> None:
            done = 0
            try:
                for posts, total in pages:
                    self._plan_page(site, source, posts, result, on_planned, record=True)
                    done += len(posts)
                    on_page(done, total)
                    if posts and not feed.put({p.id for p in posts}):
                        return  # the delivery stopped (a shutdown)
            except BaseException as exc:  # noqa: BLE001 (raised again on the caller's thread)
                failure.append(exc)
            finally:
                feed.close()

        reader = threading.Thread(target=read, name="wpnotify-backfill-reader", daemon=True)
        reader.start()
        try:
            tally = self.sender.deliver([site.name], set(), feed=feed)
        finally:
            feed.cancel()
            reader.join()
        result.delivery.add(tally)
        if failure:
            raise failure[0]
        return result

    def _plan_page(self, site: SiteSettings, source: Source, posts: list[Post],
                   result: Backfill, on_planned: Callable[[Post, Planned], None],
                   record: bool) -> None:
        """Plans a page of posts; recording, counts only what was really recorded (another
        process may have recorded some of it meanwhile)."""
        plans = [plan for post in posts
                 if (plan := self._guard(site, post, partial(self._plan, site, source, post),
                                         None)) is not None]
        if record:
            with self.store.atomic():  # one commit for the page
                recorded = [(plan.post, self._guard(site, plan.post, partial(
                    self._record, site, source, plan, self.clock()), list[Planned]()))
                    for plan in plans]
        else:
            recorded = [(plan.post, plan.owed) for plan in plans]
        for post, owed in recorded:
            for item in owed:
                on_planned(post, item)
            result.planned += len(owed)
            result.delivery.skipped += sum(item.status == "skipped" for item in owed)


def baseline_of(state: SiteState) -> frozenset[tuple[int, str]]:
    """The state's baseline in the sources' terms: (id, ``modified_gmt`` text)."""
    return frozenset((post_id, wp_format(modified)) for post_id, modified in state.baseline)


@dataclass(frozen=True)
class Plan:
    """What a post owes (``owed``), and the rows per kind it was worked out from."""

    post: Post
    announce: bool
    owed: list[Planned]
    seen: dict[str, set[str]]


@dataclass
class Backfill:
    """A backfill's summary; ``complete`` when nothing failed and nothing waits to retry."""

    planned: int = 0
    delivery: Tally = field(default_factory=Tally)

    @property
    def complete(self) -> bool:
        return self.delivery.failed == 0 and self.delivery.retrying == 0
