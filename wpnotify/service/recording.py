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
from typing import TypeVar

import structlog

from wpnotify import trackback
from wpnotify.errors import WpnotifyError
from wpnotify.plan import Known, Planned, plan
from wpnotify.settings import SiteSettings
from wpnotify.sources import Post, Source
from wpnotify.state import State, Status

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
        return plan(post, site, home=info.home, blog_name=info.name, announce=announce,
                    known=known or (lambda kind: self.store.targets(site.name, post.id, kind)))

    def plan(self, post: Post, announce: bool = False) -> Plan:
        """What a post owes, worked out outside any transaction, with the state it was
        worked out from."""
        seen: dict[str, set[str]] = {}

        def known(kind: str) -> set[str]:
            if kind not in seen:
                seen[kind] = self.store.targets(self.site.name, post.id, kind)
            return seen[kind]

        return Plan(post, announce, self.owed(post, announce, known), seen)

    def record(self, plan: Plan, now: datetime) -> list[Planned]:
        """Records a plan, in one write transaction (the caller's, if it has one), and returns
        what was really recorded. Deciding and inserting are one step against other
        processes: under the write lock the post's rows are read again, and if another
        process recorded some since the plan was made (a Webmention row that went out as a
        pingback included), the post is planned again from them. So each notification is
        recorded, and counted as new, once. (The plan is a pure function of the post and
        these rows.)"""
        name, post = self.site.name, plan.post
        with self.store.atomic():
            owed = plan.owed
            if any(self.store.targets(name, post.id, kind) != targets
                   for kind, targets in plan.seen.items()):
                owed = self.owed(post, plan.announce)
            recorded = [item for item in owed
                        if self.store.add(name, post.id, item.kind, item.target, post.link, now,
                                          payload=item.payload_dict(),
                                          status=Status(item.status),
                                          error=item.error, error_code=item.error_code)]
            # Queued trackbacks WordPress had already pinged leave to_ping, as core would do:
            # WordPress is told at the end of the cycle, from the state file's outbox (so
            # never lost). Those skipped for another reason (refused, too many, a bad URL)
            # were never sent, so they stay queued in WordPress, not marked as pinged.
            self.store.queue_pinged(name, post.id, [
                item.target for item in recorded
                if item.kind == trackback.KIND and item.error_code == "already-pinged"], now)
            return recorded


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
