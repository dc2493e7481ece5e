"""The state in one SQLite file: versioned schema, one row per notification.

Every notification has a unique key (site, post, kind, target), so a second poll can never
create a second one. Sending follows claim-then-send: the row is committed as ``sending`` before
the request and updated after it, so a crash leaves a visible row, never a silent loss or a
silent second send. Times are stored as text that sorts (``times.iso``; WordPress's own form
for a site's cursors), so SQL compares them.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from wpnotify.errors import StateError
from wpnotify.state.migrations import LATEST, migrate
from wpnotify.state.processes import this_process
from wpnotify.state.sql_fleet import FleetSql
from wpnotify.state.sql_inbound import InboundSql
from wpnotify.state.sql_queue import QueueSql
from wpnotify.state.sql_sites import SitesSql
from wpnotify.state.sql_state import StateSql
from wpnotify.state.sqlite_files import (
    connect,
    connect_read_only,
    state_error,
    statements,
    writable,
)
from wpnotify.state.sqlite_unit import SqliteFile
from wpnotify.times import iso


class SqliteState(SqliteFile, QueueSql, StateSql, FleetSql, SitesSql,
                  InboundSql):
    """The state in one SQLite file (see the module's docstring): the unit of work in
    ``SqliteFile``; the queue, the history, the sites, the hosts, the outboxes, the workers'
    leases, the stored sites and the pings received in SQL both backends share (``sql_*.py``)."""

    _status_by_post = "+status"  # see QueueSql.due

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

    # --- what only SQLite says this way ------------------------------------------------------

    def claim_many(self, ids: list[int], now: datetime, lease_until: datetime) -> set[int]:
        """One statement for a batch (SQLite's writer lock already keeps other processes
        out while it runs, so nothing is ever locked to skip)."""
        if not ids:
            return set()
        with self.atomic():
            rows = self.db.execute(
                f"""UPDATE notifications SET status = 'sending', attempts = attempts + 1,
                        updated_at = ?, claimed_by = ?, lease_until = ?
                    WHERE id IN ({','.join('?' * len(ids))}) AND status = 'pending'
                    RETURNING id""",
                (iso(now), this_process(), iso(lease_until), *ids)).fetchall()
        return {row[0] for row in rows}

    def claim_with_kinds(self, ids: list[int], now: datetime, lease_until: datetime
                         ) -> dict[int, set[str]]:
        with self.atomic():
            won = self.claim_many(ids, now, lease_until)
            found: dict[int, set[str]] = {i: set() for i in won}
            marks = ",".join("?" * len(won))
            for row in self._rows(
                    f"SELECT c.id, o.kind FROM notifications AS c JOIN notifications AS o ON "
                    f"o.site = c.site AND o.post_id = c.post_id AND o.target = c.target "
                    f"WHERE c.id IN ({marks})", sorted(won)) if won else ():
                found[row[0]].add(row[1])
        return found

    def mark_status(self, site: str, post_id: int) -> None:
        """REPLACE gives the mark a fresh change number (AUTOINCREMENT), as the triggers do."""
        self._write("REPLACE INTO status_outbox (site, post_id) VALUES (?, ?)", (site, post_id))
