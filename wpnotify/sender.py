"""Delivering due notifications, many at once: claim, send, record, decide when to try again.

A pool of worker threads sends (``[http] concurrency`` at once, ``per_host_concurrency`` to one
host); this thread picks what is ready, claims it, and records outcomes in batches, one commit
for the claims of a batch and one for the outcomes. A slow or dead host holds only its own
slots: once a connection to it fails, the rest of its queue waits for the retry without a try.

The retry policy reads only ``SendError.permanent``, ``.skip``, ``.code`` and ``.retry_after``.
Hosts known to run WordPress get one request at a time and at most one ping per
``wordpress_ping_interval`` (15 s): its comment-flood check answers a quicker second ping with
429 (PROTOCOLS.md §1.5).
"""

from __future__ import annotations

import queue
import random
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from wpnotify import trackback, weblogupdates
from wpnotify.attempt import Discoveries, Result, attempt, host_of, looks_like_wordpress
from wpnotify.errors import SendError, SourceError, WpnotifyError
from wpnotify.http import Http
from wpnotify.settings import Settings
from wpnotify.state import HostState, Notification, State, Status
from wpnotify.times import iso
from wpnotify.wordpress import Source

# Faults that rarely pass get fewer attempts (PROTOCOLS §2.2).
ATTEMPTS_BY_CODE = {"fault-0": 3, "no-link-in-source": 2, "source-not-found": 4}
IN_CYCLE_WAIT = 60.0  # one delivery run waits at most this long for a host to become free
INTERRUPTED_AFTER = timedelta(minutes=10)  # a `sending` row older than this was interrupted
NO_FALLBACK = frozenset({trackback.KIND, weblogupdates.KIND})  # sent as what they are
PINGED_BATCH = 50  # sent links told to WordPress in one request; small, so the last is quick
PINGED_BATCHES = 20  # requests per site and flush at most: a long backlog (a bridge installed
# after months) goes over several cycles instead of holding one cycle's end
SWITCH_INTERVAL = 0.001  # seconds; see Sender._deliver
FEED_BELOW = 1000  # a feed's next page is taken when fewer than this wait in the backlog

log = structlog.get_logger("wpnotify.sender")


def next_attempt(error: SendError, attempts: int, now: datetime, delays: tuple[float, ...],
                 jitter: Callable[[], float] = lambda: random.uniform(0.9, 1.1),
                 ) -> datetime | None:
    """When to try again after ``attempts`` tries ended in ``error``; None means give up.
    ``delays`` are the waits after attempt 1, 2, …; after the last one it is failed.

    A ``Retry-After`` may lengthen the wait, never shorten it: a receiver answering
    ``Retry-After: 0`` (or a date in the past, from a slow clock) would otherwise get every
    attempt of the budget within seconds and be failed for good."""
    limit = min(ATTEMPTS_BY_CODE.get(error.code, len(delays) + 1), len(delays) + 1)
    if error.permanent or attempts >= limit:
        return None
    delay = delays[min(attempts, len(delays)) - 1] * jitter()
    if error.retry_after is not None:
        delay = max(delay, error.retry_after + 0.5)
    return now + timedelta(seconds=delay)


@dataclass(frozen=True)
class Outcome:
    status: str
    held_briefly: bool = False  # pending again within IN_CYCLE_WAIT, by the receiver's word
    covers: tuple[str, str, str] | None = None  # (site, kind, target) settled with it


@dataclass
class Tally:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retrying: int = 0

    def count(self, status: str) -> None:
        if status == "pending":
            self.retrying += 1
        elif status in ("sent", "failed", "skipped"):
            setattr(self, status, getattr(self, status) + 1)

    def add(self, other: Tally) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.skipped += other.skipped
        self.retrying += other.retrying


class Feed:
    """Posts handed to a running delivery a page at a time, by a backfill's reader thread.
    The reader waits while a page is waiting, so it is never more than a page ahead."""

    def __init__(self) -> None:
        self._pages: queue.Queue[set[int]] = queue.Queue(maxsize=1)
        self._closed = threading.Event()  # the reader has no more
        self._cancelled = threading.Event()  # the delivery takes no more

    def put(self, posts: set[int]) -> bool:
        """Hands a page over; False when the delivery stopped taking them."""
        while not self._cancelled.is_set():
            try:
                self._pages.put(posts, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        self._closed.set()

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def done(self) -> bool:
        return self._closed.is_set() and self._pages.empty()

    def take(self, timeout: float) -> set[int] | None:
        try:
            return self._pages.get(timeout=timeout) if timeout > 0 else self._pages.get_nowait()
        except queue.Empty:
            return None


class Backlog:
    """What one delivery still has to send, per host, oldest first within each host."""

    def __init__(self, items: list[Notification]) -> None:
        self.by_host: dict[str, deque[Notification]] = {}
        self.services: set[str] = set()  # update services met in this run (paced apart)
        for n in items:
            self.push(n)

    def __len__(self) -> int:
        return sum(len(q) for q in self.by_host.values())

    def push(self, n: Notification) -> None:
        self.by_host.setdefault(host_of(n.target), deque()).append(n)
        if n.kind == weblogupdates.KIND:
            self.services.add(n.target)

    def take(self, host: str) -> list[Notification]:
        return list(self.by_host.pop(host, ()))

    def drop(self, key: tuple[str, str, str]) -> int:
        """Removes those of this (site, kind, target); returns how many went."""
        gone = 0
        for host, q in list(self.by_host.items()):
            kept = deque(n for n in q if (n.site, n.kind, n.target) != key)
            gone += len(q) - len(kept)
            if kept:
                self.by_host[host] = kept
            else:
                del self.by_host[host]
        return gone

    def pick(self, now: datetime, hosts: Mapping[str, HostState],
             room: Callable[[str, Notification], int], slots: int) -> list[Notification]:
        """Up to ``slots`` notifications ready now, round-robin over hosts, at most
        ``room(host, n)`` more for each host."""
        picked: list[Notification] = []
        taken: Counter[str] = Counter()
        progress = True
        while progress and len(picked) < slots:
            progress = False
            for host in list(self.by_host):
                q = self.by_host[host]
                n = next((n for n in q if ready_at(n, now, hosts) <= now), None)
                if n is None or taken[host] >= room(host, n):
                    continue
                q.remove(n)
                if not q:
                    del self.by_host[host]
                picked.append(n)
                taken[host] += 1
                progress = True
                if len(picked) >= slots:
                    break
        return picked

    def next_ready(self, now: datetime, hosts: Mapping[str, HostState]
                   ) -> datetime | None:
        times = [ready_at(n, now, hosts) for q in self.by_host.values() for n in q]
        return min(times, default=None)

    def pace_keys(self) -> set[str]:
        """What the store's holds are read for: every host, and each update service."""
        return set(self.by_host) | self.services


def pace_key(n: Notification) -> str:
    """Where a notification's own pacing is kept: an update service's endpoint URL (its five
    minutes hold that service alone, not the other URLs on its host), else its host."""
    return n.target if n.kind == weblogupdates.KIND else host_of(n.target)


def ready_at(n: Notification, now: datetime,
             hosts: Mapping[str, HostState]) -> datetime:
    """When ``n`` may go: its own retry time, its host's hold and its service's pacing."""
    ready = n.next_attempt_at or now
    for key in {host_of(n.target), pace_key(n)}:
        held = hosts.get(key)
        if held is not None and held.not_before is not None:
            ready = max(ready, held.not_before)
    return ready


class Sender:
    """Sends what is due, many at once, politely per host."""

    def __init__(self, settings: Settings, store: State, http: Http,
                 sources: Mapping[str, Source], clock: Callable[[], datetime],
                 sleep: Callable[[float], None] = time.sleep,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.settings = settings
        self.store = store
        self.http = http
        self.sources = sources
        self.clock = clock
        self.sleep = sleep
        self.stopping = stopping  # checked before each new send: a daemon's shutdown
        self.discoveries: Discoveries | None = None  # while a cycle runs
        self._unflushed = 0  # links sent since WordPress was last told
        self._mirror: ThreadPoolExecutor | None = None  # tells WordPress, off the send loop
        self._wordpress: set[str] = set()  # found to be WordPress in this run: one at a time
        self._told: set[str] = set()  # the sites delivered in this cycle: WordPress is told

    @contextmanager
    def cycle(self) -> Iterator[None]:
        """One discovery cache for every delivery inside (a backfill's pages); at its end,
        WordPress is told what was sent (and what an earlier cycle could not tell it)."""
        if self.discoveries is not None:
            yield
            return
        self.discoveries = Discoveries(self.http)
        self._mirror = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wpnotify-pinged")
        try:
            yield
        finally:
            self.discoveries = None
            self._flush_pinged()
            self._mirror.shutdown(wait=True)
            self._mirror = None
            self._told = set()

    def deliver(self, sites: list[str], posts: set[int] | None = None,
                feed: Feed | None = None) -> Tally:
        """Sends every due notification of these sites (of these posts only, if given, and of
        those the feed brings until it is done); waits for busy hosts up to a minute."""
        with self.cycle():
            self._told.update(sites)
            try:
                return self._deliver(sites, posts, feed)
            finally:
                if feed is not None:
                    feed.cancel()

    def _deliver(self, sites: list[str], posts: set[int] | None, feed: Feed | None) -> Tally:
        # This thread and the workers take turns on the interpreter lock; a worker busy with
        # Python code keeps it up to the switch interval (5 ms by default), which, once per
        # dispatch, left each host's connections idle that long. 1 ms: measured in bench/.
        previous = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            return self._deliver_all(sites, posts, feed)
        finally:
            sys.setswitchinterval(previous)

    def _deliver_all(self, sites: list[str], posts: set[int] | None,
                     feed: Feed | None) -> Tally:
        tally = Tally()
        now = self.clock()
        self._recover(now)
        backlog = Backlog(self.store.due(now, sites, posts))
        limit = self.settings.http.concurrency
        running: dict[int, Notification] = {}  # by notification ID
        busy: Counter[str] = Counter()
        done: list[tuple[int, Result]] = []
        hosts: Mapping[str, HostState] = {}
        # Workers put their results here: cheaper than a waiter on every future each pass.
        completions: queue.SimpleQueue[tuple[int, Result]] = queue.SimpleQueue()
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="wpnotify-send") as pool:
            while True:
                if feed is not None and not feed.done and len(backlog) < FEED_BELOW:
                    # Waits a little for the next page only when there is nothing else to do.
                    page = feed.take(0.0 if running or backlog.by_host else 0.2)
                    for n in self.store.due(self.clock(), sites, page) if page else ():
                        backlog.push(n)
                # Slots of plain outcomes are free at once: the next request to those hosts
                # goes before the outcomes are recorded (many short store calls). An outcome
                # that may hold its host (a 429, WordPress, an unreachable host) keeps its
                # slot until it is recorded, and its host is re-read before the next claim.
                finished = []
                for notification_id, result in done:
                    n = running.pop(notification_id)
                    freed = self._plain(n, result, hosts)
                    if freed:
                        busy[host_of(n.target)] -= 1
                    finished.append((n, result, freed))
                with self.store.atomic():  # the claims: one commit, then they go
                    now = self.clock()
                    hosts = self.store.hosts(backlog.pace_keys()) if backlog.by_host else {}
                    claimed = (self._claim(backlog, running, busy, hosts, now, limit)
                               if backlog.by_host and len(running) < limit
                               and not self.stopping() else [])
                    # Kinds a fallback may not take (read here: workers never touch the store).
                    kinds = self.store.kinds([(n.site, n.post_id, n.target) for n in claimed
                                              if n.kind not in NO_FALLBACK])
                    taken = {n.id: frozenset(kinds.get((n.site, n.post_id, n.target), set())
                                             - {n.kind}) for n in claimed}
                discoveries = self.discoveries or Discoveries(self.http)
                for n in claimed:
                    host = host_of(n.target)
                    busy[host] += 1
                    cleared = self._wordpress_host(host, hosts)
                    running[n.id] = n
                    pool.submit(self._attempt, discoveries, n, cleared, taken[n.id],
                                completions)
                if finished:
                    with self.store.atomic():  # the outcomes: one commit
                        self._finish(finished, backlog, busy, tally)
                    if not all(freed for _, _, freed in finished):
                        done = []
                        continue  # their hosts may take their next notification now
                if self._unflushed >= PINGED_BATCH:
                    self._flush_pinged()
                if not running:
                    if (feed is not None and not feed.done and not self.stopping()
                            and not backlog.by_host):
                        done = []
                        continue  # the reader is still reading
                    next_ready = None if self.stopping() else backlog.next_ready(now, hosts)
                    if next_ready is None:
                        break
                    pause = (next_ready - now).total_seconds()
                    if pause > IN_CYCLE_WAIT:
                        break  # still pending; a later run sends them
                    self.sleep(max(pause, 0.0))
                    done = []
                    continue
                done = _collect(completions)
        tally.retrying += len(backlog)
        return tally

    def _recover(self, now: datetime) -> None:
        """Rows an earlier run left in flight (it crashed, or was killed): each counts as an
        attempt and waits the back-off like any failure, so one that keeps killing its
        sender ends failed instead of being retried at once by every restart."""
        interrupted = SendError("interrupted while sending", code="interrupted",
                                permanent=False)
        queued, failed = self.store.recover_interrupted(
            now, INTERRUPTED_AFTER,
            lambda attempts: next_attempt(interrupted, attempts, now,
                                          self.settings.retry.delays))
        if queued:
            log.warning("notifications.interrupted", count=queued,
                        detail="left in flight by an earlier run that died; sent again after "
                               "the usual back-off")
        if failed:
            log.error("notifications.interrupted_failed", count=failed,
                      detail="left in flight by an earlier run that died, on their last "
                             "attempt; failed (see history, error_code interrupted)")

    def _claim(self, backlog: Backlog, running: dict[int, Notification],
               busy: Counter[str], hosts: Mapping[str, HostState],
               now: datetime, limit: int) -> list[Notification]:
        """Claims what is ready, within the limits (the caller's transaction commits)."""
        per_host = self.settings.http.per_host_concurrency

        def room(host: str, n: Notification) -> int:
            # WordPress hosts, and update services: one ping covers a burst (see conclude).
            one_at_a_time = (self._wordpress_host(host, hosts)
                             or n.kind == weblogupdates.KIND
                             or (n.kind == trackback.KIND and looks_like_wordpress(n.target)))
            return (1 if one_at_a_time else per_host) - busy[host]

        picked = backlog.pick(now, hosts, room, limit - len(running))
        # The others were claimed by another process first.
        return [n for n in picked if self.store.claim(n.id, now)]

    def _attempt(self, discoveries: Discoveries, n: Notification, cleared: bool,
                 taken: frozenset[str],
                 completions: queue.SimpleQueue[tuple[int, Result]]) -> None:
        """On a worker thread: one try at one claimed notification."""
        try:
            result = attempt(self.http, discoveries, n, cleared=cleared, taken=taken)
        except Exception as exc:  # noqa: BLE001 (a bug must not stop the other notifications)
            log.exception("notification.internal_error", id=n.id)
            error = SendError(f"internal error: {type(exc).__name__}: {exc}", code="internal",
                              permanent=False)
            result = Result(n.kind, None, None, error, 0)
        completions.put((n.id, result))

    def _plain(self, n: Notification, result: Result,
               hosts: Mapping[str, HostState]) -> bool:
        """True when recording this outcome cannot hold its host: no 429 or Retry-After, no
        unreachable host, no WordPress, no update service, no busy gate."""
        host = host_of(n.target)
        error = result.error
        return not (result.busy or n.kind == weblogupdates.KIND
                    or (error is not None and (error.retry_after is not None
                                               or error.unreachable))
                    or (result.endpoint is not None and looks_like_wordpress(result.endpoint))
                    or self._wordpress_host(host, hosts))

    def _wordpress_host(self, host: str, hosts: Mapping[str, HostState]) -> bool:
        """Known to run WordPress: in the state file, or found so in this run."""
        return host in self._wordpress or hosts.get(host, HostState()).wordpress

    def _finish(self, finished: list[tuple[Notification, Result, bool]], backlog: Backlog,
                busy: Counter[str], tally: Tally) -> None:
        """Records the outcomes of finished sends (in the caller's transaction) and requeues
        what may go again in this run; frees the slots not freed yet."""
        for n, result, freed in finished:
            if not freed:
                busy[host_of(n.target)] -= 1
            if result.busy:  # found to be WordPress, and pinged already: back in line
                self._wordpress.add(host_of(n.target))
                self.store.release(n.id)
                backlog.push(again_notification(self.store, n.id))
                continue
            outcome = self.conclude(n, result)
            if outcome.held_briefly:  # a flood hold or a short Retry-After: wait in this run
                backlog.push(again_notification(self.store, n.id))
                continue
            tally.count(outcome.status)
            if outcome.covers:  # one update-service ping settled the others waiting for it
                tally.sent += backlog.drop(outcome.covers)
            if (outcome.status == Status.PENDING and result.error is not None
                    and result.error.unreachable
                    and host_of(result.error.endpoint or n.target) == host_of(n.target)):
                tally.retrying += self._put_off(backlog, n, result.error)

    def _put_off(self, backlog: Backlog, failed: Notification, error: SendError) -> int:
        """The host of ``failed`` cannot be reached: the rest of its queue waits for the same
        retry time, untried, instead of each waiting for its own connect timeout."""
        host = host_of(failed.target)
        again = self.store.get(failed.id)
        if again is None or again.next_attempt_at is None:
            return 0
        now = self.clock()
        rest = backlog.take(host)
        for n in rest:
            self.store.defer(n.id, now, again.next_attempt_at,
                             f"not tried: {host} could not be reached moments ago "
                             f"({error.message})", "host-unreachable")
        if rest:
            log.info("host.put_off", host=host, count=len(rest), until=iso(again.next_attempt_at))
        return len(rest)

    def conclude(self, n: Notification, result: Result) -> Outcome:
        """Records one attempt's outcome, paces its host and notes what WordPress should
        learn of it."""
        error = result.error
        now = self.clock()
        if result.kind != n.kind and not self.store.set_kind(n.id, result.kind):
            error = SendError(f"the target was already notified by {result.kind}",
                              code="duplicate", permanent=True, skip=True)
        status, again = self._record(n, now, result.endpoint, result.message, error)
        self._pace(n, now, result.endpoint, error)
        log.info("notification.attempt", site=n.site, post=n.post_id, kind=result.kind,
                 target=n.target, endpoint=result.endpoint, outcome=status,
                 code=error.code if error else None, error=error.message if error else None,
                 attempt=n.attempts + 1, duration_ms=result.duration_ms)
        covers = None
        if status == Status.SENT and n.kind == weblogupdates.KIND:
            # One ping announces the blog: it covers every other post waiting for this service.
            self.store.settle(n.site, n.kind, n.target, now,
                              f"covered by the ping sent for post {n.post_id}")
            covers = (n.site, n.kind, n.target)
        elif status == Status.SENT:  # with the outcome: in the caller's transaction
            self.store.queue_pinged(n.site, n.post_id, [n.target], now)
            self._unflushed += 1
        return Outcome(status, _brief(error, again, now), covers)

    def _record(self, n: Notification, now: datetime, endpoint: str | None,
                message: str | None, error: SendError | None) -> tuple[Status, datetime | None]:
        if error is None:
            if n.error_code == "interrupted":  # keep the crash visible in the history
                message = f"{message} (after an attempt interrupted by a crash)"
            if n.payload.get("resend"):
                message = f"{message} (sent again: {n.payload['resend']})"
            self.store.finish(n.id, Status.SENT, now, endpoint=endpoint, response=message)
            return Status.SENT, None
        again = next_attempt(error, n.attempts + 1, now, self.settings.retry.delays)
        if error.skip:
            status = Status.SKIPPED
        elif again is None:
            status = Status.FAILED
        else:
            status = Status.PENDING
        self.store.finish(n.id, status, now, endpoint=endpoint, error=error.message,
                          error_code=error.code, next_attempt_at=again)
        return status, again

    def _pace(self, n: Notification, now: datetime, endpoint: str | None,
              error: SendError | None) -> None:
        """Holds the receiving host: after a 429 for its Retry-After (15 s at least when it is
        WordPress), and always for wordpress_ping_interval when it runs WordPress. An update
        service is paced apart, by its endpoint URL: one ping per 5 minutes (or for its
        "too fast" Retry-After) holds that service only, never the trackbacks and
        Webmentions to other URLs on its host."""
        host = host_of(n.target)
        known = self.store.host(host).wordpress
        wordpress = known or bool(endpoint and looks_like_wordpress(endpoint))
        hold = self.settings.http.wordpress_ping_interval if wordpress else 0.0
        wait = error.retry_after if error is not None else None
        if n.kind == weblogupdates.KIND:
            pace = weblogupdates.SPACING if error is None else wait or 0.0
            if pace:
                self.store.set_host(pace_key(n), not_before=now + timedelta(seconds=pace))
        elif wait is not None:
            hold = max(hold, wait)
        if wordpress != known or hold:
            self.store.set_host(host, wordpress=wordpress,
                                not_before=now + timedelta(seconds=hold) if hold else None)

    def _flush_pinged(self) -> None:
        """Adds the sent targets to their posts' `pinged` lists through the bridge, as core
        would, PINGED_BATCH links a request, on the cycle's own thread so that sending never
        waits for WordPress. What it could not tell (WordPress down, no bridge yet) stays in
        the state file's outbox for the next cycle, across restarts too."""
        self._unflushed = 0
        for site in sorted(self._told):
            source = self.sources.get(site)
            if source is None:
                continue
            if self._mirror is not None:
                self._mirror.submit(self._tell_wordpress, site, source)
            else:
                self._tell_wordpress(site, source)

    def _tell_wordpress(self, site: str, source: Source) -> None:
        """Empties one site's outbox, a batch at a time (PINGED_BATCHES at most); stops at
        the first failure (the rest waits). Never raises: it runs beside the sending."""
        try:
            state = self.store.site(site)
            if state is not None and state.bridge is False:
                return  # no bridge: the links wait until it is installed
            for batch in range(PINGED_BATCHES):
                if batch and self.stopping():
                    return  # shutting down: one request at most, the rest waits
                if not (waiting := self.store.pinged_waiting(site, PINGED_BATCH)):
                    return
                try:
                    source.record_pinged_many(waiting)
                except SourceError as exc:
                    log.warning("wordpress.record_pinged_failed", site=site,
                                posts=len(waiting), error=str(exc),
                                detail="kept; WordPress is told again at the next cycle")
                    return
                self.store.pinged_told(site, waiting)
        except WpnotifyError as exc:
            log.warning("wordpress.record_pinged_failed", site=site, error=str(exc),
                        detail="kept; WordPress is told again at the next cycle")
        except Exception:  # noqa: BLE001 (a bug here must not stop the sending)
            log.exception("wordpress.record_pinged_failed", site=site)


def _brief(error: SendError | None, again: datetime | None, now: datetime) -> bool:
    """Whether a retry may wait inside this run: only when the receiver's own short
    Retry-After set its time. One set by the back-off schedule (longer) is for a later run."""
    if again is None or error is None or error.retry_after is None:
        return False
    wait = (again - now).total_seconds()
    return wait <= min(error.retry_after + 0.5, IN_CYCLE_WAIT) + 0.001


def _collect(completions: queue.SimpleQueue[tuple[int, Result]]) -> list[tuple[int, Result]]:
    """What finished: waits up to a second for the first, then takes all that are there."""
    try:
        done = [completions.get(timeout=1.0)]
    except queue.Empty:
        return []
    while True:
        try:
            done.append(completions.get_nowait())
        except queue.Empty:
            return done


def again_notification(store: State, notification_id: int) -> Notification:
    found = store.get(notification_id)
    if found is None:
        raise SendError("notification vanished from the state file", code="internal",
                        permanent=True)
    return found
