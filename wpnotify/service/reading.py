"""Reading one site in a cycle: what changed since the cursor, and what the poll remembers
for the next one.

Which posts count (PROTOCOLS.md §5): published posts of the configured types. A scheduled post
is watched while ``future`` and handled when WordPress publishes it (its ``modified_gmt`` does
not move then, so the modified cursor alone would miss it). Drafts, pending and private posts are
never asked for; password-protected posts are never notified from, since their text would leak.
A post that left the public, or a link that left a post, sends its Webmention again (§3.3).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import structlog

from wpnotify import webmention
from wpnotify.discovery import extract_links, select_targets
from wpnotify.errors import SourceError
from wpnotify.linkpayload import LinkPayload
from wpnotify.service.recording import Recorder, isolated
from wpnotify.settings import SiteSettings
from wpnotify.sources import OVERLAP, Changes, Deleted, Post, ResendRequest, Source
from wpnotify.state import SiteState, State, Status
from wpnotify.times import whole_second, wp_text

if TYPE_CHECKING:
    from wpnotify.service.inbound import InboundReport

log = structlog.get_logger("wpnotify.reading")
# A post dated within this window is a fresh publish, announced to update services; an older
# one seen again (edited, backfilled) is not. Generous, for a daemon that was down a while.
ANNOUNCE_WINDOW = timedelta(days=1)
NO_BRIDGE = ("the wpnotify bridge is not installed, so trackbacks queued in \"Send trackbacks "
             "to\" cannot be read and are not sent (pingbacks are); install "
             "wordpress/wpnotify-bridge.php as a must-use plugin, see README \"The bridge\"")


@dataclass(frozen=True)
class SiteReport:
    """How reading one site went."""

    site: str
    error: str | None = None
    posts: int = 0
    queued: int = 0
    first_poll: bool = False
    busy: bool = False  # not read: another worker sharing the state polls it now
    inbound: InboundReport | None = None  # the pings it received, when inbound is on


@dataclass
class Reading:
    """What one poll's reading of posts came to."""

    cursor: datetime
    posts: int = 0
    queued: int = 0
    handled: set[tuple[int, datetime]] = field(default_factory=set)
    bridge: bool | None = None  # what the last post that could tell said (Post.bridge)


def read_site(store: State, site: SiteSettings, source: Source, now: datetime) -> SiteReport:
    """Reads one site's changes and queues their notifications; never raises SourceError."""
    return SiteReading(store, site, source, now).read()


class SiteReading:
    """One read of one site, at ``now``: the posts, the deletions and the bridge check."""

    def __init__(self, store: State, site: SiteSettings, source: Source,
                 now: datetime) -> None:
        self.store = store
        self.site = site
        self.source = source
        self.now = now
        self.recorder = Recorder(store, site, source)

    def read(self) -> SiteReport:
        name, now = self.site.name, self.now
        state = self.store.site(name)
        try:
            if state is None or state.cursor is None:
                return self._start()
            # ``baseline``: posts of the overlap window already handled (or, after the first
            # poll, the archive when we began): read again with the same modified time, they
            # are skipped.
            changes = self.source.changed(state.cursor, state.baseline)
            reading = self._read_posts(self._changes(changes), state.cursor)
            deletions_seen = self._follow_deletions(changes, state)
            self._take_resends(changes)
            # Asked of the bridge itself, once per poll that read posts (an idle poll stays
            # one request); a post whose lists were not read is no sign of a missing bridge.
            bridge = self._bridge(reading.bridge) if reading.posts else None
        except SourceError as exc:
            log.error("site.unreadable", site=name, error=str(exc))
            self.store.record_poll(name, now, error=str(exc))
            return SiteReport(name, error=str(exc))
        if bridge is False and state.bridge is not False:
            log.warning("site.no_bridge", site=name, detail=NO_BRIDGE)
        # What was read in the window that the next poll reads again: it skips those.
        window = reading.cursor - OVERLAP
        seen = sorted(key for key in state.baseline | reading.handled if key[1] >= window)
        self.store.record_poll(name, now, cursor=reading.cursor, bridge=bridge,
                               deletions_seen=deletions_seen, baseline=seen)
        log.info("site.read", site=name, posts=reading.posts, queued=reading.queued,
                 cursor=wp_text(reading.cursor))
        return SiteReport(name, posts=reading.posts, queued=reading.queued)

    def _read_posts(self, posts: Iterator[Post], cursor: datetime) -> Reading:
        """Queues what each post owes, and moves the cursor over what was read."""
        reading = Reading(cursor)
        for post in posts:
            reading.posts += 1
            if post.bridge is not None:
                reading.bridge = post.bridge
            if post.settled and post.modified_gmt is not None:  # else it may change again
                reading.handled.add((post.id, post.modified_gmt))  # in that second: read it
            reading.queued += isolated(self.site, post, partial(self._consider, post), 0)
            # A future post's modified_gmt is its future date.
            if post.status != "future" and post.modified_gmt is not None:
                reading.cursor = max(reading.cursor,
                                     min(post.modified_gmt, whole_second(self.now)))
        return reading

    def _start(self) -> SiteReport:
        """The first poll of a site: remember where "now" is, and the posts scheduled for
        later; notify nothing from the archive (that is backfill's job)."""
        cursor = self.source.newest_modified() or whole_second(self.now)
        # Later polls ask from a little before the cursor (sources.OVERLAP), so the posts of
        # that window are remembered as archive, not news.
        changes = self.source.changed(cursor)
        baseline = [(p.id, p.modified_gmt) for p in changes
                    if p.status == "publish" and p.modified_gmt is not None]
        if changes.newest_resend:  # made before: of notifications this state never had
            self.store.set_resend_seen(self.site.name, changes.newest_resend)
        for post in self.source.scheduled():
            self._watch(post)
        # Deletions are asked for strictly after this mark, to the second: a post deleted later
        # in this very second would be missed, so the mark is the second before. (What was
        # deleted earlier in it has no sent Webmention to take back: nothing is resent.)
        self.store.record_poll(self.site.name, self.now, cursor=cursor, baseline=baseline,
                               deletions_seen=whole_second(self.now - timedelta(seconds=1)))
        log.info("site.first_poll", site=self.site.name, cursor=wp_text(cursor),
                 detail="watching from now on; older posts are not notified")
        return SiteReport(self.site.name, first_poll=True)

    def _changes(self, changes: Changes) -> Iterator[Post]:
        """Posts modified since the cursor, then watched scheduled posts whose time has come."""
        yield from changes
        if due := self.store.scheduled_due(self.site.name, self.now):
            found = self.source.posts(due)
            present = {p.id for p in found}
            self.store.unwatch(self.site.name, [i for i in due if i not in present])  # trashed
            yield from found

    def _bridge(self, heard: bool | None) -> bool | None:
        """Whether the site runs the bridge: as the posts read said (``heard``), else as the
        source says when asked; None (the stored answer stays) when it cannot be asked now:
        the posts are read and queued, so one more failing request must not fail the poll
        and hold its cursor back."""
        if heard is not None:
            return heard
        try:
            return self.source.bridge()
        except SourceError as exc:
            log.warning("site.bridge_unknown", site=self.site.name, error=str(exc))
            return None

    def _watch(self, post: Post) -> None:
        if post.date_gmt:
            self.store.watch(self.site.name, post.id, post.date_gmt)

    def _consider(self, post: Post) -> int:
        """Queues what one post owes; returns how many notifications were new."""
        if post.status == "future":
            self._watch(post)
            return 0
        self.store.unwatch(self.site.name, [post.id])
        self._follow_webmentions(post, self.source.info().home)
        fresh = post.date_gmt is not None and post.date_gmt >= self.now - ANNOUNCE_WINDOW
        recorded = self.recorder.record(self.recorder.plan(post, fresh), self.now)
        return sum(item.status == "pending" for item in recorded)

    # --- Webmention's update and delete rules ---------------------------------------------

    def _follow_webmentions(self, post: Post, home: str) -> None:
        """Webmention's update and delete rules (PROTOCOLS.md §3.3): a target whose link left
        the post, or every target of a post that is no longer public, is sent the Webmention
        again, once, so the receiver re-checks the source (and finds the link, or the post,
        gone); a link that comes back, or a post public again, likewise. Pingbacks and
        trackbacks have no such rules and are never sent again."""
        public = post.status == "publish" and not post.protected
        links = set(select_targets(extract_links(post.content_html, post.link),
                                   permalink=post.link, home=home,
                                   self_pings=self.site.self_pings)) if public else set()
        self._resend_changed(post.id, links, public, post.status)

    def _follow_deletions(self, changes: Changes, state: SiteState) -> datetime | None:
        """Posts deleted for good (the bridge remembers them): their Webmention targets are
        told, like a trashed post's. Returns the newest deletion handled. Asked only when
        the poll's reading named a deletion after the mark (or could not say), so an idle
        poll costs no request."""
        since = state.deletions_seen or whole_second(self.now - timedelta(seconds=1))
        if not changes.may_have_deleted(since):
            return None
        newest: Deleted | None = None
        for gone in self.source.deletions(since):
            if gone.type in self.site.post_types:
                self._resend_changed(gone.id, set(), False, "deleted")
            if newest is None or gone.deleted_gmt > newest.deleted_gmt:
                newest = gone
        if newest is None:
            return None
        if not newest.settled:  # more may come in that second: ask from its start next time
            return newest.deleted_gmt - timedelta(seconds=1)
        return newest.deleted_gmt

    def _resend_changed(self, post_id: int, links: set[str], public: bool,
                        status: str) -> None:
        name = self.site.name
        for row in self.store.history(site=name, post_id=post_id, kind=webmention.KIND,
                                      status=Status.SENT, limit=100_000):
            payload = LinkPayload.from_dict(row.payload)
            gone = row.target not in links
            if gone == bool(payload.gone):
                continue
            why = ("the link is back in the post" if not gone else
                   "the link was removed from the post" if public else
                   f"the post is no longer public ({status})")
            self.store.resend(row.id, self.now,
                              replace(payload, gone=gone, resend=why).to_dict())
            log.info("webmention.resend", site=name, post=post_id, target=row.target,
                     reason=why)

    # --- Send again, asked for in WordPress ---------------------------------------------------

    def _take_resends(self, changes: Changes) -> None:
        """Send again requests made in WordPress since the last taken: each named notification
        is queued again with a fresh retry budget, due now, so this run's sending takes it;
        the newest request taken is noted in the same unit of work (never without its
        requeues). Asked only when the poll's reading named a newer request, so an idle poll
        costs no request; an answer that cannot be read is asked for again at the next poll,
        without failing this one."""
        name, newest = self.site.name, changes.newest_resend
        seen = self.store.resend_seen(name)
        if newest is None or newest <= seen:
            return
        try:
            requests = self.source.resend_requests(seen)
        except SourceError as exc:
            log.warning("site.resend_unreadable", site=name, error=str(exc),
                        detail="asked again at the next poll")
            return
        with self.store.atomic():
            for request in requests:
                self._resend(request)
            # None listed (posts this user may not edit): nothing to take up to the header's.
            self.store.set_resend_seen(name, requests[-1].id if requests else newest)

    def _resend(self, request: ResendRequest) -> None:
        """Queues one requested notification again, or says why not."""
        name = self.site.name
        where = {"site": name, "post": request.post, "kind": request.kind,
                 "target": request.target, "request": request.id}
        if self.store.requeue_for_resend(name, request.post, request.kind, request.target,
                                         self.now):
            log.info("notification.resend_requested", **where,
                     detail="queued again from WordPress's Send again, with a fresh retry "
                            "budget")
            return
        found = self.store.status_of(name, request.post, request.kind, request.target)
        why = (f"it is {found.value}, nothing to send again" if found is not None
               else "wpnotify has no such notification")
        log.warning("notification.resend_skipped", **where, detail=why)
        # The row shows "queued" until WordPress is told this request was taken, and no
        # change to a notification will tell it: the post's rows (those wpnotify has) go at
        # the next push all the same.
        self.store.mark_status(name, request.post)
