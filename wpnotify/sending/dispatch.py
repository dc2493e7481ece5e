"""Delivering due notifications, many at once: claim, send, record, decide when to try again.

A pool of worker threads sends (``[http] concurrency`` at once, ``per_host_concurrency`` to one
host); this thread picks what is ready, claims it, and records outcomes in batches, one commit
for the claims of a batch and one for the outcomes. A slow or dead host holds only its own
slots: once a connection to it fails, the rest of its queue waits for the retry without a try.

Several processes may send from one state (workers sharing a database, or a backfill beside
the daemon). The per-host limits and holds are the fleet's: claims are made in a ``claiming``
unit that no other process's overlaps, counting what the others have in flight to each host,
and every hold is written to the state. Outcomes and recoveries are recorded in such units
too: one worker at a time changes many posts' rows, so no two wait for each other. A claim
is leased (``leases``): a worker that dies loses it, and another sends the notification
again.

What an outcome means is ``decide``'s (pure); this module applies it to the state, in one
place (``_conclude``), and tells the ``pinged`` mirror what was sent.
"""

from __future__ import annotations

import queue
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import structlog

from wpnotify import kinds
from wpnotify.attempt import Discoveries, Result, attempt, host_of
from wpnotify.errors import SendError
from wpnotify.events import NO_EVENTS, Events
from wpnotify.http import Http
from wpnotify.sending.backlog import Backlog, Feed, Tally
from wpnotify.sending.decide import (
    IN_CYCLE_WAIT,
    Hold,
    Outcome,
    Rules,
    decide,
    next_attempt,
    one_at_a_time,
    plain,
)
from wpnotify.sending.leases import lease_span, renew_every
from wpnotify.sending.pinged import PingedMirror
from wpnotify.settings import Settings
from wpnotify.state import Finished, HostState, Notification, State, Status
from wpnotify.state.processes import this_process
from wpnotify.times import iso

if TYPE_CHECKING:  # the protocol only: the mirror is what talks to the sources
    from wpnotify.sources import Source

INTERRUPTED_AFTER = timedelta(minutes=10)  # a `sending` row older than this was interrupted
FEED_BELOW = 1000  # a feed's next page is taken when fewer than this wait in the backlog
OTHERS_WAIT = 0.2  # seconds between looks while only other workers' requests hold the hosts

log = structlog.get_logger("wpnotify.sender")

Done = tuple[int, Result]  # a notification's ID and how its attempt went


@dataclass
class _Run:
    """One delivery's working state, shared by the steps of its loop."""

    sites: list[str]
    posts: set[int] | None
    feed: Feed | None
    backlog: Backlog
    pool: ThreadPoolExecutor
    now: datetime
    tally: Tally = field(default_factory=Tally)
    running: dict[int, Notification] = field(default_factory=dict)  # by notification ID
    busy: Counter[str] = field(default_factory=Counter)  # slots taken, by host
    hosts: Mapping[str, HostState] = field(default_factory=dict)  # as read for the claims
    done: list[Done] = field(default_factory=list)
    # Hosts with room left for this worker only once other workers' requests end.
    crowded: bool = False
    # Workers put their results here: cheaper than a waiter on every future each pass.
    completions: queue.SimpleQueue[Done] = field(default_factory=queue.SimpleQueue)


@dataclass
class _Batch:
    """What a batch of outcomes shares: its hosts as the state has them (each hold written
    in the batch noted, as a later outcome of the same host must see it), and the links to
    tell WordPress of, written at its end."""

    hosts: dict[str, HostState]
    pinged: list[tuple[str, int, str]] = field(default_factory=list)

    def held(self, hold: Hold) -> None:
        """A hold written: what ``set_host`` keeps (None changes nothing)."""
        old = self.hosts.get(hold.key, HostState())
        self.hosts[hold.key] = HostState(
            old.wordpress if hold.wordpress is None else hold.wordpress,
            old.not_before if hold.until is None else hold.until)


@dataclass
class _Finished:
    n: Notification
    result: Result
    freed: bool  # its slot was freed before its outcome was recorded


class Dispatcher:
    """Sends what is due, many at once, politely per host."""

    def __init__(self, settings: Settings, store: State, http: Http,
                 sources: Mapping[str, Source], clock: Callable[[], datetime],
                 sleep: Callable[[float], None] = time.sleep,
                 stopping: Callable[[], bool] = lambda: False,
                 events: Events = NO_EVENTS) -> None:
        self.settings = settings
        self.rules = Rules.of(settings)
        self.store = store
        self.http = http
        self.clock = clock
        self.sleep = sleep
        self.stopping = stopping  # checked before each new send: a daemon's shutdown
        self.events = events  # told of each attempt, and of each pass (the watchdog)
        self.worker = this_process()
        self.mirror = PingedMirror(store, sources, lambda: self.stopping(), worker=self.worker)
        self.discoveries: Discoveries | None = None  # while a cycle runs
        self._wordpress: set[str] = set()  # found to be WordPress in this run: one at a time
        self.lease = lease_span(settings.worker_lease)
        self.look_every = renew_every(settings.worker_lease)  # for expired leases, mid-run

    def use_sites(self, settings: Settings, sources: Mapping[str, Source]) -> None:
        """The sites changed (a daemon's refresh, between cycles): the next cycle tells
        these sources' WordPress what was sent. What the mirror learnt of the others stays."""
        self.settings = settings
        self.mirror.sources = sources

    @contextmanager
    def cycle(self) -> Iterator[None]:
        """One discovery cache for every delivery inside (a backfill's pages); at its end,
        WordPress is told what was sent (and what an earlier cycle could not tell it)."""
        if self.discoveries is not None:
            yield
            return
        self.discoveries = Discoveries(self.http)
        self.mirror.open()
        try:
            yield
        finally:
            self.discoveries = None
            self.mirror.close()

    def deliver(self, sites: list[str], posts: set[int] | None = None,
                feed: Feed | None = None) -> Tally:
        """Sends every due notification of these sites (of these posts only, if given, and of
        those the feed brings until it is done); waits for busy hosts up to a minute."""
        with self.cycle():
            self.mirror.include(sites)
            try:
                return self._deliver(sites, posts, feed)
            finally:
                if feed is not None:
                    feed.cancel()

    def _deliver(self, sites: list[str], posts: set[int] | None, feed: Feed | None) -> Tally:
        now = self.clock()
        self._recover(now)
        backlog = Backlog(self.store.due(now, sites, posts))
        limit = self.settings.http.concurrency
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="wpnotify-send") as pool:
            run = _Run(sites, posts, feed, backlog, pool, now)
            looked = time.monotonic()
            while self._step(run):
                if time.monotonic() - looked >= self.look_every:
                    looked = time.monotonic()
                    self._take_over(run)
        run.tally.retrying += len(run.backlog)
        return run.tally

    def _step(self, run: _Run) -> bool:
        """One pass of the loop: take the feed's next page, start what may go, record what
        finished. False when this run is over."""
        self.events.alive()  # a pass takes a second at most: a stalled loop stops these
        self._take_page(run)
        finished = self._free_slots(run)
        self._start(run, {host_of(f.n.target) for f in finished})
        run.done = []
        if finished:
            # The outcomes: one commit, under the fleet's lock like the claims. Each row's
            # change marks its post for WordPress (a trigger): two workers recording batches
            # of the same posts in other orders would deadlock on those marks in PostgreSQL.
            with self.store.claiming():
                self._finish(run, finished)
            if not all(f.freed for f in finished):
                return True  # their hosts may take their next notification now
        if not run.running:
            return self._idle(run)
        run.done = _collect(run.completions)
        return True

    def _take_page(self, run: _Run) -> None:
        feed = run.feed
        if feed is not None and not feed.done and len(run.backlog) < FEED_BELOW:
            # Waits a little for the next page only when there is nothing else to do.
            page = feed.take(0.0 if run.running or run.backlog.by_host else 0.2)
            for n in self.store.due(self.clock(), run.sites, page) if page else ():
                run.backlog.push(n)

    def _free_slots(self, run: _Run) -> list[_Finished]:
        """Slots of plain outcomes are free at once: the next request to those hosts goes
        before the outcomes are recorded (many short store calls). An outcome that may hold
        its host (a 429, WordPress, an unreachable host) keeps its slot until it is
        recorded, and its host is re-read before the next claim."""
        finished = []
        for notification_id, result in run.done:
            n = run.running.pop(notification_id)
            freed = plain(n, result, self._wordpress_host(host_of(n.target), run.hosts))
            if freed:
                run.busy[host_of(n.target)] -= 1
            finished.append(_Finished(n, result, freed))
        return finished

    def _start(self, run: _Run, finished_hosts: set[str]) -> None:
        """Claims what is ready (one commit for the claims), then hands it to the workers.
        The hosts of the backlog and of the outcomes about to be recorded are read here,
        once for both."""
        limit = self.settings.http.concurrency
        backlog = run.backlog
        claims = bool(backlog.by_host) and len(run.running) < limit and not self.stopping()
        keys = backlog.pace_keys() | finished_hosts if backlog.by_host else finished_hosts
        # Claims take the fleet's claiming lock; a pass with nothing to claim only reads.
        with self.store.claiming() if claims else self.store.atomic():
            run.now = now = self.clock()
            if claims:
                run.hosts, flying = self.store.claim_view(keys, now)
                claimed = self._claim(run, now, limit, flying)
            else:
                run.hosts, claimed = self.store.hosts(keys) if keys else {}, []
        discoveries = self.discoveries or Discoveries(self.http)
        for n, taken in claimed:
            host = host_of(n.target)
            run.busy[host] += 1
            cleared = self._wordpress_host(host, run.hosts)
            run.running[n.id] = n
            run.pool.submit(self._attempt, discoveries, n, cleared, taken, run.completions)

    def _claim(self, run: _Run, now: datetime, limit: int,
               in_flight: list[tuple[str, str | None]]
               ) -> list[tuple[Notification, frozenset[str]]]:
        """Claims what is ready, within the limits, in the caller's claiming unit: the
        per-host room counts this worker's requests in flight and, from the state, every
        other worker's, so the limits hold for the fleet. Each claimed with the kinds a
        fallback may not take (read here: workers never touch the store)."""
        per_host = self.settings.http.per_host_concurrency
        flying = [(target, worker) for target, worker in in_flight if worker != self.worker]
        others = Counter(host_of(target) for target, _ in flying)
        self.mirror.sharing(len({worker for _, worker in flying}), now)

        def room(host: str, n: Notification) -> int:
            alone = one_at_a_time(n, self._wordpress_host(host, run.hosts))
            return (1 if alone else per_host) - run.busy[host] - others[host]

        picked = run.backlog.pick(now, run.hosts, room, limit - len(run.running))
        run.crowded = not picked and any(others[host] for host in run.backlog.by_host)
        self.store.lock_marks([(n.site, n.post_id) for n in picked])  # as outcomes do
        won = self.store.claim_with_kinds([n.id for n in picked], now, now + self.lease)
        # The others went to another worker.
        return [(n, frozenset(() if kinds.sent_as_is(n.kind) else won[n.id] - {n.kind}))
                for n in picked if n.id in won]

    def _idle(self, run: _Run) -> bool:
        """Nothing in flight: waits for the feed's reader, or for the next host to become
        free within IN_CYCLE_WAIT; False when nothing more goes in this run."""
        feed = run.feed
        if (feed is not None and not feed.done and not self.stopping()
                and not run.backlog.by_host):
            return True  # the reader is still reading
        next_ready = None if self.stopping() else run.backlog.next_ready(run.now, run.hosts)
        if next_ready is None:
            return False
        pause = (next_ready - run.now).total_seconds()
        if pause > IN_CYCLE_WAIT:
            return False  # still pending; a later run sends them
        # Ready, but other workers' requests fill its hosts: look again in a moment.
        self.sleep(max(pause, OTHERS_WAIT if run.crowded else 0.0))
        return True

    def _take_over(self, run: _Run) -> None:
        """Mid-run, every third of the lease: what a worker that stopped left in flight goes
        back in the queue, and into this run's backlog (a long run must not leave a killed
        worker's notifications waiting for its end)."""
        now = self.clock()
        if not self._recover(now):
            return
        known = {n.id for q in run.backlog.by_host.values() for n in q} | set(run.running)
        for n in self.store.due(now, run.sites, run.posts):
            if n.id not in known:
                run.backlog.push(n)

    def recover(self) -> int:
        """Takes over what workers that stopped left in flight (see ``_recover``); returns
        how many notifications went back in the queue."""
        return self._recover(self.clock())

    def _recover(self, now: datetime) -> int:
        """Rows left in flight by a worker that stopped (it crashed, was killed, or its lease
        ran out): each counts as an attempt. The first interruption of a notification goes
        again at once (another worker takes over a killed one's work); a repeated one waits
        the back-off like any failure, so one that keeps killing its sender ends failed
        instead of being retried at once by every restart."""
        interrupted = SendError("interrupted while sending", code="interrupted",
                                permanent=False)

        def again(attempts: int, interrupted_before: bool) -> datetime | None:
            when = next_attempt(interrupted, attempts, now, self.rules.delays,
                                self.rules.jitter)
            return when if when is None or interrupted_before else now

        with self.store.claiming():  # many posts' rows at once: under the lock, as outcomes
            queued, failed = self.store.recover_interrupted(now, INTERRUPTED_AFTER, again)
        if not queued and not failed:
            return 0
        if queued:
            self.events.takeover(queued)
            log.warning("notifications.interrupted", count=queued,
                        detail="left in flight by a worker that stopped; sent again (at once "
                               "the first time, after the back-off when it happens again)")
        if failed:
            log.error("notifications.interrupted_failed", count=failed,
                      detail="left in flight by a worker that stopped, on their last "
                             "attempt; failed (see history, error_code interrupted)")
        return queued

    def _attempt(self, discoveries: Discoveries, n: Notification, cleared: bool,
                 taken: frozenset[str], completions: queue.SimpleQueue[Done]) -> None:
        """On a worker thread: one try at one claimed notification."""
        try:
            result = attempt(self.http, discoveries, n, cleared=cleared, taken=taken)
        except Exception as exc:  # noqa: BLE001 (a bug must not stop the other notifications)
            log.exception("notification.internal_error", id=n.id)
            error = SendError(f"internal error: {type(exc).__name__}: {exc}", code="internal",
                              permanent=False)
            result = Result(n.kind, None, None, error, 0)
        completions.put((n.id, result))

    def _wordpress_host(self, host: str, hosts: Mapping[str, HostState]) -> bool:
        """Known to run WordPress: in the state file, or found so in this run."""
        return host in self._wordpress or hosts.get(host, HostState()).wordpress

    def _finish(self, run: _Run, finished: list[_Finished]) -> None:
        """Records the outcomes of finished sends (in the caller's transaction) and requeues
        what may go again in this run; frees the slots not freed yet."""
        # In post order: every unit that changes many posts' rows (and so their marks for
        # WordPress) takes them in the same order, so none waits for another in a cycle.
        ordered = sorted(finished, key=lambda f: (f.n.site, f.n.post_id, f.n.id))
        for f in ordered:
            if not f.freed:
                run.busy[host_of(f.n.target)] -= 1
        # Their hosts as this pass read them (``_start``), those of outcomes that may hold
        # theirs read again in this unit (another worker's hold meanwhile is the one to
        # keep, or lengthen), kept up to date with the holds written below; the outcomes
        # and the links WordPress is to list as pinged each written for the whole batch (a
        # round trip on PostgreSQL, however many outcomes).
        holding = {host_of(f.n.target) for f in ordered if not f.freed}
        batch = _Batch({**run.hosts, **(self.store.hosts(holding) if holding else {})})
        for f, outcome in self._conclude(ordered, batch):
            n = f.n
            if outcome.busy:  # found to be WordPress, and pinged already: back in line
                self._wordpress.add(host_of(n.target))
                run.backlog.push(self._again(n.id))
                continue
            if outcome.brief:  # a flood hold or a short Retry-After: wait in this run
                run.backlog.push(self._again(n.id))
                continue
            run.tally.count(outcome.status)
            if outcome.covers:  # one update-service ping settled the others waiting for it
                run.tally.sent += run.backlog.drop(outcome.covers)
            if outcome.put_off and outcome.error is not None:
                run.tally.retrying += self._put_off(run.backlog, n, outcome)
        self.mirror.sent_many(batch.pinged, self.clock())

    def _conclude(self, ordered: list[_Finished], batch: _Batch
                  ) -> list[tuple[_Finished, Outcome]]:
        """Decides each attempt's outcome, in order (its holds seen by the next), and records
        them: the one place outcomes are written (the rows, with the kind each went out as;
        their hosts' pacing; what WordPress should learn of them), each row once, in post
        order. A fallback's kind another row took meanwhile (a race: the kinds taken were
        read at the claim) leaves its row unwritten: decided again as the duplicate it is."""
        now = self.clock()
        if any(f.result.busy for f in ordered):  # released apart: the marks first, in order
            self.store.lock_marks([(f.n.site, f.n.post_id) for f in ordered])
        decided = [(f, self._decided(f, batch, now)) for f in ordered]
        kept = self.store.finish_many([_finished(f.n, outcome, f.result.kind)
                                       for f, outcome in decided if not f.result.busy], now)
        missed = [f for f, _ in decided if not f.result.busy and f.result.kind != f.n.kind
                  and f.n.id not in kept]
        if missed:  # still this worker's: not written for the kind another row holds
            again = {f.n.id: self._decided(f, batch, now, kind_taken=True) for f in missed
                     if (row := self.store.get(f.n.id)) is not None
                     and row.status == Status.SENDING and row.claimed_by == self.worker}
            kept |= self.store.finish_many([_finished(f.n, again[f.n.id]) for f in missed
                                            if f.n.id in again], now)
            decided = [(f, again.get(f.n.id, outcome)) for f, outcome in decided]
        for f, outcome in decided:
            if not f.result.busy:
                self._recorded(f.n, f.result, outcome, f.n.id in kept, now, batch)
        return decided

    def _decided(self, f: _Finished, batch: _Batch, now: datetime, *,
                 kind_taken: bool = False) -> Outcome:
        """One attempt's outcome; a busy one released (nothing was sent), a host's holds
        written (what the host said holds whoever sends next)."""
        n, result = f.n, f.result
        if result.busy:
            self.store.release(n.id)
            return decide(n, result, HostState(), now, self.rules)
        outcome = decide(n, result, batch.hosts.get(host_of(n.target), HostState()), now,
                         self.rules, kind_taken=kind_taken)
        for hold in outcome.holds:
            self.store.set_host(hold.key, wordpress=hold.wordpress, not_before=hold.until)
            batch.held(hold)
        return outcome

    def _recorded(self, n: Notification, result: Result, outcome: Outcome, kept: bool,
                  now: datetime, batch: _Batch) -> None:
        """What follows an outcome written (in the caller's transaction). A claim lost
        meanwhile (this worker's lease passed, another took the notification over and sends
        it now) recorded nothing of the row: the other's outcome counts."""
        self.events.attempt(result.kind, outcome.status.value, result.duration_ms / 1000)
        error = outcome.error
        log.info("notification.attempt", site=n.site, post=n.post_id, kind=result.kind,
                 target=n.target, endpoint=result.endpoint, outcome=outcome.status,
                 code=error.code if error else None, error=error.message if error else None,
                 attempt=n.attempts + 1, duration_ms=result.duration_ms)
        if not kept:
            log.warning("notification.claim_lost", site=n.site, post=n.post_id, id=n.id,
                        outcome=outcome.status, detail="this worker's lease passed before "
                        "its outcome was recorded (a stall, or the database out of reach); "
                        "another worker sends it now and records its own")
            return
        if outcome.covers:
            site, kind, target = outcome.covers
            self.store.settle(site, kind, target, now,
                              f"covered by the ping sent for post {n.post_id}")
        if outcome.mirror:  # with the outcome: in the caller's transaction (at its end)
            batch.pinged.append((n.site, n.post_id, n.target))

    def _put_off(self, backlog: Backlog, failed: Notification, outcome: Outcome) -> int:
        """The host of ``failed`` cannot be reached: the rest of its queue waits for the same
        retry time, untried, instead of each waiting for its own connect timeout."""
        host, until, error = host_of(failed.target), outcome.next_attempt_at, outcome.error
        if until is None or error is None:
            return 0
        now = self.clock()
        rest = backlog.take(host)
        for n in rest:
            self.store.defer(n.id, now, until,
                             f"not tried: {host} could not be reached moments ago "
                             f"({error.message})", "host-unreachable")
        if rest:
            log.info("host.put_off", host=host, count=len(rest), until=iso(until))
        return len(rest)

    def _again(self, notification_id: int) -> Notification:
        found = self.store.get(notification_id)
        if found is None:
            raise SendError("notification vanished from the state file", code="internal",
                            permanent=True)
        return found


def _finished(n: Notification, outcome: Outcome, sent_as: str | None = None) -> Finished:
    """An outcome as the state records it: a failure's endpoint and error, and when it goes
    again; a success's endpoint and the receiver's answer; the kind it went out as
    (``sent_as``), when another than its row's."""
    error, kind = outcome.error, None if sent_as == n.kind else sent_as
    if error is None:
        return Finished(n.id, outcome.status, endpoint=outcome.endpoint,
                        response=outcome.response, kind=kind)
    return Finished(n.id, outcome.status, endpoint=outcome.endpoint, error=error.message,
                    error_code=error.code, next_attempt_at=outcome.next_attempt_at, kind=kind)


def _collect(completions: queue.SimpleQueue[Done]) -> list[Done]:
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
