"""Deciding what a post owes and recording it, once, against other processes.

Planning is done outside any transaction (parsing a page of posts must not hold the sender's
commits); recording re-reads the post's rows under the write lock and plans again if another
process (a second poll, a backfill beside the daemon) recorded some meanwhile. Polling and
backfill both go through here, so they decide the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TypeVar

import structlog

from wpnotify import trackback
from wpnotify.errors import WpnotifyError
from wpnotify.plan import Known, Planned, plan
from wpnotify.settings import SiteSettings
from wpnotify.sources import Post, Source
from wpnotify.state import Queued, State, Status

log = structlog.get_logger("wpnotify.recording")
T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    """What a post owes (``owed``), and the rows per kind it was worked out from."""

    post: Post
    announce: bool
    owed: list[Planned]
    seen: dict[str, set[str]]


class Recorder:
    """Plans and records what one site's posts owe, in its state."""

    def __init__(self, store: State, site: SiteSettings, source: Source) -> None:
        self.store = store
        self.site = site
        self.source = source

    def owed(self, post: Post, announce: bool = False,
             known: Known | None = None) -> list[Planned]:
        """What a post owes beyond what the state holds (``known``: the targets it holds per
        kind); nothing unless published and open. ``announce``: also ping the update
        services (a fresh publish)."""
        site = self.site
        if post.status != "publish" or post.type not in site.post_types:
            return []
        if post.protected:
            log.info("post.skipped", site=site.name, post=post.id, reason="password-protected")
            return []
        info = self.source.info()
        if known is None:
            rows = self.store.targets_by_kind(site.name, [post.id]).get(post.id, {})
            known = lambda kind: rows.get(kind, set())  # noqa: E731 (one read, every kind)
        return plan(post, site, home=info.home, blog_name=info.name, announce=announce,
                    known=known)

    def plan(self, post: Post, announce: bool = False,
             rows: dict[str, set[str]] | None = None) -> Plan:
        """What a post owes, worked out outside any transaction, with the state it was
        worked out from (the kinds it consulted, and their targets). ``rows``: the post's
        targets by kind, when read already; else read at the first kind asked for (none
        for a draft)."""
        seen: dict[str, set[str]] = {}

        def known(kind: str) -> set[str]:
            nonlocal rows
            if rows is None:
                rows = self.store.targets_by_kind(self.site.name, [post.id]).get(post.id, {})
            seen[kind] = rows.get(kind, set())
            return seen[kind]

        return Plan(post, announce, self.owed(post, announce, known), seen)

    def plan_many(self, posts: list[Post], announce: bool = False) -> list[Plan]:
        """``plan`` for a page of posts, their rows read in one query; a post whose planning
        trips a bug is logged and left out (``isolated``)."""
        rows = self.store.targets_by_kind(self.site.name, [post.id for post in posts])
        plans = (isolated(self.site, post, partial(self.plan, post, announce,
                                                   rows.get(post.id, {})), None)
                 for post in posts)
        return [plan for plan in plans if plan is not None]

    def record(self, plan: Plan, now: datetime) -> list[Planned]:
        """Records a plan (see ``record_many``); returns what was really recorded."""
        return self.record_many([plan], now)[0][1]

    def record_many(self, plans: list[Plan], now: datetime
                    ) -> list[tuple[Post, list[Planned]]]:
        """Records plans, in one write transaction (the caller's, if it has one) of a few
        statements however many posts, and returns what was really recorded of each.
        Deciding and inserting are one step against other processes: under the write lock
        the posts' rows are read again, and a post of which another process recorded some
        since its plan was made (a Webmention row that went out as a pingback included) is
        planned again from them. So each notification is recorded, and counted as new, once.
        (A plan is a pure function of the post and these rows.) A post whose planning trips
        a bug records nothing and is logged (``isolated``); the others are recorded."""
        name = self.site.name
        with self.store.atomic():
            rows = self.store.targets_by_kind(name, [plan.post.id for plan in plans
                                                     if plan.seen])
            owed = [(plan.post, self._owed_now(plan, rows.get(plan.post.id, {})))
                    for plan in plans]
            queued = [isolated(self.site, post, partial(_queued, post, items), list[Queued]())
                      for post, items in owed]
            # In post order, as every unit that changes many posts' rows (see lock_marks).
            added = self.store.add_many(name, sorted(
                (item for items in queued for item in items),
                key=lambda item: (item.post_id, item.kind, item.target)), now)
            recorded: list[tuple[Post, list[Planned]]] = []
            for post, items in owed:
                mine = []
                for item in items:  # each new row once, should a plan name one twice
                    if (key := (post.id, item.kind, item.target)) in added:
                        added.discard(key)
                        mine.append(item)
                recorded.append((post, mine))
            # Queued trackbacks WordPress had already pinged leave to_ping, as core would do:
            # WordPress is told at the end of the cycle, from the state file's outbox (so
            # never lost). Those skipped for another reason (refused, too many, a bad URL)
            # were never sent, so they stay queued in WordPress, not marked as pinged.
            self.store.queue_pinged_many([
                (name, post.id, item.target) for post, items in recorded for item in items
                if item.kind == trackback.KIND and item.error_code == "already-pinged"], now)
            return recorded

    def _owed_now(self, plan: Plan, rows: dict[str, set[str]]) -> list[Planned]:
        """The plan's notifications, planned again if the rows it consulted changed."""
        if not any(rows.get(kind, set()) != targets for kind, targets in plan.seen.items()):
            return plan.owed
        return isolated(self.site, plan.post, partial(
            self.owed, plan.post, plan.announce, lambda kind: rows.get(kind, set())),
            list[Planned]())


def _queued(post: Post, items: list[Planned]) -> list[Queued]:
    """A post's planned notifications as the state queues them."""
    return [Queued(post.id, item.kind, item.target, post.link, item.payload_dict(),
                   Status(item.status), item.error, item.error_code) for item in items]


def isolated(site: SiteSettings, post: Post, work: Callable[[], T], failed: T) -> T:
    """Runs the work for one post; a bug it trips is logged and passed over (``failed``
    stands for its result), so one bad post cannot block its site forever (backfill can send
    it once fixed). Our own errors (a site unreadable, the state unwritable) go on up."""
    try:
        return work()
    except WpnotifyError:
        raise
    except Exception:  # noqa: BLE001 (the isolation boundary for one post)
        log.exception("post.failed", site=site.name, post=post.id)
        return failed
