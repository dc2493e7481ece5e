"""The notifications, in SQL both backends run as written: the queue (claim-then-send,
outcomes, fallbacks, recovery after a crash) and the history read by `history`, `status` and
`retry`. What differs by engine (claiming a batch, a refused kind, query-plan hints) is the
backend's, as is its unit of work (``sql_unit``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from wpnotify.errors import StateError
from wpnotify.state import rows
from wpnotify.state.processes import process_dead, this_process
from wpnotify.state.records import Finished, Notification, Queued, Status
from wpnotify.state.sql_unit import SqlUnit
from wpnotify.times import iso, parse_iso


class QueueSql(SqlUnit):
    """The ``Queue`` and ``History`` parts of the state, less ``claim_many`` and
    ``claim_with_kinds``, over the backend's unit of work."""

    # How a post is marked for WordPress, as the triggers do (``lock_marks``); None where a
    # unit of work holds the one writer lock already (SQLite), so there is nothing to take.
    _mark: str | None = None
    # How ``due`` of given posts names the status column: SQLite's "+status" keeps its
    # planner off the status indexes, which would read every pending row of the site.
    _status_by_post = "status"

    def _notifications(self, sql: str, params: Any = ()) -> list[Notification]:
        return [rows.notification(row, self) for row in self._rows(sql, params)]

    def add(self, site: str, post_id: int, kind: str, target: str, source: str, now: datetime,
            *, payload: dict[str, Any] | None = None, status: Status = Status.PENDING,
            error: str | None = None, error_code: str | None = None) -> bool:
        """Queues a notification unless one with the same key exists; True if it was new."""
        return bool(self.add_many(site, [Queued(post_id, kind, target, source, payload, status,
                                                error, error_code)], now))

    def add_many(self, site: str, items: list[Queued], now: datetime
                 ) -> set[tuple[int, str, str]]:
        """Queues each unless one with the same key exists; the (post, kind, target) of the
        new ones."""
        added = self._write_returning(
            """INSERT INTO notifications (site, post_id, kind, target, source, status,
                   payload, error, error_code, created_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (site, post_id, kind, target) DO NOTHING
               RETURNING post_id, kind, target""",
            [(site, item.post_id, item.kind, item.target, item.source,
              Status(item.status).value, json.dumps(item.payload or {}), item.error,
              item.error_code, iso(now), iso(now)) for item in items])
        return {(row[0], row[1], row[2]) for row in added}

    def lock_marks(self, posts: Collection[tuple[str, int]]) -> None:
        """Marks these posts, in post order (in the caller's unit, with its next statement on
        PostgreSQL), before their rows change."""
        if self._mark is not None and posts:
            self._write_many(self._mark, sorted(set(posts)))

    def get(self, notification_id: int) -> Notification | None:
        found = self._notifications("SELECT * FROM notifications WHERE id = ?",
                                    (notification_id,))
        return found[0] if found else None

    def targets_by_kind(self, site: str, post_ids: Collection[int]
                        ) -> dict[int, dict[str, set[str]]]:
        found: dict[int, dict[str, set[str]]] = {}
        posts = sorted(set(post_ids))
        for start in range(0, len(posts), 500):  # within any engine's parameter limit
            chunk = posts[start:start + 500]
            for row in self._rows(
                    f"SELECT post_id, kind, target FROM notifications WHERE site = ? AND "
                    f"post_id IN ({','.join('?' * len(chunk))})", (site, *chunk)):
                found.setdefault(row[0], {}).setdefault(row[1], set()).add(row[2])
        return found

    def due(self, now: datetime, sites: list[str] | None = None,
            posts: set[int] | None = None, limit: int = 10_000) -> list[Notification]:
        """Pending notifications whose time has come, oldest first: of these sites (and of
        these posts) only, when given, and at most ``limit`` of them."""
        if (sites is not None and not sites) or (posts is not None and not posts):
            return []
        where, params = "", list[Any]()
        if sites is not None:
            where += f" AND site IN ({','.join('?' * len(sites))})"
            params += sites
        # Of given posts: found by post (notifications_post), not by status. Otherwise found
        # by status (notifications_site_status, notifications_due): the queue, not the
        # history.
        status = "status"
        if posts is not None:
            where += f" AND post_id IN ({','.join('?' * len(posts))})"
            params += sorted(posts)
            status = self._status_by_post
        return self._notifications(
            f"""SELECT * FROM notifications
                WHERE {status} = 'pending'
                  AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
                  {where}
                ORDER BY COALESCE(next_attempt_at, created_at), id LIMIT ?""",
            (iso(now), *params, limit))

    def claim(self, notification_id: int, now: datetime) -> bool:
        """Marks a pending notification as being sent by this process, committed before any
        request goes out. False when another process claimed it first."""
        return self._write(
            """UPDATE notifications SET status = 'sending', attempts = attempts + 1,
                   updated_at = ?, claimed_by = ? WHERE id = ? AND status = 'pending'""",
            (iso(now), this_process(), notification_id)) == 1

    def release(self, notification_id: int) -> None:
        """Gives back a claim on which nothing was sent (the host was busy); only this
        process's own (one whose lease passed may be another worker's by now)."""
        self._write("""UPDATE notifications SET status = 'pending', attempts = attempts - 1,
                           claimed_by = NULL, lease_until = NULL
                       WHERE id = ? AND status = 'sending' AND claimed_by = ?""",
                    (notification_id, this_process()))

    def finish(self, notification_id: int, status: Status, now: datetime, *,
               endpoint: str | None = None, error: str | None = None,
               error_code: str | None = None, response: str | None = None,
               next_attempt_at: datetime | None = None) -> bool:
        """Records how an attempt ended. False, and nothing written, when another worker is
        sending it now: this one's claim was lost (its lease passed, and the notification
        was taken over), and the other's outcome is the one to keep."""
        return bool(self.finish_many([Finished(notification_id, Status(status), endpoint, error,
                                               error_code, response, next_attempt_at)], now))

    def finish_many(self, outcomes: list[Finished], now: datetime) -> set[int]:
        """``finish`` for each, in their order (a caller that changes many posts' rows
        gives them in post order), with the kind each went out as, unless another row of
        its post and target holds it; the IDs recorded."""
        if not outcomes:
            return set()
        stamp, worker = iso(now), this_process()
        kept = self._finish_rows(FINISH, [
            (o.kind, Status(o.status).value, stamp, o.endpoint, o.error, o.error_code,
             o.response, Status(o.status).value, stamp,
             iso(o.next_attempt_at) if o.next_attempt_at else None, o.id, worker, o.kind,
             o.kind) for o in outcomes])
        return {row[0] for row in kept}

    def _finish_rows(self, sql: str, params: list[Any]) -> list[Any]:
        """The outcomes' statement, one per outcome (PostgreSQL guards it: see there)."""
        return self._write_returning(sql, params)

    def resend(self, notification_id: int, now: datetime, payload: dict[str, Any]) -> None:
        """Queues a sent notification again (a Webmention after its post changed)."""
        self._write(
            """UPDATE notifications SET status = 'pending', attempts = 0, updated_at = ?,
                   next_attempt_at = NULL, error = NULL, error_code = NULL, payload = ?
               WHERE id = ?""", (iso(now), json.dumps(payload), notification_id))

    def settle(self, site: str, kind: str, target: str, now: datetime, response: str) -> int:
        """Marks every other pending notification of this (site, kind, target) as sent, with
        ``response`` saying why (one update-service ping covers them all)."""
        return self._write(
            """UPDATE notifications SET status = 'sent', sent_at = ?, updated_at = ?,
                   response = ?, error = NULL, error_code = NULL, next_attempt_at = NULL
               WHERE site = ? AND kind = ? AND target = ? AND status = 'pending'""",
            (iso(now), iso(now), response, site, kind, target))

    def defer(self, notification_id: int, now: datetime, until: datetime, reason: str,
              code: str) -> None:
        """Puts a pending notification off without trying it (its host just failed): no
        attempt is counted, and the history says why."""
        self._write(
            """UPDATE notifications SET updated_at = ?, next_attempt_at = ?, error = ?,
                   error_code = ? WHERE id = ? AND status = 'pending'""",
            (iso(now), iso(until), reason, code, notification_id))

    def recover_interrupted(self, now: datetime, older_than: timedelta,
                            again: Callable[[int, bool], datetime | None]) -> tuple[int, int]:
        """Puts back rows left ``sending`` by a worker that stopped: its lease has expired
        (another machine's worker, killed or cut off), or, for a claim without a lease (an
        older wpnotify's), it is older than ``older_than`` (no request lives that long), or
        the claiming process is known dead (same host: at once). Returns (queued again,
        given up).

        The interrupted attempt counts (``claim`` counted it), and ``again(attempts,
        interrupted_before)`` decides when it goes again, or that the budget is spent (None:
        failed): the caller sends a first interruption again at once (a worker was killed:
        another takes its work over) and backs off a repeated one, so a target that kills
        its sender is not tried by every restart, forever, ahead of everything else. In
        doubt, wpnotify sends again: receivers deduplicate (pingback fault 48, WordPress's
        "already a ping from that URL"), and both count as sent. The history says what
        happened (error_code ``interrupted``).
        """
        with self.atomic():
            found = self._rows("SELECT id, claimed_by, updated_at, attempts, lease_until, "
                               "error_code, site, post_id FROM notifications WHERE status = "
                               "'sending' ORDER BY site, post_id, id")
            stamp, old = iso(now), iso(now - older_than)
            stale_rows = [row for row in found
                          if (row[4] < stamp if row[4] is not None else row[2] < old)
                          or process_dead(row[1])]
            self.lock_marks([(row[6], row[7]) for row in stale_rows])
            stale = [(row[0], row[3], row[5] == "interrupted") for row in stale_rows]
            plans = [(i, attempts, again(attempts, before)) for i, attempts, before in stale]
            self._requeue_interrupted(now, [(i, n, w) for i, n, w in plans if w is not None])
            failed = [(i, n) for i, n, when in plans if when is None]
            self._fail_interrupted(now, failed)
            return len(plans) - len(failed), len(failed)

    def _requeue_interrupted(self, now: datetime, plans: list[tuple[int, int, datetime]]
                             ) -> None:
        self._write_many(
            """UPDATE notifications SET status = 'pending', next_attempt_at = ?, error = ?,
                   error_code = 'interrupted', updated_at = ?, claimed_by = NULL,
                   lease_until = NULL
               WHERE id = ? AND status = 'sending'""",
            [(iso(when), f"attempt {attempts} was interrupted: the sending process died "
              "or was killed while sending it; tried again later in case it was lost",
              iso(now), i) for i, attempts, when in plans])

    def _fail_interrupted(self, now: datetime, spent: list[tuple[int, int]]) -> None:
        self._write_many(
            """UPDATE notifications SET status = 'failed', next_attempt_at = NULL,
                   error = ?, error_code = 'interrupted', updated_at = ?, claimed_by = NULL,
                   lease_until = NULL
               WHERE id = ? AND status = 'sending'""",
            [(f"interrupted: the sending process died or was killed while sending it "
              f"(attempt {attempts}, the last the retry schedule allows): a restart "
              f"during the send, or a target that stops wpnotify; `wpnotify retry {i}` "
              f"sends it again",
              iso(now), i) for i, attempts in spent])

    # --- history -------------------------------------------------------------------------

    def history(self, *, site: str | None = None, post_id: int | None = None,
                kind: str | None = None, status: Status | None = None,
                limit: int = 50) -> list[Notification]:
        """Notifications, newest first, optionally filtered."""
        clauses, params = [], list[Any]()
        for column, value in (("site", site), ("post_id", post_id), ("kind", kind),
                              ("status", None if status is None else Status(status).value)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._notifications(
            f"SELECT * FROM notifications {where} ORDER BY created_at DESC, id DESC LIMIT ?",
            (*params, limit))

    def requeue(self, *, ids: list[int], site: str | None = None,
                since: datetime | None = None) -> int:
        """Failed notifications back to pending with a fresh retry budget; by ID, or all
        failed ones (of a site, since a time). Unknown or not-failed IDs are an error."""
        with self.atomic():
            if ids:
                self._only_failed(ids)
                where = f"id IN ({','.join('?' * len(ids))})"
                params = list[Any](ids)
            else:
                where = "status = 'failed' AND (CAST(? AS TEXT) IS NULL OR site = ?) AND " \
                        "(CAST(? AS TEXT) IS NULL OR updated_at >= ?)"
                stamp = iso(since) if since else None
                params = list[Any]([site, site, stamp, stamp])
            return self._write(
                f"""UPDATE notifications SET status = 'pending', attempts = 0,
                        next_attempt_at = NULL, updated_at = ?,
                        error = 'queued again by wpnotify retry; it failed with: '
                                || COALESCE(error, '')
                    WHERE {where}""", [iso(datetime.now(UTC)), *params])

    def _only_failed(self, ids: list[int]) -> None:
        found = {row[0]: row[1] for row in self._rows(
            f"SELECT id, status FROM notifications WHERE id IN ({','.join('?' * len(ids))})",
            ids)}
        wrong = [f"{i} ({found.get(i, 'no such notification')})" for i in ids
                 if found.get(i) != Status.FAILED]
        if wrong:
            raise StateError(f"only failed notifications can be retried: {', '.join(wrong)}")

    def counts(self, site: str) -> dict[Status, int]:
        """How many notifications of a site are in each status (every status listed)."""
        found = self._rows("SELECT status, COUNT(*) FROM notifications WHERE site = ? "
                           "GROUP BY status", (site,))
        return {**dict.fromkeys(Status, 0), **{Status(row[0]): row[1] for row in found}}

    def retries_due(self, site: str, now: datetime) -> int:
        """Found by notifications_site_status: the site's pending rows due by ``now`` only."""
        rows = self._rows("SELECT COUNT(*) FROM notifications WHERE site = ? AND status = "
                          "'pending' AND next_attempt_at <= ? AND attempts > 0",
                          (site, iso(now)))
        return int(rows[0][0])

    def next_retry(self, site: str) -> datetime | None:
        found = self._rows("SELECT MIN(next_attempt_at) FROM notifications WHERE site = ? "
                           "AND status = 'pending'", (site,))
        if not found or found[0][0] is None:
            return None
        try:
            return parse_iso(str(found[0][0]))
        except ValueError as exc:
            raise StateError(f"{self.label}: the next retry of site {site} cannot "
                             f"be read ({exc}); find its row with `wpnotify history --site "
                             f"{site} --status pending`") from None


# An attempt's outcome, with the kind it went out as (NULL: its row's), written unless that
# kind is another row's of the same post and target (UNIQUE; the row itself may have it
# already: another worker that took it over sent the same fallback), or another worker holds
# the claim now (its lease passed and the notification was taken over).
FINISH = """UPDATE notifications SET kind = COALESCE(?, kind), status = ?, updated_at = ?,
                endpoint = COALESCE(?, endpoint), error = ?, error_code = ?,
                response = COALESCE(?, response),
                sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END,
                next_attempt_at = ?
            WHERE id = ? AND (status <> 'sending' OR claimed_by = ?)
              AND (CAST(? AS TEXT) IS NULL OR NOT EXISTS (
                  SELECT 1 FROM notifications AS o WHERE o.site = notifications.site
                  AND o.post_id = notifications.post_id AND o.kind = ?
                  AND o.target = notifications.target AND o.id <> notifications.id))
            RETURNING id"""
