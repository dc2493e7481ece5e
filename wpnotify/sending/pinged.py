"""WordPress's `pinged` lists and the editor's status rows, kept in step with what was sent:
the one place that writes back to WordPress.

Sent links go to the state file's outbox with their outcome (in the dispatcher's transaction),
and are told to WordPress through the bridge, as core would add them, PINGED_BATCH links a
request (within a cycle, full requests only), on a thread of their own so that sending never
waits for WordPress. After them, the
posts whose notifications changed (the state marks them itself) get their full status rows
(wpnotify.statusrows), STATUS_BATCH posts a request, with the newest Send again request taken.
What cannot be told (WordPress down, no bridge yet) stays in the outboxes for the next cycle,
across restarts too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from wpnotify import statusrows
from wpnotify.errors import BridgeTooOld, SourceError, WpnotifyError
from wpnotify.state import PingedOutbox, SiteLog, StatusMark, StatusOutbox

if TYPE_CHECKING:  # the protocol only: sending never calls into a source's package
    from wpnotify.sources import Source

PINGED_BATCH = 50  # sent links told to WordPress in one request; small, so the last is quick
PINGED_BATCHES = 20  # requests per site and flush at most: a long backlog (a bridge installed
# after months) goes over several cycles instead of holding one cycle's end
STATUS_BATCH = 100  # posts whose status rows go in one request (the most the bridge takes:
# each request costs WordPress its start-up, so fewer and fuller is cheaper)
STATUS_EVERY = 0.5  # seconds between status pushes within a cycle, of the posts whose
# notifications are all done (the others' rows change with each claim and outcome); the
# cycle's end pushes every marked post. So a backfill's rows go while it sends, and its end
# waits for the last posts only. Workers sending together space theirs that much more each
# (see ``sharing``): the fleet's pushes, each a WordPress request, stay about this often.
STATUS_BYTES = 1024 * 1024  # a request's rows at most (PHP takes 8 MB by default)
STATUS_BATCHES_WITHIN = 3  # requests of those at most, while the sending goes on
NO_ROUTE_RECHECK = 3600.0  # seconds before a bridge found too old for statuses is asked again

log = structlog.get_logger("wpnotify.sender")


class Outbox(PingedOutbox, StatusOutbox, SiteLog, Protocol):
    """What the mirror needs of the state: the outboxes, and whether a site has the bridge."""


class _Budget:
    """Requests to one site in one flush: PINGED_BATCHES per outbox, and once shutting
    down, one at most, the rest waits. Shared by the flush's two threads."""

    def __init__(self, stopping: Callable[[], bool]) -> None:
        self.stopping = stopping
        self.made = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.made and self.stopping():
                return False
            self.made += 1
            return True


class PingedMirror:
    """Tells each site's WordPress what was sent for its posts. The dispatcher says which
    sites a cycle delivers (``include``), what was sent (``sent``) and when the cycle ends
    (``close``); the mirror decides when to write back."""

    def __init__(self, store: Outbox, sources: Mapping[str, Source],
                 stopping: Callable[[], bool] = lambda: False,
                 clock: Callable[[], float] = time.monotonic, worker: str = "") -> None:
        self.store = store
        self.worker = worker  # this process's worker ID, as its claims are made
        self.sources = sources
        self.stopping = stopping  # a daemon's shutdown: one request at most, the rest waits
        self.clock = clock
        self._statuses_at: float | None = None  # when status rows were last handed over
        self._no_status_route: dict[str, float] = {}  # sites whose bridge is older than
        # 1.2, and when that was found: asked again after NO_ROUTE_RECHECK (an update)
        # WordPress is told off the send loop, on two threads: the pinged lists on one, the
        # status rows on the other, so that neither waits for the other's requests (one
        # thread fell behind a busy backfill, and its queue held up the cycle's end).
        self._worker: ThreadPoolExecutor | None = None
        self._status_worker: ThreadPoolExecutor | None = None
        self._unflushed = 0  # links sent since WordPress was last told
        # By site, the posts whose links this worker queued in this cycle and has not told
        # WordPress of yet: a mid-cycle write-back tells those only (workers sending
        # together each told every link of the site, the same ones at once).
        self._mine: dict[str, set[int]] = {}
        self._mine_lock = threading.Lock()
        self._others = 0  # other workers sending meanwhile, as the dispatcher last saw
        self._seen_at: datetime | None = None  # when it saw them (the state's clock)
        self._told: set[str] = set()  # the sites delivered in this cycle: WordPress is told

    def open(self) -> None:
        """A cycle begins: write-backs go to the mirror's own threads until ``close``."""
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wpnotify-pinged")
        self._status_worker = ThreadPoolExecutor(max_workers=1,
                                                 thread_name_prefix="wpnotify-status")

    def include(self, sites: Iterable[str]) -> None:
        """These sites are delivered in this cycle: their outboxes are emptied at its end (a
        backfill of one site leaves the others' to the daemon: two writers of one post's
        pinged list could lose a link)."""
        self._told.update(sites)

    def sharing(self, others: int, now: datetime) -> None:
        """At ``now``, ``others`` other workers have notifications in flight. Each pushes
        the settled posts of every site, so each spaces its pushes ``others`` + 1 times
        STATUS_EVERY (three workers of a backfill made three times the requests to
        WordPress, each costing its start-up, on the machines they share); and a cycle's
        end leaves the posts that are being sent or due (the first worker done pushed the
        others' unfinished posts, each pushed again once done)."""
        self._others, self._seen_at = max(0, others), now

    def sent(self, site: str, post_id: int, targets: list[str], now: datetime) -> None:
        """Notes sent links of one post (see ``sent_many``)."""
        self.sent_many([(site, post_id, target) for target in targets], now)

    def sent_many(self, links: list[tuple[str, int, str]], now: datetime) -> None:
        """Notes sent links, (site, post, url), in the outbox (in the caller's transaction,
        with their outcomes: a batch's in one statement); every PINGED_BATCH of them,
        WordPress is told without waiting for the cycle's end."""
        if not links:
            return
        self.store.queue_pinged_many(links, now)
        with self._mine_lock:
            for site, post, _ in links:
                self._mine.setdefault(site, set()).add(post)
        self._unflushed += len(links)
        if self._unflushed >= PINGED_BATCH:
            self.flush()

    def close(self) -> None:
        """The cycle ended: WordPress is told what was sent (and what an earlier cycle could
        not tell it); returns once that is done."""
        try:
            self.flush(final=True)
        finally:
            for worker in (self._worker, self._status_worker):
                if worker is not None:
                    worker.shutdown(wait=True)
            self._worker = self._status_worker = None
            self._told = set()
            self._mine = {}

    def flush(self, final: bool = False) -> None:
        """Hands every delivered site's outboxes to the mirror's thread (or, outside a cycle,
        empties them here): the pinged lists always; the status rows of every marked post
        at the cycle's end (``final``), and before it, at most every STATUS_EVERY seconds,
        of the posts whose notifications are all done."""
        self._unflushed = 0
        now = self.clock()
        statuses: bool | None = None  # no status rows; False: of settled posts; True: all
        if final:
            statuses = True
        elif (self._statuses_at is None
              or now - self._statuses_at >= STATUS_EVERY * (1 + self._others)):
            statuses, self._statuses_at = False, now
        for site in sorted(self._told):
            source = self.sources.get(site)
            if source is None:
                continue
            budget = _Budget(self.stopping)
            jobs: list[tuple[ThreadPoolExecutor | None, Callable[[], object]]] = [
                (self._worker, partial(self._tell_pinged, site, source, budget, final))]
            if statuses is not None:
                jobs.append((self._status_worker, partial(
                    self._tell_statuses, site, source, budget, settled=not statuses)))
            for worker, job in jobs:
                if worker is not None:
                    worker.submit(self._tell, site, job)
                else:
                    self._tell(site, job)

    def _tell(self, site: str, job: Callable[[], object]) -> None:
        """Runs one outbox's write-back for a site with the bridge (without it, the links
        and rows wait until it is installed); a batch at a time, it stops at the first
        failure (the rest waits). Never raises: it runs beside the sending."""
        try:
            state = self.store.site(site)
            if state is not None and state.bridge is False:
                return
            job()
        except WpnotifyError as exc:
            log.warning("wordpress.write_back_failed", site=site, error=str(exc),
                        detail="kept; WordPress is told again at the next cycle")
        except Exception:  # noqa: BLE001 (a bug here must not stop the sending)
            log.exception("wordpress.write_back_failed", site=site)

    def _tell_pinged(self, site: str, source: Source, budget: _Budget, final: bool = True
                     ) -> bool:
        """Sent links to WordPress's pinged lists; False when it stopped short (a failure,
        or shutting down). Within a cycle (not ``final``), the links of this worker's posts
        only, in full batches only: the links sent meanwhile went in a request each (80
        requests for a backfill's 1,200 links, each costing WordPress its start-up); the
        rest goes with the next, or at the cycle's end, which tells every link waiting."""
        for _ in range(PINGED_BATCHES):
            with self._mine_lock:
                mine = None if final else frozenset(self._mine.get(site, ()))
            if not (waiting := self.store.pinged_waiting(site, PINGED_BATCH, mine)):
                return True
            if not final and sum(map(len, waiting.values())) < PINGED_BATCH:
                return True
            if not budget.take():
                return False
            try:
                source.record_pinged_many(waiting)
            except SourceError as exc:
                log.warning("wordpress.record_pinged_failed", site=site,
                            posts=len(waiting), error=str(exc),
                            detail="kept; WordPress is told again at the next cycle")
                return False
            self.store.pinged_told(site, waiting)
            with self._mine_lock:  # a post cut short by the batch: its rest goes at the end
                self._mine.get(site, set()).difference_update(waiting)
        return True

    def _tell_statuses(self, site: str, source: Source, budget: _Budget, settled: bool
                       ) -> None:
        """The marked posts' status rows (every notification of each, every kind), newest
        changes first; ``settled``: of the posts whose notifications are all done only. A
        mark is removed only if its post did not change meanwhile. With other workers
        sending, a cycle's end pushes what is marked when it looks, not what they mark
        after (a first worker done kept pushing the others' posts as each settled, up to
        PINGED_BATCHES requests while they sent; each pushes its own at its end)."""
        seen = self.store.resend_seen(site)
        leave = ((self.worker, self._seen_at) if self._others and self._seen_at is not None
                 and not settled else None)
        told: int | None
        for _ in range(STATUS_BATCHES_WITHIN if settled else PINGED_BATCHES):
            if not (marks := self.store.status_waiting(site, STATUS_BATCH, settled=settled,
                                                       leave_to_others=leave)):
                return
            if not budget.take():
                return
            if self.clock() - self._no_status_route.get(site, -NO_ROUTE_RECHECK) < \
                    NO_ROUTE_RECHECK:
                self.store.status_told(site, marks)  # nothing to show them: not kept
                told = len(marks)
            elif (told := self._push_statuses(site, source, marks, seen)) is None:
                return
            if leave is not None and len(marks) < STATUS_BATCH and told == len(marks):
                return  # all that was marked when it looked

    def _push_statuses(self, site: str, source: Source, marks: list[StatusMark],
                       seen: int) -> int | None:
        """One request, of these posts while its body stays under STATUS_BYTES (the rest
        go in the next); how many were told, None when it failed (the marks wait for the
        next cycle)."""
        rows = self._rows_within(site, marks)
        marks = [mark for mark in marks if mark[0] in rows]
        try:
            refused = source.record_status_many(rows, seen)
        except BridgeTooOld as exc:
            # Kept, the marks would cost a failing request at every cycle, an idle poll's
            # too; once updated, the bridge gets each post's rows at its next change.
            log.warning("wordpress.no_status_route", site=site, error=str(exc),
                        detail="the editor shows no statuses until the bridge is updated")
            self._no_status_route[site] = self.clock()
        except SourceError as exc:
            log.warning("wordpress.record_status_failed", site=site, posts=len(rows),
                        error=str(exc), detail="kept; WordPress is told again at the next "
                                               "cycle")
            return None
        else:
            if refused:  # deleted, or not the user's: nothing would take them later either
                log.info("wordpress.status_refused", site=site, posts=refused[:20],
                         detail="deleted posts, or posts the user may not edit")
        self.store.status_told(site, marks)
        return len(marks)

    def _rows_within(self, site: str, marks: list[StatusMark]) -> dict[int, list[Any]]:
        """The posts' rows, in the marks' order, as many as fit STATUS_BYTES of JSON (one at
        least): a post of 200 long rows must not make a request WordPress refuses for its
        size, at every cycle, holding back every other post."""
        found = self.store.post_rows(site, [post for post, _ in marks])
        rows: dict[int, list[Any]] = {}
        size = 0
        for post, _ in marks:
            mine = statusrows.post_rows(found.get(post, ()))
            size += len(json.dumps(mine))
            if rows and size > STATUS_BYTES:
                break
            rows[post] = mine
        return rows
