"""What one attempt's result means: sent, skipped, failed, retry at T, hold the host until T.

Pure: no store, no clock, no I/O. The dispatcher reads what it needs (the host's state, the
time, whether a fallback kind was free), calls ``decide`` and applies the ``Outcome``; so every
retry and pacing rule can be read, and tested as a table, in this one file.

The retry policy reads only ``SendError.permanent``, ``.skip``, ``.code`` and ``.retry_after``.
Hosts known to run WordPress get one request at a time and at most one ping per
``wordpress_ping_interval`` (15 s): its comment-flood check answers a quicker second ping with
429 (PROTOCOLS.md §1.5).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from wpnotify import kinds
from wpnotify.attempt import Result, host_of, looks_like_wordpress
from wpnotify.errors import SendError
from wpnotify.settings import Settings
from wpnotify.state import HostState, Notification, Status

# Faults that rarely pass get fewer attempts (PROTOCOLS §2.2).
ATTEMPTS_BY_CODE = {"fault-0": 3, "no-link-in-source": 2, "source-not-found": 4}
IN_CYCLE_WAIT = 60.0  # one delivery run waits at most this long for a host to become free


def _jitter() -> float:
    return random.uniform(0.9, 1.1)


@dataclass(frozen=True)
class Rules:
    """The settings the decision reads: the back-off schedule (the waits after attempt 1,
    2, …) and WordPress's spacing. ``jitter`` spreads retries; tests fix it."""

    delays: tuple[float, ...]
    wordpress_interval: float = 15.0
    jitter: Callable[[], float] = _jitter

    @classmethod
    def of(cls, settings: Settings) -> Rules:
        return cls(settings.retry.delays, settings.http.wordpress_ping_interval)


@dataclass(frozen=True)
class Hold:
    """A write to the host pacing: ``key`` (a host, or an update service's URL) takes no
    request before ``until``; ``wordpress`` records what it runs (None: unchanged)."""

    key: str
    until: datetime | None
    wordpress: bool | None = None


@dataclass(frozen=True)
class Outcome:
    """What to record for one attempt, and what the dispatcher does next.

    ``busy``: nothing was sent (the host was found to run WordPress and was pinged already in
    this cycle): released and put back in line. ``brief``: pending again within
    IN_CYCLE_WAIT, by the receiver's word, so this run waits for it. ``covers``: (site, kind,
    target) settled with it. ``put_off``: its host could not be reached, so the rest of that
    host's queue waits for the same time. ``mirror``: WordPress is to be told it was sent."""

    status: Status
    kind: str
    endpoint: str | None = None
    response: str | None = None
    error: SendError | None = None
    next_attempt_at: datetime | None = None
    holds: tuple[Hold, ...] = ()
    busy: bool = False
    brief: bool = False
    covers: tuple[str, str, str] | None = None
    put_off: bool = False
    mirror: bool = False


def next_attempt(error: SendError, attempts: int, now: datetime, delays: tuple[float, ...],
                 jitter: Callable[[], float] = _jitter) -> datetime | None:
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


def decide(n: Notification, result: Result, host: HostState, now: datetime, rules: Rules, *,
           kind_taken: bool = False) -> Outcome:
    """The outcome of one attempt at ``n``. ``host``: what the state knows of its host;
    ``kind_taken``: it went out as another kind (a fallback) that this post and target
    already have a row for, so it counts as a duplicate."""
    if result.busy:
        return Outcome(Status.PENDING, n.kind, busy=True)
    error = result.error
    if kind_taken:
        error = SendError(f"the target was already notified by {result.kind}",
                          code="duplicate", permanent=True, skip=True)
    holds = pace(n, result.endpoint, error, host.wordpress, now, rules)
    if error is None:
        pacing = kinds.pacing(n.kind)  # one update-service ping announces the blog: it
        # covers every other post waiting for that service
        return Outcome(Status.SENT, result.kind, result.endpoint, _noted(n, result.message),
                       holds=holds,
                       covers=(n.site, n.kind, n.target) if pacing.settles_target else None,
                       mirror=pacing.pinged)
    again = next_attempt(error, n.attempts + 1, now, rules.delays, rules.jitter)
    status = (Status.SKIPPED if error.skip else Status.FAILED if again is None
              else Status.PENDING)
    put_off = (status == Status.PENDING and error.unreachable
               and host_of(error.endpoint or n.target) == host_of(n.target))
    if put_off and again is not None and (host.not_before is None or host.not_before < again):
        # Held in the state, so that every worker sharing it waits for the same retry.
        holds = (*holds, Hold(host_of(n.target), again))
    return Outcome(status, result.kind, result.endpoint, error=error, next_attempt_at=again,
                   holds=holds, brief=brief(error, again, now), put_off=put_off)


def _noted(n: Notification, message: str | None) -> str | None:
    """The reply as recorded: a crash before it, or why it was sent again, stays visible in
    the history."""
    if n.error_code == "interrupted":
        message = f"{message} (after an attempt interrupted by a crash)"
    if (resend := _resend(n)) is not None:
        message = f"{message} (sent again: {resend})"
    return message


def _resend(n: Notification) -> str | None:
    """Why a sent notification goes out again, from its payload (None: its first time)."""
    spec = kinds.find(n.kind)
    return None if spec is None else spec.read(n.payload).resend


def pace(n: Notification, endpoint: str | None, error: SendError | None, known: bool,
         now: datetime, rules: Rules) -> tuple[Hold, ...]:
    """Holds the receiving host: after a 429 for its Retry-After (15 s at least when it is
    WordPress), and always for wordpress_ping_interval when it runs WordPress. An update
    service is paced apart, by its endpoint URL: one ping per 5 minutes (or for its
    "too fast" Retry-After) holds that service only, never the trackbacks and
    Webmentions to other URLs on its host. ``known``: the state says the host runs
    WordPress."""
    holds = []
    wordpress = known or bool(endpoint and looks_like_wordpress(endpoint))
    hold = rules.wordpress_interval if wordpress else 0.0
    wait = error.retry_after if error is not None else None
    if paced_apart(n):
        spacing = kinds.pacing(n.kind).spacing if error is None else wait or 0.0
        if spacing:
            holds.append(Hold(pace_key(n), now + timedelta(seconds=spacing)))
    elif wait is not None:
        hold = max(hold, wait)
    if wordpress != known or hold:
        holds.append(Hold(host_of(n.target), now + timedelta(seconds=hold) if hold else None,
                          wordpress))
    return tuple(holds)


def brief(error: SendError | None, again: datetime | None, now: datetime) -> bool:
    """Whether a retry may wait inside this run: only when the receiver's own short
    Retry-After set its time. One set by the back-off schedule (longer) is for a later run."""
    if again is None or error is None or error.retry_after is None:
        return False
    wait = (again - now).total_seconds()
    return wait <= min(error.retry_after + 0.5, IN_CYCLE_WAIT) + 0.001


def plain(n: Notification, result: Result, wordpress_host: bool) -> bool:
    """True when recording this outcome cannot hold its host: no 429 or Retry-After, no
    unreachable host, no WordPress, no URL paced apart, no busy gate. Its slot is free at
    once, before the outcome is recorded."""
    error = result.error
    return not (result.busy or paced_apart(n)
                or (error is not None and (error.retry_after is not None
                                           or error.unreachable))
                or (result.endpoint is not None and looks_like_wordpress(result.endpoint))
                or wordpress_host)


def one_at_a_time(n: Notification, wordpress_host: bool) -> bool:
    """WordPress hosts, and update services, take one request at a time: one ping covers a
    burst (see ``decide``), and WordPress's flood check refuses a second within 15 s (a
    trackback URL of WordPress's shape is known to be WordPress before it is sent)."""
    spec, pacing = kinds.find(n.kind), kinds.pacing(n.kind)
    return (wordpress_host or pacing.one_at_a_time
            or (spec is not None and spec.at_target and pacing.flood_checked
                and looks_like_wordpress(n.target)))


def paced_apart(n: Notification) -> bool:
    """A kind paced by its endpoint URL (an update service) has pacing of its own (see
    ``pace_key``)."""
    return kinds.pacing(n.kind).by_url


def pace_key(n: Notification) -> str:
    """Where a notification's own pacing is kept: its endpoint URL for a kind paced by URL
    (an update service's five minutes hold that service alone, not the other URLs on its
    host), else its host."""
    return n.target if paced_apart(n) else host_of(n.target)
