"""Stand-in sites for service and sender tests: what Service.read, a backfill and the
pinged write-back ask of a source, answered from one post set as a class attribute."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from wpnotify.sources import Changes, Post, SiteInfo


class OnePostSite:
    """A site (https://s.example) whose one changed post is ``post``; its bridge is there."""

    post: Post

    def info(self) -> SiteInfo:
        return SiteInfo("Blog", "https://s.example/")

    def changed(self, since: datetime, seen: frozenset[tuple[int, datetime]] = frozenset()
                ) -> Changes:
        return Changes([self.post])

    def deletions(self, since: datetime) -> list[object]:
        return []

    def bridge(self) -> bool:
        """The bridge's own answer (asked by a poll that read posts)."""
        return True

    def posts(self, ids: list[int]) -> list[Post]:
        return [self.post]

    def archive(self, since: datetime, until: datetime | None
                ) -> Iterator[tuple[list[Post], int]]:
        yield [self.post], 1
