"""The state in one SQLite file: versioned schema, one row per notification.

Every notification has a unique key (site, post, kind, target), so a second poll can never
create a second one. Sending follows claim-then-send: the row is committed as ``sending`` before
the request and updated after it, so a crash leaves a visible row, never a silent loss or a
silent second send. Times are stored as text that sorts (``times.iso``; WordPress's own form
for a site's cursors), so SQL compares them.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

from wpnotify.errors import StateError
from wpnotify.state import sqlite_rows
from wpnotify.state.migrations import LATEST, migrate
from wpnotify.state.protocols import StatusMark
from wpnotify.state.records import HostState, Notification, SiteState, Status
from wpnotify.state.sql_fleet import FleetSql
from wpnotify.state.sql_sites import SitesSql
from wpnotify.state.sqlite_files import (
    connect,
    connect_read_only,
    state_error,
    statements,
    writable,
)
from wpnotify.state.sqlite_queue import SqliteQueue
from wpnotify.times import iso, wp_text

SETTLED_WINDOW = 2000  # marks looked at for settled posts (see status_waiting)


class SqliteState(SqliteQueue, FleetSql, SitesSql):
    """The state in one SQLite file (see the module's docstring); the queue and the history
    are in ``SqliteQueue``, the unit of work in ``SqliteFile``, the workers' leases and the
    stored sites in ``FleetSql`` and ``SitesSql`` (SQL both backends share)."""

    @classmethod
    def open(cls, path: Path) -> SqliteState:
        """Opens (or creates) the state file, brought to the latest schema. A file that this
        user may read but not write (or in a folder it may not write, where SQLite keeps
        the WAL's companions) is opened read-only, for `status` and `history`; any write
        then is a StateError saying so."""
        if not path.parent.is_dir():
            raise StateError(f"state file folder {path.parent} does not exist; create it or "
                             "point state_file elsewhere")
        if path.exists() and not writable(path):
            return cls._open_read_only(path)
        try:
            state = cls(connect(path), path)
            migrate(state._version, state.atomic, state.db.execute, statements)
        except sqlite3.Error as exc:
            raise state_error(path, exc, "use") from None
        return state

    @classmethod
    def _open_read_only(cls, path: Path) -> SqliteState:
        try:
            state = cls(connect_read_only(path), path, read_only=True)
            version = state._version()
        except sqlite3.Error as exc:
            raise state_error(path, exc, "read") from None
        if version < LATEST:
            state.close()
            raise StateError(
                f"state file {path} has schema version {version} and this wpnotify needs "
                f"{LATEST}, but it is read-only for this user, so it cannot be upgraded; run "
                "any wpnotify command once as the user who may write it (the daemon's), or "
                "make it and its folder writable")
        return state

    # --- sites ---------------------------------------------------------------------------

    def site(self, name: str) -> SiteState | None:
        found = self._rows("SELECT * FROM sites WHERE name = ?", (name,))
        return sqlite_rows.site_state(found[0], self.path) if found else None

    def record_poll(self, name: str, now: datetime, *, cursor: datetime | None = None,
                    error: str | None = None, bridge: bool | None = None,
                    baseline: list[tuple[int, datetime]] | None = None,
                    deletions_seen: datetime | None = None) -> None:
        """Notes a poll's outcome; a value of None keeps the old one."""
        with self.atomic():
            self.db.execute("INSERT OR IGNORE INTO sites (name) VALUES (?)", (name,))
            self.db.execute(
                """UPDATE sites SET last_poll_at = :now,
                       last_ok_at = CASE WHEN :error IS NULL THEN :now ELSE last_ok_at END,
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
        self._write("INSERT OR REPLACE INTO scheduled VALUES (?, ?, ?)",
                    (site, post_id, iso(publish_at)))

    def unwatch(self, site: str, post_ids: list[int]) -> None:
        self._write_many("DELETE FROM scheduled WHERE site = ? AND post_id = ?",
                         [(site, i) for i in post_ids])

    def scheduled_due(self, site: str, now: datetime) -> list[int]:
        rows = self._rows(
            "SELECT post_id FROM scheduled WHERE site = ? AND publish_at <= ? ORDER BY post_id",
            (site, iso(now)))
        return [row[0] for row in rows]

    # --- hosts ---------------------------------------------------------------------------

    def host(self, host: str) -> HostState:
        return self.hosts({host}).get(host, HostState())

    def hosts(self, hosts: set[str]) -> dict[str, HostState]:
        """Those of ``hosts`` the file knows (one query). A host is a host name[:port], or an
        update service's URL (paced on its own)."""
        marks = ",".join("?" * len(hosts))
        rows = self._rows(f"SELECT host, wordpress, not_before FROM hosts WHERE host IN "
                          f"({marks})", list(hosts)) if hosts else []
        return {row["host"]: sqlite_rows.host_state(row, self.path) for row in rows}

    def set_host(self, host: str, *, wordpress: bool | None = None,
                 not_before: datetime | None = None) -> None:
        with self.atomic():
            self.db.execute("INSERT OR IGNORE INTO hosts (host) VALUES (?)", (host,))
            self.db.execute(
                """UPDATE hosts SET wordpress = COALESCE(?, wordpress),
                       not_before = COALESCE(?, not_before) WHERE host = ?""",
                (None if wordpress is None else int(wordpress),
                 iso(not_before) if not_before else None, host))

    # --- WordPress's pinged lists ----------------------------------------------------------

    def queue_pinged(self, site: str, post_id: int, urls: list[str], now: datetime) -> None:
        """Call it in the unit of work that records why (the outcome), so neither is kept
        without the other."""
        self._write_many("INSERT OR IGNORE INTO pinged_outbox VALUES (?, ?, ?, ?)",
                         [(site, post_id, url, iso(now)) for url in urls])

    def pinged_waiting(self, site: str, limit: int) -> dict[int, list[str]]:
        """Up to ``limit`` URLs, by post, in the primary key's order: no sort, however long
        the backlog."""
        waiting: dict[int, list[str]] = {}
        for row in self._rows("SELECT post_id, url FROM pinged_outbox WHERE site = ? "
                              "ORDER BY post_id, url LIMIT ?", (site, limit)):
            waiting.setdefault(row[0], []).append(row[1])
        return waiting

    def pinged_told(self, site: str, posts: dict[int, list[str]]) -> None:
        self._write_many("DELETE FROM pinged_outbox WHERE site = ? AND post_id = ? AND url = ?",
                         [(site, post, url) for post, urls in posts.items() for url in urls])

    # --- statuses WordPress should show, and its Send again requests -------------------------
    # The marks are written by the file's triggers (migration 7) with every change to a
    # notification.

    def status_waiting(self, site: str, limit: int, *, settled: bool = False
                       ) -> list[StatusMark]:
        if not settled:
            rows = self._rows("SELECT post_id, seq FROM status_outbox WHERE site = ? "
                              "ORDER BY seq DESC LIMIT ?", (site, limit))
            return [(row[0], row[1]) for row in rows]
        # Among the newest SETTLED_WINDOW marks only: asked every second while a backfill
        # sends, the question must not read the whole backlog (166,000 marks of unsent posts
        # took 0.45 s). A post settles with its last outcome, its newest mark, so it is near
        # the top; one deeper waits for the cycle's end, which pushes every marked post.
        rows = self._rows(
            "SELECT post_id, seq FROM (SELECT site, post_id, seq FROM status_outbox "
            "WHERE site = ? ORDER BY seq DESC LIMIT ?) o WHERE NOT EXISTS (SELECT 1 FROM "
            "notifications n WHERE n.site = o.site AND n.post_id = o.post_id AND n.status IN "
            "('pending', 'sending')) ORDER BY seq DESC LIMIT ?", (site, SETTLED_WINDOW, limit))
        return [(row[0], row[1]) for row in rows]

    def post_rows(self, site: str, post_ids: list[int]) -> dict[int, list[Notification]]:
        found: dict[int, list[Notification]] = {}
        for start in range(0, len(post_ids), 500):  # SQLite's limit on parameters
            chunk = post_ids[start:start + 500]
            for n in self._notifications(
                    f"SELECT * FROM notifications WHERE site = ? AND post_id IN "
                    f"({','.join('?' * len(chunk))}) ORDER BY created_at, id", (site, *chunk)):
                found.setdefault(n.post_id, []).append(n)
        return found

    def status_told(self, site: str, marks: list[StatusMark]) -> None:
        self._write_many("DELETE FROM status_outbox WHERE site = ? AND post_id = ? AND seq = ?",
                         [(site, post, seq) for post, seq in marks])

    def mark_status(self, site: str, post_id: int) -> None:
        self._write("REPLACE INTO status_outbox (site, post_id) VALUES (?, ?)", (site, post_id))

    def resend_seen(self, site: str) -> int:
        rows = self._rows("SELECT resend_seen FROM sites WHERE name = ?", (site,))
        value = rows[0][0] if rows else None
        return value if isinstance(value, int) and value > 0 else 0

    def set_resend_seen(self, site: str, request_id: int) -> None:
        with self.atomic():
            self.db.execute("INSERT OR IGNORE INTO sites (name) VALUES (?)", (site,))
            self.db.execute("UPDATE sites SET resend_seen = MAX(COALESCE(resend_seen, 0), ?) "
                            "WHERE name = ?", (int(request_id), site))

    def status_of(self, site: str, post_id: int, kind: str, target: str) -> Status | None:
        rows = self._rows("SELECT status FROM notifications WHERE site = ? AND post_id = ? "
                          "AND kind = ? AND target = ?", (site, post_id, kind, target))
        return Status(rows[0][0]) if rows else None

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
