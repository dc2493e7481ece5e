"""Delivering due notifications: claim, send, record, and decide when to try again.

The retry policy reads only ``SendError.permanent``, ``.skip``, ``.code`` and ``.retry_after``.
Hosts known to run WordPress get at most one ping per ``wordpress_ping_interval`` (15 s): its
comment-flood check answers a quicker second ping with 429 (PROTOCOLS.md §1.5).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import structlog

from wpnotify import pingback, trackback, weblogupdates, webmention
from wpnotify.discovery import fetch_page, trackback_ping_url
from wpnotify.errors import SendError, SourceError
from wpnotify.http import Http
from wpnotify.settings import Settings
from wpnotify.store import Notification, Store, parse_iso
from wpnotify.wordpress import Source

# Faults that rarely pass get fewer attempts (PROTOCOLS §2.2).
ATTEMPTS_BY_CODE = {"fault-0": 3, "no-link-in-source": 2, "source-not-found": 4}
IN_CYCLE_WAIT = 60.0  # one delivery run waits at most this long for a host to become free
INTERRUPTED_AFTER = timedelta(minutes=10)  # a `sending` row older than this was interrupted

log = structlog.get_logger("wpnotify.sender")


def next_attempt(error: SendError, attempts: int, now: datetime, delays: tuple[float, ...],
                 jitter: Callable[[], float] = lambda: random.uniform(0.9, 1.1),
                 ) -> datetime | None:
    """When to try again after ``attempts`` tries ended in ``error``; None means give up.
    ``delays`` are the waits after attempt 1, 2, …; after the last one it is failed."""
    limit = min(ATTEMPTS_BY_CODE.get(error.code, len(delays) + 1), len(delays) + 1)
    if error.permanent or attempts >= limit:
        return None
    if error.retry_after is not None:
        return now + timedelta(seconds=error.retry_after + 0.5)
    delay = delays[min(attempts, len(delays)) - 1] * jitter()
    return now + timedelta(seconds=delay)


def host_of(url: str) -> str:
    return urlsplit(url).netloc.lower()


def looks_like_wordpress(endpoint: str) -> bool:
    """WordPress's own endpoints: xmlrpc.php, <permalink>trackback/, wp-trackback.php."""
    path = urlsplit(endpoint).path
    return path.endswith(("/xmlrpc.php", "/trackback/", "/trackback", "/wp-trackback.php"))


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


class Sender:
    """Sends what is due, one at a time, host by host."""

    def __init__(self, settings: Settings, store: Store, http: Http,
                 sources: Mapping[str, Source], clock: Callable[[], datetime],
                 sleep: Callable[[float], None] = time.sleep,
                 stopping: Callable[[], bool] = lambda: False) -> None:
        self.settings = settings
        self.store = store
        self.http = http
        self.sources = sources
        self.clock = clock
        self.sleep = sleep
        self.stopping = stopping  # checked between notifications: a daemon's shutdown

    def deliver(self, sites: list[str], posts: set[int] | None = None) -> Tally:
        """Sends every due notification of these sites (of these posts only, if given); waits
        for busy hosts up to a minute."""
        tally = Tally()
        now = self.clock()
        if (count := self.store.recover_interrupted(now, INTERRUPTED_AFTER)):
            log.warning("notifications.interrupted", count=count,
                        detail="left in flight by an earlier run; sending them again")
        queue = [n for n in self.store.due(now)
                 if n.site in sites and (posts is None or n.post_id in posts)]
        while queue and not self.stopping():
            now = self.clock()
            # Re-read every loop: another process (a backfill, the daemon) may hold a host too.
            holds = self.store.holds({host_of(n.target) for n in queue})
            ready = {n.id: self._ready_at(n, now, holds) for n in queue}
            pick = next((n for n in queue if ready[n.id] <= now), None)
            if pick is None:
                wait = (min(ready.values()) - now).total_seconds()
                if wait > IN_CYCLE_WAIT:
                    break  # still pending; a later run sends them
                self.sleep(max(wait, 0.0))
                continue
            queue.remove(pick)
            outcome = self.attempt(pick)
            if outcome.held_briefly:  # a flood hold or a short Retry-After: wait in this run
                queue.append(again_notification(self.store, pick.id))
                continue
            tally.count(outcome.status)
            if outcome.covers:  # one update-service ping settled the others waiting for it
                covered = [n for n in queue if (n.site, n.kind, n.target) == outcome.covers]
                queue = [n for n in queue if n not in covered]
                tally.sent += len(covered)
        tally.retrying += len(queue)
        return tally

    @staticmethod
    def _ready_at(n: Notification, now: datetime, holds: Mapping[str, str]) -> datetime:
        ready = parse_iso(n.next_attempt_at) if n.next_attempt_at else now
        not_before = holds.get(host_of(n.target))
        if not_before is not None:
            ready = max(ready, parse_iso(not_before))
        return ready

    def attempt(self, n: Notification) -> Outcome:
        """One try at one notification."""
        if not self.store.claim(n.id, self.clock()):
            return Outcome("sending")  # another process has it
        started = time.monotonic()
        endpoint: str | None = None
        error: SendError | None = None
        message: str | None = None
        kind = n.kind
        try:
            kind, endpoint, message = self._send(n)
        except SendError as exc:
            error, endpoint = exc, exc.endpoint
        except Exception as exc:  # noqa: BLE001 (a bug must not stop the other notifications)
            log.exception("notification.internal_error", id=n.id)
            error = SendError(f"internal error: {type(exc).__name__}: {exc}", code="internal",
                              permanent=False)
        now = self.clock()
        status, again = self._record(n, now, endpoint, message, error)
        self._pace(n, now, endpoint, error)
        log.info("notification.attempt", site=n.site, post=n.post_id, kind=kind,
                 target=n.target, endpoint=endpoint, outcome=status,
                 code=error.code if error else None, error=error.message if error else None,
                 attempt=n.attempts + 1, duration_ms=round((time.monotonic() - started) * 1000))
        covers = None
        if status == "sent" and n.kind == weblogupdates.KIND:
            # One ping announces the blog: it covers every other post waiting for this service.
            self.store.settle(n.site, n.kind, n.target, now,
                              f"covered by the ping sent for post {n.post_id}")
            covers = (n.site, n.kind, n.target)
        elif status == "sent":
            self._tell_wordpress(n)
        brief = (again is not None and error is not None and error.retry_after is not None
                 and error.retry_after <= IN_CYCLE_WAIT)
        return Outcome(status, brief, covers)

    def _send(self, n: Notification) -> tuple[str, str, str]:
        """Sends one notification: (the kind actually sent, endpoint, receiver's message)."""
        if n.kind in (webmention.KIND, pingback.KIND):
            return self._send_link(n)
        if n.kind == trackback.KIND:
            ping = trackback.Ping(**n.payload)
            return n.kind, n.target, trackback.send(self.http, n.target, ping)
        if n.kind == weblogupdates.KIND:
            update = weblogupdates.Update(**n.payload)
            return n.kind, n.target, weblogupdates.send(self.http, n.target, update)
        raise SendError(f"unknown notification kind {n.kind!r}", code="bad-kind",
                        permanent=True)

    def _send_link(self, n: Notification) -> tuple[str, str, str]:
        """A link's notification. One GET of the target serves every discovery: Webmention
        (for a webmention row), then Pingback (a pingback row, or a webmention row that may
        fall back), then TrackBack RDF (with trackback_discovery). A row that goes out as
        another kind is recorded as that kind."""
        page = fetch_page(self.http, n.target, webmention.wants_body)
        fallback = bool(n.payload.get("fallback"))
        if n.kind == webmention.KIND:
            endpoint = webmention.endpoint_in(page)
            if endpoint is not None:
                return n.kind, endpoint, webmention.send(self.http, endpoint, n.source,
                                                         n.target)
        if n.kind == pingback.KIND or fallback:
            server = pingback.endpoint_in(page)
            if server is not None:
                self._rekind(n, pingback.KIND)
                return pingback.KIND, server, pingback.send(self.http, server, n.source,
                                                            n.target)
        if "ping" in n.payload:
            ping_url = trackback_ping_url(page.text(), page.url, n.target)
            if ping_url is not None:
                self._rekind(n, trackback.KIND)
                ping = trackback.Ping(**n.payload["ping"])
                return trackback.KIND, ping_url, trackback.send(self.http, ping_url, ping)
        names = {webmention.KIND: "Webmention", pingback.KIND: "Pingback"}
        offered = [names[n.kind]] + (["Pingback"] if fallback else []) + (
            ["TrackBack"] if "ping" in n.payload else [])
        raise SendError(f"the target advertises no {' or '.join(dict.fromkeys(offered))} "
                        "endpoint", code="no-endpoint", permanent=True, skip=True)

    def _rekind(self, n: Notification, kind: str) -> None:
        if n.kind != kind and not self.store.set_kind(n.id, kind):
            raise SendError(f"the target was already notified by {kind}", code="duplicate",
                            permanent=True, skip=True)

    def _record(self, n: Notification, now: datetime, endpoint: str | None,
                message: str | None, error: SendError | None) -> tuple[str, datetime | None]:
        if error is None:
            if n.error_code == "interrupted":  # keep the crash visible in the history
                message = f"{message} (after an attempt interrupted by a crash)"
            if n.payload.get("resend"):
                message = f"{message} (sent again: {n.payload['resend']})"
            self.store.finish(n.id, "sent", now, endpoint=endpoint, response=message)
            return "sent", None
        again = next_attempt(error, n.attempts + 1, now, self.settings.retry.delays)
        if error.skip:
            status = "skipped"
        elif again is None:
            status = "failed"
        else:
            status = "pending"
        self.store.finish(n.id, status, now, endpoint=endpoint, error=error.message,
                          error_code=error.code, next_attempt_at=again)
        return status, again

    def _pace(self, n: Notification, now: datetime, endpoint: str | None,
              error: SendError | None) -> None:
        """Holds the receiving host: after a 429 for its Retry-After (15 s at least when it is
        WordPress), and always for wordpress_ping_interval when it runs WordPress."""
        host = host_of(n.target)
        known, _ = self.store.host(host)
        wordpress = known or bool(endpoint and looks_like_wordpress(endpoint))
        hold = self.settings.http.wordpress_ping_interval if wordpress else 0.0
        if n.kind == weblogupdates.KIND and error is None:
            hold = max(hold, weblogupdates.SPACING)
        if error is not None and error.retry_after is not None:
            hold = max(hold, error.retry_after)
        if wordpress != known or hold:
            self.store.set_host(host, wordpress=wordpress,
                                not_before=now + timedelta(seconds=hold) if hold else None)

    def _tell_wordpress(self, n: Notification) -> None:
        """Adds the target to the post's `pinged` list through the bridge, as core would."""
        state = self.store.site(n.site)
        source = self.sources.get(n.site)
        if source is None or (state is not None and state.bridge is False):
            return  # no bridge: nowhere to record it
        try:
            source.record_pinged(n.post_id, [n.target])
        except SourceError as exc:
            log.warning("wordpress.record_pinged_failed", site=n.site, post=n.post_id,
                        target=n.target, error=str(exc))


def again_notification(store: Store, notification_id: int) -> Notification:
    found = store.get(notification_id)
    if found is None:
        raise SendError("notification vanished from the state file", code="internal",
                        permanent=True)
    return found
