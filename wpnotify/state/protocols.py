"""What the rest of wpnotify needs of the state, in narrow parts: callers type against the
part they use, and every backend offers them all (``State``). No part shows a connection, a
row or SQL; a backend turns its own errors into StateError.

Threads may share one state: the sender's workers record beside its coordinating thread.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

from wpnotify.state.records import (
    Action,
    Finished,
    HostState,
    InboundPing,
    Notification,
    Queued,
    SiteEntry,
    SiteState,
    Status,
    Verdict,
    WorkerState,
)


class UnitOfWork(Protocol):
    def atomic(self) -> AbstractContextManager[None]:
        """All writes inside are kept together or not at all; a write outside is its own unit.
        Nested ones join the outer one (the sender records a batch of outcomes at once)."""
        ...


class Queue(UnitOfWork, Protocol):
    """The notifications still to send, and the claim-then-send cycle of each."""

    def add(self, site: str, post_id: int, kind: str, target: str, source: str, now: datetime,
            *, payload: dict[str, Any] | None = None, status: Status = Status.PENDING,
            error: str | None = None, error_code: str | None = None) -> bool: ...

    def add_many(self, site: str, items: list[Queued], now: datetime
                 ) -> set[tuple[int, str, str]]:
        """``add`` for several notifications (of several posts), in one round trip; returns
        the (post, kind, target) of those that were new."""
        ...

    def get(self, notification_id: int) -> Notification | None: ...

    def targets_by_kind(self, site: str, post_ids: Collection[int]
                        ) -> dict[int, dict[str, set[str]]]:
        """The targets of these posts' rows, by post and kind, in one query (a post or a
        kind with none is absent)."""
        ...

    def due(self, now: datetime, sites: list[str] | None = None,
            posts: set[int] | None = None, limit: int = 10_000) -> list[Notification]: ...

    def claim(self, notification_id: int, now: datetime) -> bool: ...

    def release(self, notification_id: int) -> None: ...

    def finish(self, notification_id: int, status: Status, now: datetime, *,
               endpoint: str | None = None, error: str | None = None,
               error_code: str | None = None, response: str | None = None,
               next_attempt_at: datetime | None = None) -> bool:
        """Records how an attempt ended; False (nothing written) when another worker is
        sending the notification now (this one's claim was lost)."""
        ...

    def finish_many(self, outcomes: list[Finished], now: datetime) -> set[int]:
        """``finish`` for a batch, in the given order, in one round trip, each with the kind
        it went out as; returns the IDs recorded. One not recorded had its claim lost, or
        went out as a kind another row of its post and target holds (nothing of it is
        written then: decide again, as a duplicate)."""
        ...

    def defer(self, notification_id: int, now: datetime, until: datetime, reason: str,
              code: str) -> None: ...

    def settle(self, site: str, kind: str, target: str, now: datetime, response: str
               ) -> int: ...

    def resend(self, notification_id: int, now: datetime, payload: dict[str, Any]) -> None: ...

    def claim_many(self, ids: list[int], now: datetime, lease_until: datetime) -> set[int]:
        """Claims, for this process, those of these notifications that are still pending and
        not locked by another worker's transaction at this moment (skipped, never waited
        for): status sending, attempts + 1, claimed_by this process, the lease until
        ``lease_until``. One statement; returns the IDs claimed."""
        ...

    def claim_with_kinds(self, ids: list[int], now: datetime, lease_until: datetime
                         ) -> dict[int, set[str]]:
        """``claim_many``, and for each notification claimed the kinds that have a row for
        its post and target (its own included), in one round trip."""
        ...

    def recover_interrupted(self, now: datetime, older_than: timedelta,
                            again: Callable[[int, bool], datetime | None]) -> tuple[int, int]:
        """Puts back rows left ``sending`` by a worker that stopped: their lease has
        expired, or (a claim without a lease) they are older than ``older_than``, or their
        claimer is a process of this host that no longer runs. ``again(attempts,
        interrupted_before)`` says when each goes again (None: its budget is spent, failed);
        ``interrupted_before``: its previous attempt was interrupted too. Returns (queued
        again, failed)."""
        ...


class SiteLog(UnitOfWork, Protocol):
    """Where the reading of each site stands, and its scheduled posts."""

    def site(self, name: str) -> SiteState | None: ...

    def record_poll(self, name: str, now: datetime, *, cursor: datetime | None = None,
                    error: str | None = None, bridge: bool | None = None,
                    baseline: list[tuple[int, datetime]] | None = None,
                    deletions_seen: datetime | None = None) -> None: ...

    def watch(self, site: str, post_id: int, publish_at: datetime) -> None: ...

    def unwatch(self, site: str, post_ids: list[int]) -> None: ...

    def scheduled_due(self, site: str, now: datetime) -> list[int]: ...


class HostPacing(UnitOfWork, Protocol):
    """Per host (or update service URL): runs WordPress, and no request before when."""

    def host(self, host: str) -> HostState: ...

    def hosts(self, hosts: set[str]) -> dict[str, HostState]: ...

    def set_host(self, host: str, *, wordpress: bool | None = None,
                 not_before: datetime | None = None) -> None: ...


class PingedOutbox(UnitOfWork, Protocol):
    """URLs WordPress should list as pinged, kept until it confirmed them."""

    def queue_pinged_many(self, links: list[tuple[str, int, str]], now: datetime) -> None:
        """(site, post, url): links to list as pinged, of any posts. Call it in the unit of
        work that records why (the outcome), so neither is kept without the other."""
        ...

    def pinged_waiting(self, site: str, limit: int, posts: Collection[int] | None = None
                       ) -> dict[int, list[str]]:
        """Up to ``limit`` URLs, by post (of these ``posts`` only, when given: a worker's
        own, as workers sending together each told the same links)."""
        ...

    def pinged_told(self, site: str, posts: dict[int, list[str]]) -> None: ...


#: (post_id, seq): a post whose statuses WordPress has not been told, as of change ``seq``.
StatusMark = tuple[int, int]


class StatusOutbox(UnitOfWork, Protocol):
    """Posts whose notifications changed since WordPress was last told their statuses. Every
    change to a notification marks its post (the backend does it, so no caller can forget);
    a mark is removed only if the post did not change again since it was read."""

    def status_waiting(self, site: str, limit: int, *, settled: bool = False,
                       leave_to_others: tuple[str, datetime] | None = None
                       ) -> list[StatusMark]:
        """Up to ``limit`` marked posts of a site, the most recently changed first;
        ``settled``: only posts none of whose notifications waits or is being sent (their
        rows will not change again soon), among the most recently changed few thousand (a
        backend may look no deeper: the cycle's end pushes every marked post).
        ``leave_to_others``, this worker's ID and the time now: not the posts with a
        notification another worker is sending, or one due to be sent (whoever sends it
        marks the post again, and pushes it)."""
        ...

    def post_rows(self, site: str, post_ids: list[int]) -> dict[int, list[Notification]]:
        """Every notification of these posts (every kind), oldest first, by post; a post
        with none is missing."""
        ...

    def status_told(self, site: str, marks: list[StatusMark]) -> None:
        """WordPress was told these posts' rows as of these marks: removes the marks that
        are unchanged (a post changed meanwhile stays marked)."""
        ...

    def resend_seen(self, site: str) -> int:
        """The newest Send again request of the site already taken (0: none yet)."""
        ...

    def mark_status(self, site: str, post_id: int) -> None:
        """Marks a post whose notifications did not change, so that WordPress is told its
        rows (and the newest Send again request taken) at the next push all the same."""
        ...

    def lock_marks(self, posts: Collection[tuple[str, int]]) -> None:
        """Takes these posts' marks, in post order, in the caller's unit, before it changes
        their rows (each change marks its post): every unit that changes many posts' rows
        takes them in the same order, so none waits for another in a cycle (PostgreSQL,
        where each mark is a row lock; SQLite's one writer needs nothing)."""
        ...


class Resends(StatusOutbox, Protocol):
    """Send again requests from WordPress: each puts one notification back in the queue."""

    def requeue_for_resend(self, site: str, post_id: int, kind: str, target: str,
                           now: datetime) -> bool:
        """Puts this notification back in the queue with a fresh retry budget, due ``now``:
        pending, attempts 0, error cleared. False when there is no such notification, or it
        is being sent or was sent (nothing to send again)."""
        ...

    def status_of(self, site: str, post_id: int, kind: str, target: str) -> Status | None:
        """That one notification's status (None: there is none), found by its key: a
        request that queues nothing is explained without reading the post's history."""
        ...

    def set_resend_seen(self, site: str, request_id: int) -> None:
        """Notes the newest request taken (never moves back)."""
        ...


class History(Protocol):
    """What was sent, for `history`, `status` and `retry`."""

    def history(self, *, site: str | None = None, post_id: int | None = None,
                kind: str | None = None, status: Status | None = None,
                limit: int = 50) -> list[Notification]: ...

    def counts(self, site: str) -> dict[Status, int]: ...

    def next_retry(self, site: str) -> datetime | None: ...

    def retries_due(self, site: str, now: datetime) -> int:
        """How many of a site's notifications wait for a retry whose time has come: pending,
        tried at least once, next attempt at or before ``now``. For the metrics, at every
        scrape: it must cost the due rows, not the site's history."""
        ...

    def requeue(self, *, ids: list[int], site: str | None = None,
                since: datetime | None = None) -> int: ...


class Fleet(UnitOfWork, Protocol):
    """Workers sharing one state: who runs, which site's poll each holds, and the leases on
    what they send. A lease is an expiry time that its worker renews while it runs; once it
    has passed, another worker may take over what it covered."""

    def claiming(self) -> AbstractContextManager[None]:
        """A unit of work (as ``atomic``) that no other ``claiming`` unit overlaps, in any
        process: what ``claim_view`` reads inside it stays true until it commits,
        so claims made on it keep the fleet within its per-host limits. The sender records
        its batches of outcomes in such units too: units that change many posts' rows, one
        at a time, never deadlock on each other. Keep it short."""
        ...

    def claim_view(self, hosts: set[str], now: datetime
                   ) -> tuple[dict[str, HostState], list[tuple[str, str | None]]]:
        """What a claim reads first, at once: ``HostPacing.hosts`` of these hosts, and the
        (target, claimed_by) of every notification being sent under a live lease at ``now``
        (or a claim without one), by any worker."""
        ...

    def join(self, worker: str, now: datetime, *, daemon: bool = False) -> None:
        """Records a worker as running (or seen again); ``daemon``: one that takes its share
        of the sites' polls (`wpnotify run`), kept from its first record."""
        ...

    def renew(self, worker: str, now: datetime, until: datetime, *,
              daemon: bool = False) -> list[str]:
        """A worker's heartbeat: seen ``now`` (recorded again, as ``join``, if it was
        forgotten); the leases of what it sends and of the sites it polls run until
        ``until``. Returns the sites it still holds."""
        ...

    def leave(self, worker: str) -> None:
        """A worker stops: its sites are free at once, its row goes (what it was still
        sending is left to ``recover_interrupted``)."""
        ...

    def take_site(self, site: str, worker: str, now: datetime, until: datetime) -> bool:
        """The poll of ``site`` for ``worker`` until ``until``, unless another worker holds
        it under a live lease; True when ``worker`` holds it now."""
        ...

    def release_site(self, site: str, worker: str) -> None:
        """Gives up ``worker``'s hold on a site (no effect when it holds none)."""
        ...

    def workers(self, now: datetime) -> list[WorkerState]:
        """The workers recorded, the most recently seen first, with what each holds."""
        ...

    def server_time(self) -> datetime | None:
        """The state's own clock, now: a database server's; None for a file (one machine's,
        whose clock is this one's). See ``state.clock``."""
        ...

    def forget_workers(self, seen_before: datetime) -> int:
        """Removes the rows of workers not seen since ``seen_before`` (gone for good), and
        frees their sites; returns how many."""
        ...


class SiteRegistry(UnitOfWork, Protocol):
    """Sites kept in the state (`wpnotify sites`), beside those of the configuration file."""

    def stored_sites(self) -> list[SiteEntry]:
        """Every stored site and flag, by name."""
        ...

    def store_site(self, name: str, config: dict[str, Any], now: datetime) -> bool:
        """Adds a site; False when one of that name is stored already (nothing changed)."""
        ...

    def remove_site(self, name: str) -> bool:
        """Removes a stored site (its notifications and history stay); False: none."""
        ...

    def set_site_disabled(self, name: str, disabled: bool, now: datetime) -> None:
        """Disables (or enables again) a site, stored or from the configuration file."""
        ...


class InboundLog(UnitOfWork, Protocol):
    """The trackbacks and pingbacks sites received (issue 16): each read once (a cursor of
    comment IDs per site), judged (perhaps after retries), perhaps acted on in WordPress."""

    def inbound_cursor(self, site: str) -> int | None:
        """The highest comment ID of the site's pings read so far; None: never read."""
        ...

    def add_pings(self, site: str, pings: list[InboundPing], cursor: int | None) -> int:
        """Records pings first read (a ping already recorded is left as it is, verdict and
        all) and moves the site's cursor to ``cursor`` (never back; None: unchanged), in
        one unit; returns how many were new. Only the first-read fields of each ping are
        taken (its verdict and action start afresh); text is capped."""
        ...

    def inbound_due(self, site: str, now: datetime, limit: int = 200) -> list[InboundPing]:
        """Pending pings whose next_attempt_at is NULL or <= now, oldest comment first."""
        ...

    def inbound_unacted(self, site: str, limit: int = 200) -> list[InboundPing]:
        """Judged pings (verified/unverified) with action NONE, oldest comment first: what
        a site switched from report to moderate still has to act on."""
        ...

    def inbound_unconfirmed(self, site: str, limit: int = 200) -> list[InboundPing]:
        """Pings whose change to spam or approved was asked for (``record_action`` with
        ``status_after`` None, before the request) and never confirmed, oldest comment
        first: the answer was lost or the process killed, so WordPress must be asked."""
        ...

    def record_verdict(self, site: str, comment_id: int, *, verdict: Verdict,
                       code: str | None, reason: str | None, attempts: int,
                       next_attempt_at: datetime | None, now: datetime) -> None:
        """Sets the ping's verdict, reason and retry schedule; decided_at = now when the
        verdict is not PENDING (None while it is). An unknown ping is no error (nothing)."""
        ...

    def record_action(self, site: str, comment_id: int, action: Action,
                      status_after: str | None, now: datetime) -> None:
        """Notes what was done to the ping's comment (acted_at = now)."""
        ...

    def inbound_list(self, *, site: str | None = None, verdict: Verdict | None = None,
                     limit: int = 50) -> list[InboundPing]:
        """Pings, newest first (seen_at, then comment_id, descending), optionally filtered."""
        ...

    def inbound_counts(self, site: str) -> dict[tuple[Verdict, Action], int]:
        """How many of a site's pings have each (verdict, action); every pair listed."""
        ...


class State(Queue, SiteLog, HostPacing, PingedOutbox, Resends, History, Fleet, SiteRegistry,
            InboundLog, Protocol):
    """An open state, every part of it: what a backend implements and the factory returns."""

    def require_writable(self) -> None:
        """Raises StateError when opened read-only: for a command that will write, before it
        does anything else."""
        ...

    def check_writable(self) -> None:
        """Raises StateError unless a write could be made now (nothing is written)."""
        ...

    def close(self) -> None: ...
