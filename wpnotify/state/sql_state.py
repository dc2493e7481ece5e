"""Sites, hosts, WordPress's pinged lists, the statuses still to be told and the Send again
requests, in SQL both backends run as written, over the backend's unit of work
(``sql_unit``). Marking a post (``mark_status``) is the backend's: each has its own way of
replacing a mark with one of a fresh change number."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from wpnotify.state import rows
from wpnotify.state.protocols import StatusMark
from wpnotify.state.records import HostState, Notification, SiteState, Status
from wpnotify.state.sql_unit import SqlUnit
from wpnotify.times import iso, wp_text

SETTLED_WINDOW = 2000  # marks looked at for settled posts (see status_waiting)


class StateSql(SqlUnit):
    """The ``SiteLog``, ``HostPacing``, ``PingedOutbox`` and ``Resends`` parts of the state,
    less ``mark_status``, over the backend's unit of work."""

    _chunk = 500  # post IDs in one query (SQLite's limit on parameters is the lowest)

    # --- sites ---------------------------------------------------------------------------

    def site(self, name: str) -> SiteState | None:
        found = self._rows("SELECT * FROM sites WHERE name = ?", (name,))
        return rows.site_state(found[0], self) if found else None

    def _site_row(self, name: str) -> None:
        self._write("INSERT INTO sites (name) VALUES (?) ON CONFLICT (name) DO NOTHING", (name,))

    def record_poll(self, name: str, now: datetime, *, cursor: datetime | None = None,
                    error: str | None = None, bridge: bool | None = None,
                    baseline: list[tuple[int, datetime]] | None = None,
                    deletions_seen: datetime | None = None) -> None:
        """Notes a poll's outcome; a value of None keeps the old one."""
        with self.atomic():
            self._site_row(name)
            self._write(
                """UPDATE sites SET last_poll_at = :now,
                       last_ok_at = CASE WHEN CAST(:error AS TEXT) IS NULL THEN :now
                                         ELSE last_ok_at END,
                       last_error = :error, cursor = COALESCE(:cursor, cursor),
                       bridge = COALESCE(:bridge, bridge),
                       baseline = COALESCE(:baseline, baseline),
                       deletions_seen = COALESCE(:deletions, deletions_seen)
                   WHERE name = :name""",
                {"now": iso(now), "error": error, "name": name,
                 "cursor": None if cursor is None else wp_text(cursor),
                 "baseline": None if baseline is None else json.dumps(
                     [(i, wp_text(modified)) for i, modified in baseline]),
                 "deletions": None if deletions_seen is None else wp_text(deletions_seen),
                 "bridge": None if bridge is None else int(bridge)})

    def watch(self, site: str, post_id: int, publish_at: datetime) -> None:
        self._write("INSERT INTO scheduled VALUES (?, ?, ?) ON CONFLICT (site, post_id) "
                    "DO UPDATE SET publish_at = excluded.publish_at",
                    (site, post_id, iso(publish_at)))

    def unwatch(self, site: str, post_ids: list[int]) -> None:
        self._write_many("DELETE FROM scheduled WHERE site = ? AND post_id = ?",
                         [(site, i) for i in post_ids])

    def scheduled_due(self, site: str, now: datetime) -> list[int]:
        found = self._rows(
            "SELECT post_id FROM scheduled WHERE site = ? AND publish_at <= ? ORDER BY post_id",
            (site, iso(now)))
        return [row[0] for row in found]

    # --- hosts ---------------------------------------------------------------------------

    def host(self, host: str) -> HostState:
        return self.hosts({host}).get(host, HostState())

    def claim_view(self, hosts: set[str], now: datetime
                   ) -> tuple[dict[str, HostState], list[tuple[str, str | None]]]:
        """Those of ``hosts`` the state knows, and what is in flight (``IN_FLIGHT``), read
        together (one round trip on PostgreSQL)."""
        marks = ",".join("?" * len(hosts))
        queries: list[tuple[str, Any]] = [(IN_FLIGHT, (iso(now),))]
        if hosts:
            queries.append((f"SELECT host, wordpress, not_before FROM hosts WHERE host IN "
                            f"({marks})", list(hosts)))
        found = self._rows_together(queries)
        known = {row["host"]: rows.host_state(row, self) for row in found[1]} if hosts else {}
        return known, [(row[0], row[1]) for row in found[0]]

    def hosts(self, hosts: set[str]) -> dict[str, HostState]:
        """Those of ``hosts`` the state knows (one query). A host is a host name[:port], or
        an update service's URL (paced on its own)."""
        marks = ",".join("?" * len(hosts))
        found = self._rows(f"SELECT host, wordpress, not_before FROM hosts WHERE host IN "
                           f"({marks})", list(hosts)) if hosts else []
        return {row["host"]: rows.host_state(row, self) for row in found}

    def set_host(self, host: str, *, wordpress: bool | None = None,
                 not_before: datetime | None = None) -> None:
        with self.atomic():
            self._write("INSERT INTO hosts (host) VALUES (?) ON CONFLICT (host) DO NOTHING",
                        (host,))
            self._write(
                """UPDATE hosts SET wordpress = COALESCE(?, wordpress),
                       not_before = COALESCE(?, not_before) WHERE host = ?""",
                (None if wordpress is None else int(wordpress),
                 iso(not_before) if not_before else None, host))

    # --- WordPress's pinged lists ----------------------------------------------------------

    def queue_pinged_many(self, links: list[tuple[str, int, str]], now: datetime) -> None:
        """(site, post, url) of several posts at once: a batch of outcomes' links in one
        statement (in key order, as ``pinged_told``)."""
        self._write_many("INSERT INTO pinged_outbox VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (site, post_id, url) DO NOTHING",
                         sorted((site, post, url, iso(now)) for site, post, url in links))

    def pinged_waiting(self, site: str, limit: int, posts: Collection[int] | None = None
                       ) -> dict[int, list[str]]:
        """Up to ``limit`` URLs, by post, in the primary key's order: no sort, however long
        the backlog (of the first ``_chunk`` of ``posts``, when given)."""
        where, params = "", list[Any]()
        if posts is not None:
            chunk = sorted(posts)[:self._chunk]
            if not chunk:
                return {}
            where, params = f" AND post_id IN ({','.join('?' * len(chunk))})", chunk
        waiting: dict[int, list[str]] = {}
        for row in self._rows(f"SELECT post_id, url FROM pinged_outbox WHERE site = ?{where} "
                              "ORDER BY post_id, url LIMIT ?", (site, *params, limit)):
            waiting.setdefault(row[0], []).append(row[1])
        return waiting

    def pinged_told(self, site: str, posts: dict[int, list[str]]) -> None:
        """In key order, as every unit that changes many posts' rows: two such units meet
        in the same order and never wait for each other (a deadlock on PostgreSQL)."""
        self._write_many("DELETE FROM pinged_outbox WHERE site = ? AND post_id = ? AND url = ?",
                         sorted((site, post, url) for post, urls in posts.items()
                                for url in urls))

    # --- statuses WordPress should show, and its Send again requests -------------------------
    # The marks are written by the state's triggers (migration 7) with every change to a
    # notification.

    def status_waiting(self, site: str, limit: int, *, settled: bool = False,
                       leave_to_others: tuple[str, datetime] | None = None
                       ) -> list[StatusMark]:
        if not settled and leave_to_others is not None:
            worker, now = leave_to_others
            found = self._rows(
                "SELECT post_id, seq FROM status_outbox o WHERE site = ? AND NOT EXISTS "
                "(SELECT 1 FROM notifications n WHERE n.site = o.site AND n.post_id = "
                "o.post_id AND ((n.status = 'sending' AND COALESCE(n.claimed_by, '') <> ?) "
                "OR (n.status = 'pending' AND (n.next_attempt_at IS NULL OR "
                "n.next_attempt_at <= ?)))) ORDER BY seq DESC LIMIT ?",
                (site, worker, iso(now), limit))
            return [(row[0], row[1]) for row in found]
        if not settled:
            found = self._rows("SELECT post_id, seq FROM status_outbox WHERE site = ? "
                               "ORDER BY seq DESC LIMIT ?", (site, limit))
            return [(row[0], row[1]) for row in found]
        # Among the newest SETTLED_WINDOW marks only: asked every second while a backfill
        # sends, the question must not read the whole backlog (166,000 marks of unsent posts
        # took 0.45 s). A post settles with its last outcome, its newest mark, so it is near
        # the top; one deeper waits for the cycle's end, which pushes every marked post.
        found = self._rows(
            "SELECT post_id, seq FROM (SELECT site, post_id, seq FROM status_outbox "
            "WHERE site = ? ORDER BY seq DESC LIMIT ?) o WHERE NOT EXISTS (SELECT 1 FROM "
            "notifications n WHERE n.site = o.site AND n.post_id = o.post_id AND n.status IN "
            "('pending', 'sending')) ORDER BY seq DESC LIMIT ?", (site, SETTLED_WINDOW, limit))
        return [(row[0], row[1]) for row in found]

    def post_rows(self, site: str, post_ids: list[int]) -> dict[int, list[Notification]]:
        found: dict[int, list[Notification]] = {}
        for start in range(0, len(post_ids), self._chunk):
            chunk = post_ids[start:start + self._chunk]
            for row in self._rows(
                    f"SELECT * FROM notifications WHERE site = ? AND post_id IN "
                    f"({','.join('?' * len(chunk))}) ORDER BY created_at, id", (site, *chunk)):
                n = rows.notification(row, self)
                found.setdefault(n.post_id, []).append(n)
        return found

    def status_told(self, site: str, marks: list[StatusMark]) -> None:
        """In post order (see ``pinged_told``): an outcome batch marks posts in that order."""
        self._write_many("DELETE FROM status_outbox WHERE site = ? AND post_id = ? AND seq = ?",
                         sorted((site, post, seq) for post, seq in marks))

    def resend_seen(self, site: str) -> int:
        found = self._rows("SELECT resend_seen FROM sites WHERE name = ?", (site,))
        value = found[0][0] if found else None
        return value if isinstance(value, int) and value > 0 else 0

    def set_resend_seen(self, site: str, request_id: int) -> None:
        with self.atomic():
            self._site_row(site)
            self._write("UPDATE sites SET resend_seen = ? WHERE name = ? AND "
                        "COALESCE(resend_seen, 0) < ?", (int(request_id), site, int(request_id)))

    def status_of(self, site: str, post_id: int, kind: str, target: str) -> Status | None:
        found = self._rows("SELECT status FROM notifications WHERE site = ? AND post_id = ? "
                           "AND kind = ? AND target = ?", (site, post_id, kind, target))
        return Status(found[0][0]) if found else None

    def requeue_for_resend(self, site: str, post_id: int, kind: str, target: str,
                           now: datetime) -> bool:
        return self._write(
            """UPDATE notifications SET status = 'pending', attempts = 0,
                   next_attempt_at = :now, updated_at = :now, error = NULL, error_code = NULL,
                   claimed_by = NULL
               WHERE site = :site AND post_id = :post AND kind = :kind AND target = :target
                 AND status IN ('pending', 'failed', 'skipped')""",
            {"now": iso(now), "site": site, "post": post_id, "kind": kind,
             "target": target}) == 1


# What is being sent now, under a live lease: (target, claimed by).
IN_FLIGHT = ("SELECT target, claimed_by FROM notifications WHERE status = 'sending' AND "
             "(lease_until IS NULL OR lease_until > ?)")
