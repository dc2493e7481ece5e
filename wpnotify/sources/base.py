"""What the service needs of a site, whichever protocol reads it, and what both sources share.

``rest`` and ``xmlrpc`` import this module and ``records``, never each other.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from wpnotify.errors import PostGone
from wpnotify.sources.records import Changes, Deleted, Post, ResendRequest, SiteInfo

# Published and scheduled posts, and the statuses a published post can leave for (so that
# Webmention receivers can be told it is gone).
WATCHED_STATUSES = "publish,future,draft,pending,private,trash"
# How far before the cursor each poll asks. WordPress compares whole seconds, strictly, and in
# the site's local time, where the hour after a daylight-saving change repeats; an hour and a
# second covers both. Posts read again are queued again idempotently, so this costs bytes only.
OVERLAP = timedelta(hours=1, seconds=1)


class Source(Protocol):
    """What the service needs of a site, over REST (``rest.RestSource``) or XML-RPC
    (``xmlrpc.XmlrpcSource``). Times are aware UTC datetimes.

    ``record_status_many`` replaces posts' status rows (wpnotify.statusrows) in WordPress and
    returns the posts it refused (deleted, or not the user's to edit); ``resend_requests``
    reads the Send again requests after ``since`` (worth asking only when
    ``Changes.newest_resend`` is newer).

    Received pings and their moderation (issue 16) are not here: only a REST site can have
    inbound on (XML-RPC's ``wp.getComments`` filters by no comment type and orders by date,
    not by ID, so no cursor of comment IDs could page it), so they are ``RestSource``'s own
    methods (``sources.comments.CommentRoutes``)."""

    def info(self) -> SiteInfo: ...
    def newest_modified(self) -> datetime | None: ...
    def scheduled(self) -> Iterator[Post]: ...
    def changed(self, since: datetime,
                seen: frozenset[tuple[int, datetime]] = frozenset()) -> Changes: ...
    def posts(self, ids: list[int]) -> list[Post]: ...
    def archive(self, since: datetime, until: datetime | None
                ) -> Iterator[tuple[list[Post], int]]: ...
    def deletions(self, since: datetime) -> list[Deleted]: ...
    def record_pinged(self, post_id: int, urls: list[str]) -> None: ...
    def record_pinged_many(self, posts: Mapping[int, list[str]]) -> None: ...
    def record_status_many(self, posts: Mapping[int, list[dict[str, Any]]],
                           resend_seen: int) -> list[int]: ...
    def resend_requests(self, since: int) -> list[ResendRequest]: ...
    def check(self) -> tuple[SiteInfo, dict[str, Any] | None]: ...
    def bridge(self) -> bool: ...


def record_each(source: Source, posts: Mapping[int, list[str]]) -> None:
    """One request per post; a post deleted for good meanwhile has nothing left to record,
    so it neither fails the others nor stays in the outbox for ever."""
    for post_id, urls in posts.items():
        try:
            source.record_pinged(post_id, urls)
        except PostGone:
            continue  # deleted for good: its Webmentions are handled as a deletion
