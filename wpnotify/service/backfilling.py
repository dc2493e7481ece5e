"""Backfill: what older published posts owe, read, planned and sent page by page (memory
stays flat), under the same rules and state as polling.

Reading and sending overlap: a reader thread reads and plans page after page (one page ahead
at most), and the sender takes each page's notifications as they come, with no pause between
pages. A dry run reads and plans on the caller's thread, and records and sends nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from wpnotify.plan import Planned
from wpnotify.sending.backlog import Feed, Tally
from wpnotify.sending.dispatch import Dispatcher
from wpnotify.service.recording import Recorder
from wpnotify.settings import SiteSettings
from wpnotify.sources import Post, Source
from wpnotify.state import State

FIRST_PAGE = 20  # posts given by ID read in the first request (as the archive's first page)
PAGE = 100  # and in each later one: WordPress's most
OnPage = Callable[[int, int], None]  # (posts read so far, posts in all)
OnPlanned = Callable[[Post, Planned], None]


@dataclass
class Backfill:
    """A backfill's summary; ``complete`` when nothing failed and nothing waits to retry."""

    planned: int = 0
    delivery: Tally = field(default_factory=Tally)

    @property
    def complete(self) -> bool:
        return self.delivery.failed == 0 and self.delivery.retrying == 0


class Backfiller:
    """One backfill of one site: which posts (``post_ids``, or the archive between ``since``
    and ``until``), and who hears of the progress (``on_page``) and of each planned
    notification (``on_planned``, dry run or not)."""

    def __init__(self, store: State, site: SiteSettings, source: Source,
                 clock: Callable[[], datetime], on_page: OnPage,
                 on_planned: OnPlanned) -> None:
        self.store = store
        self.site = site
        self.source = source
        self.clock = clock
        self.on_page = on_page
        self.on_planned = on_planned
        self.recorder = Recorder(store, site, source)

    def _pages(self, since: datetime, until: datetime | None,
               post_ids: list[int]) -> Iterable[tuple[list[Post], int]]:
        if post_ids:
            return self._by_id(list(dict.fromkeys(post_ids)))
        return self.source.archive(since, until)

    def _by_id(self, post_ids: list[int]) -> Iterator[tuple[list[Post], int]]:
        """The posts given by ID, a page at a time on the reader's thread, the first small:
        sending starts while the rest are read (a worker given its share of an archive,
        hundreds of IDs, waited for all of them before its first request)."""
        start, size = 0, FIRST_PAGE
        while start < len(post_ids):
            yield self.source.posts(post_ids[start:start + size]), len(post_ids)
            start, size = start + size, PAGE

    def preview(self, since: datetime, until: datetime | None,
                post_ids: list[int]) -> Backfill:
        """A dry run: what would be recorded, planned against the state as it is."""
        result = Backfill()
        done = 0
        for posts, total in self._pages(since, until, post_ids):
            self._plan_page(posts, result, record=False)
            done += len(posts)
            self.on_page(done, total)
        return result

    def run(self, sender: Dispatcher, since: datetime, until: datetime | None,
            post_ids: list[int]) -> Backfill:
        """Records and sends with ``sender``, inside the caller's sending cycle (one
        discovery cache for the whole archive). A failure of the reader thread is raised
        again here."""
        result = Backfill()
        pages = self._pages(since, until, post_ids)
        feed = Feed()
        failure: list[BaseException] = []

        def read() -> None:
            done = 0
            try:
                for posts, total in pages:
                    self._plan_page(posts, result, record=True)
                    done += len(posts)
                    self.on_page(done, total)
                    if posts and not feed.put({p.id for p in posts}):
                        return  # the delivery stopped (a shutdown)
            except BaseException as exc:  # noqa: BLE001 (raised again on the caller's thread)
                failure.append(exc)
            finally:
                feed.close()

        reader = threading.Thread(target=read, name="wpnotify-backfill-reader", daemon=True)
        reader.start()
        try:
            tally = sender.deliver([self.site.name], set(), feed=feed)
        finally:
            feed.cancel()
            reader.join()
        result.delivery.add(tally)
        if failure:
            raise failure[0]
        return result

    def _plan_page(self, posts: list[Post], result: Backfill, record: bool) -> None:
        """Plans a page of posts; recording, counts only what was really recorded (another
        process may have recorded some of it meanwhile)."""
        plans = self.recorder.plan_many(posts)
        if record:  # one commit for the page, of a few statements
            recorded = self.recorder.record_many(plans, self.clock())
        else:
            recorded = [(plan.post, plan.owed) for plan in plans]
        for post, owed in recorded:
            for item in owed:
                self.on_planned(post, item)
            result.planned += len(owed)
            result.delivery.skipped += sum(item.status == "skipped" for item in owed)
