"""The pings a site receives (issue 16): read the new trackbacks and pingbacks, judge each by
its source page (``verify``), and, with ``inbound = "moderate"``, mark the unverified spam.

One site's pass runs inside its poll, under the site's lease: no other worker reads or judges
the same site at the same time, so a ping is recorded, judged and acted on once.

What is never done: a comment is never deleted or trashed, and never changed unless its
WordPress status, read again right before the change, is still "hold" as wpnotify first saw it
(a person who approved, unapproved or marked it has decided). A source that cannot be reached
is tried again on the retry schedule (``[retry] delays``) and judged only when that is spent.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from wpnotify import verify
from wpnotify.errors import SourceError, WpnotifyError
from wpnotify.events import NO_EVENTS, Events
from wpnotify.http import Http
from wpnotify.service.moderation import Comments, Moderator
from wpnotify.settings import Settings, SiteSettings
from wpnotify.sources.records import PingBatch, ReceivedPing, SiteInfo
from wpnotify.state import Action, InboundPing, State, Verdict
from wpnotify.urls import redact

log = structlog.get_logger("wpnotify.inbound")

JUDGED_PER_PASS = 100  # pings judged in one poll of a site; the rest at the next one
FETCHES_AT_ONCE = 8  # source pages fetched in parallel
CHECK_FAILED = "check-failed"
NOT_FETCHED = frozenset({"own-site", "host-denied", "host-not-allowed"})  # judged unread
# Seconds a pass spends judging before it leaves the rest for the next one: one group of
# fetches (each at most [http] timeout, plus a few redirects followed) may run past it.
BUDGET = 60.0


class PingSource(Comments, Protocol):
    """What a pass needs of the site: its REST source (``RestSource``)."""

    def info(self) -> SiteInfo: ...
    def pings(self, after: int | None) -> PingBatch: ...
    def post_links(self, ids: list[int]) -> dict[int, tuple[str, str]]: ...


@dataclass
class InboundReport:
    """What one pass over a site's received pings came to."""

    site: str
    read: int = 0  # pings first recorded
    verified: int = 0
    unverified: int = 0
    skipped: int = 0  # left for a person (own-site, too-long, post-gone, check-failed)
    waiting: int = 0  # a source to fetch again later
    deferred: int = 0  # due, but the pass's time was up: judged at the next pass
    actions: dict[str, int] = field(default_factory=dict)  # Action value -> count
    error: str | None = None

    def count(self, action: Action) -> None:
        self.actions[action.value] = self.actions.get(action.value, 0) + 1

    def fail(self, error: str) -> None:
        """A part of the pass failed (the rest went on): the poll says so."""
        self.error = error


def _jitter() -> float:
    return random.uniform(0.9, 1.1)


class InboundPass:
    """One pass over a site's received pings at ``now``; ``source`` is its RestSource."""

    def __init__(self, settings: Settings, store: State, site: SiteSettings, source: PingSource,
                 http: Http, now: datetime, jitter: Callable[[], float] = _jitter,
                 events: Events = NO_EVENTS, budget: float = BUDGET,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.store = store
        self.site = site
        self.source = source
        self.http = http
        self.now = now
        self.jitter = jitter
        self.events = events
        self.budget = budget
        self.monotonic = monotonic
        self.report = InboundReport(site.name)
        self.moderator = Moderator(store, site.name, site.approve_verified, source, now,
                                   self.report.count, self.report.fail
                                   ) if site.inbound == "moderate" else None

    def run(self) -> InboundReport:
        """Reads, judges, acts; a site that cannot be read is this report's error (the
        outbound reading of the site goes on regardless)."""
        try:
            self._read()
            if self.moderator is not None:
                for done, ping in enumerate(self.store.inbound_unconfirmed(self.site.name)):
                    self.moderator.confirm(ping)
                    self._alive(done)
            self._judge(self.store.inbound_due(self.site.name, self.now, JUDGED_PER_PASS))
            if self.moderator is not None:
                unacted = [ping for ping in self.store.inbound_unacted(self.site.name)
                           if ping.comment_id not in self.moderator.tried]
                for done, ping in enumerate(unacted):
                    self._act(ping, ping.verdict)
                    self._alive(done)
        except SourceError as exc:
            self.report.error = str(exc)
            log.warning("inbound.failed", site=self.site.name, error=str(exc))
        return self.report

    def _alive(self, done: int) -> None:
        """A sign of life every few requests to WordPress (each may take the timeout)."""
        if done % 4 == 3:
            self.events.alive()

    def _read(self) -> None:
        batch = self.source.pings(self.store.inbound_cursor(self.site.name))
        pings = [_recorded(self.site.name, ping, self.now) for ping in batch.pings]
        self.report.read = self.store.add_pings(self.site.name, pings, batch.newest)

    def _judge(self, due: list[InboundPing]) -> None:
        """Judges the due pings a few at a time, until the pass's time is up (``budget``
        seconds: the daemon's one job thread has other sites to poll): the rest wait, as
        they were, for the next pass. Each group is a sign of life for the watchdog."""
        if not due:
            return
        links = self.source.post_links(sorted({p.post_id for p in due}))
        home = self.source.info().home
        started = self.monotonic()
        with ThreadPoolExecutor(FETCHES_AT_ONCE, thread_name_prefix="wpnotify-inbound") as pool:
            for start in range(0, len(due), FETCHES_AT_ONCE):
                if self.monotonic() - started >= self.budget:
                    self.report.deferred = len(due) - start
                    log.info("inbound.deferred", site=self.site.name,
                             pings=self.report.deferred, budget_s=self.budget)
                    return
                group = due[start:start + FETCHES_AT_ONCE]
                findings = pool.map(lambda p: self._check(p, links, home), group)
                for ping, finding in zip(group, findings, strict=True):
                    self._decide(ping, finding)
                self.events.alive()

    def _check(self, ping: InboundPing, links: dict[int, tuple[str, str]],
               home: str) -> verify.Finding | None:
        """The finding on one ping; None when its post is gone (nothing to link to)."""
        if ping.post_id not in links:
            return None
        permalink, post_type = links[ping.post_id]
        try:
            addresses = verify.post_addresses(permalink, home, ping.post_id, post_type)
            return verify.check(self.http, ping, addresses, home,
                                allow=self.site.inbound_allow_hosts,
                                deny=self.site.inbound_deny_hosts,
                                verify_ip=self.site.verify_sender_ip)
        except WpnotifyError:
            raise
        except Exception:  # noqa: BLE001 (the isolation boundary for one ping)
            # A bug one ping trips must not stop its site's other pings at every poll: it
            # is tried again on the schedule, and left unjudged (never spam) after that.
            log.exception("inbound.check_failed", site=self.site.name, comment=ping.comment_id)
            return verify.Finding("retry", CHECK_FAILED, "the check failed inside wpnotify "
                                  "(see the log's inbound.check_failed)")

    def _decide(self, ping: InboundPing, finding: verify.Finding | None) -> None:
        """Records the verdict (or the next try), then acts on it."""
        # Fetches of the source: none for a ping judged without reading it.
        attempts = ping.attempts + (finding is not None and finding.code not in NOT_FETCHED)
        if finding is None:
            verdict, code, reason = Verdict.SKIPPED, "post-gone", (
                f"post {ping.post_id} is gone or cannot be read by {self.site.username!r}")
        elif finding.verdict == "retry":
            again = self._again(attempts, finding.retry_after)
            if again is not None:
                self.store.record_verdict(self.site.name, ping.comment_id,
                                          verdict=Verdict.PENDING, code=finding.code,
                                          reason=finding.reason, attempts=attempts,
                                          next_attempt_at=again, now=self.now)
                self.report.waiting += 1
                return
            verdict, code = Verdict.UNVERIFIED, "unreachable"
            reason = f"source unreachable after {attempts} attempts ({finding.reason})"
            if finding.code == CHECK_FAILED:  # our failure, not the sender's: not judged
                verdict, code = Verdict.SKIPPED, CHECK_FAILED
                reason = f"{finding.reason}, {attempts} times"
        else:
            verdict, code, reason = Verdict(finding.verdict), finding.code, finding.reason
        self.store.record_verdict(self.site.name, ping.comment_id, verdict=verdict, code=code,
                                  reason=reason, attempts=attempts, next_attempt_at=None,
                                  now=self.now)
        self.report.verified += verdict is Verdict.VERIFIED
        self.report.unverified += verdict is Verdict.UNVERIFIED
        self.report.skipped += verdict is Verdict.SKIPPED
        action, after = Action.NONE, None
        if self.moderator is not None and verdict is not Verdict.SKIPPED:
            action, after = self._act(ping, verdict)
        self.events.judged(self.site.name, verdict.value, action.value)
        log.info("inbound.decided", site=self.site.name, comment=ping.comment_id,
                 post=ping.post_id, kind=ping.kind, source=redact(ping.source),
                 verdict=verdict.value, code=code, reason=reason, action=action.value,
                 status=after)

    def _again(self, attempts: int, retry_after: float | None) -> datetime | None:
        """When to fetch the source again after ``attempts`` failed fetches; None: the
        budget (one more than the delays, as for notifications) is spent. A Retry-After
        may lengthen the wait, never shorten it."""
        delays = self.settings.retry.delays
        if attempts > len(delays):
            return None
        delay = delays[attempts - 1] * self.jitter()
        if retry_after is not None:
            delay = max(delay, retry_after)
        return self.now + timedelta(seconds=delay)

    def _act(self, ping: InboundPing, verdict: Verdict) -> tuple[Action, str | None]:
        """Moderates one judged ping (``moderation``); one decided in an earlier pass (in
        "report") logs its action now."""
        assert self.moderator is not None  # only called in "moderate"
        action, after = self.moderator.act(ping, verdict)
        if ping.verdict is not Verdict.PENDING:
            self.events.judged(self.site.name, verdict.value, action.value)
            log.info("inbound.acted", site=self.site.name, comment=ping.comment_id,
                     verdict=verdict.value, action=action.value, status=after)
        return action, after


def _recorded(site: str, ping: ReceivedPing, now: datetime) -> InboundPing:
    return InboundPing(site=site, comment_id=ping.comment_id, post_id=ping.post_id,
                       kind=ping.kind, source=ping.source, author=ping.author,
                       author_ip=ping.author_ip, content=ping.content,
                       received_at=ping.date_gmt or now, seen_at=now,
                       status_seen=ping.status)


def check_site(settings: Settings, store: State, site: SiteSettings, source: PingSource,
               http: Http, now: datetime, events: Events = NO_EVENTS) -> InboundReport:
    """One pass over a site's received pings (see the module's docstring)."""
    return InboundPass(settings, store, site, source, http, now, events=events).run()
