"""Stand-in sites for service and sender tests: what Service.read, a backfill and the
pinged write-back ask of a source, answered from one post set as a class attribute."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from wpnotify.sources import Changes, Deleted, Post, ResendRequest, SiteInfo


class StandinSource:
    """Every method of ``sources.Source``, each refusing to answer: a test's stand-in
    answers only what its test asks (a subclass overrides those), and is a Source all the
    same, so it is handed to the service as it is, with no type override."""

    def _unasked(self, method: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__}.{method} is not asked in this test")

    def info(self) -> SiteInfo:
        raise self._unasked("info")

    def newest_modified(self) -> datetime | None:
        raise self._unasked("newest_modified")

    def scheduled(self) -> Iterator[Post]:
        raise self._unasked("scheduled")

    def changed(self, since: datetime, seen: frozenset[tuple[int, datetime]] = frozenset()
                ) -> Changes:
        raise self._unasked("changed")

    def posts(self, ids: list[int]) -> list[Post]:
        raise self._unasked("posts")

    def archive(self, since: datetime, until: datetime | None
                ) -> Iterator[tuple[list[Post], int]]:
        raise self._unasked("archive")

    def deletions(self, since: datetime) -> list[Deleted]:
        raise self._unasked("deletions")

    def record_pinged(self, post_id: int, urls: list[str]) -> None:
        raise self._unasked("record_pinged")

    def record_pinged_many(self, posts: Mapping[int, list[str]]) -> None:
        raise self._unasked("record_pinged_many")

    def record_status_many(self, posts: Mapping[int, list[dict[str, Any]]],
                           resend_seen: int) -> list[int]:
        raise self._unasked("record_status_many")

    def resend_requests(self, since: int) -> list[ResendRequest]:
        raise self._unasked("resend_requests")

    def check(self) -> tuple[SiteInfo, dict[str, Any] | None]:
        raise self._unasked("check")

    def bridge(self) -> bool:
        raise self._unasked("bridge")


class OnePostSite(StandinSource):
    """A site (https://s.example) whose one changed post is ``post``; its bridge is there."""

    post: Post

    def info(self) -> SiteInfo:
        return SiteInfo("Blog", "https://s.example/")

    def changed(self, since: datetime, seen: frozenset[tuple[int, datetime]] = frozenset()
                ) -> Changes:
        return Changes([self.post])

    def deletions(self, since: datetime) -> list[Deleted]:
        return []

    def bridge(self) -> bool:
        """The bridge's own answer (asked by a poll that read posts)."""
        return True

    def posts(self, ids: list[int]) -> list[Post]:
        return [self.post]

    def archive(self, since: datetime, until: datetime | None
                ) -> Iterator[tuple[list[Post], int]]:
        yield [self.post], 1
