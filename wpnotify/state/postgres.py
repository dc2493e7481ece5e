"""The state in a PostgreSQL database (``state_url``), for a fleet of workers sharing it.

The same schema history as the file (``migrations``), the same stored forms, and the same SQL
for everything both engines say alike (``sql_*.py``); here only what PostgreSQL says its own
way: claiming a batch without waiting for rows another worker holds (SKIP LOCKED), a refused
kind inside the caller's unit (a savepoint), a post's status mark (a sequence), and what
"writable" means for a database user.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from wpnotify.errors import StateError
from wpnotify.state.migrations import LATEST, migrate
from wpnotify.state.postgres_unit import PgConnection, grants_fix
from wpnotify.state.processes import this_process
from wpnotify.state.sql_fleet import FleetSql
from wpnotify.state.sql_inbound import InboundSql
from wpnotify.state.sql_queue import QueueSql
from wpnotify.state.sql_sites import SitesSql
from wpnotify.state.sql_state import StateSql
from wpnotify.times import iso

# The tables a worker writes (``migrations`` only while migrating).
TABLES = ("notifications", "sites", "scheduled", "hosts", "pinged_outbox", "status_outbox",
          "workers", "site_settings", "inbound")


# A post marked for WordPress, as the triggers mark it (a fresh change number).
MARK = ("INSERT INTO status_outbox (site, post_id) VALUES (?, ?) ON CONFLICT (site, post_id) "
        "DO UPDATE SET seq = nextval('status_outbox_seq')")


class PostgresState(PgConnection, QueueSql, StateSql, FleetSql, SitesSql,
                    InboundSql):
    """The state in a PostgreSQL database (see the module's docstring)."""

    _chunk = 5000  # post IDs in one query (the limit on parameters is 65,535)
    _mark = MARK  # each a row lock: taken in post order (``lock_marks``)

    @classmethod
    def open(cls, url: str) -> PostgresState:
        """Connects, and brings the schema to the latest version (the first command run on
        a new database creates it; workers starting at once take turns)."""
        state = cls(url)
        state._migrating = True
        try:
            migrate(state._version, state.atomic, state._run, lambda sql: [sql], postgres=True)
        except StateError:
            state.close()
            raise
        state._migrating = False
        return state

    def server_time(self) -> datetime | None:
        """The server's clock_timestamp() (the time now, not the transaction's start)."""
        server = self._rows("SELECT clock_timestamp()")[0][0]
        if not isinstance(server, datetime) or server.tzinfo is None:
            raise StateError(f"{self.label}: clock_timestamp() gave {server!r}, not a time")
        return server.astimezone(UTC)

    def _version(self) -> int:
        """The schema version (0: a new database); refuses one from a newer wpnotify."""
        if not self._rows("SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = "
                          "current_schema() AND tablename = 'migrations'"):
            return 0
        version = int(self._rows("SELECT COALESCE(MAX(version), 0) FROM migrations")[0][0])
        if version > LATEST:
            raise StateError(
                f"{self.label} has schema version {version}, newer than this wpnotify knows "
                f"({LATEST}); upgrade wpnotify, or use another database")
        return version

    # --- a user that may only read (`status`, `history`) ----------------------------------

    def require_writable(self) -> None:
        """A user granted SELECT only reads (`status`, `history`); a command that will
        write is refused before it starts, naming the grants it needs."""
        missing = [row[0] for row in self._rows(
            "SELECT t FROM unnest(CAST(? AS TEXT[])) AS t WHERE NOT (has_table_privilege(t, "
            "'SELECT, INSERT, UPDATE, DELETE')) OR (t = 'status_outbox' AND NOT "
            "has_sequence_privilege('status_outbox_seq', 'USAGE'))", (list(TABLES),))]
        if missing:
            raise StateError(f"cannot write {self.label} (tables {', '.join(missing)}); "
                             + grants_fix(self.shown))

    def check_writable(self) -> None:
        """The grants, and a server that takes writes (not a standby); nothing is written."""
        self.require_writable()
        if self._rows("SELECT pg_is_in_recovery() OR current_setting("
                      "'default_transaction_read_only') = 'on'")[0][0]:
            raise StateError(f"cannot write {self.label}: the server is read-only (a "
                             "standby?); point state_url at the primary")

    # --- what only PostgreSQL says this way --------------------------------------------------

    def claim_many(self, ids: list[int], now: datetime, lease_until: datetime) -> set[int]:
        """One statement for a batch; a row another worker's transaction holds at this
        moment is skipped, never waited for (it is being claimed elsewhere)."""
        if not ids:
            return set()
        with self.atomic():
            claimed = self._rows(
                """UPDATE notifications SET status = 'sending', attempts = attempts + 1,
                       updated_at = ?, claimed_by = ?, lease_until = ?
                   WHERE id IN (SELECT id FROM notifications WHERE id = ANY(?)
                                AND status = 'pending' FOR UPDATE SKIP LOCKED)
                   RETURNING id""",
                (iso(now), this_process(), iso(lease_until), list(ids)))
        return {row[0] for row in claimed}

    def claim_with_kinds(self, ids: list[int], now: datetime, lease_until: datetime
                         ) -> dict[int, set[str]]:
        """The claim and its rows' kinds in one statement: the kinds are read as they were
        before it (a claim changes none)."""
        if not ids:
            return {}
        found: dict[int, set[str]] = {}
        with self.atomic():
            for row in self._rows(
                    """WITH claimed AS (
                           UPDATE notifications SET status = 'sending',
                               attempts = attempts + 1, updated_at = ?, claimed_by = ?,
                               lease_until = ?
                           WHERE id IN (SELECT id FROM notifications WHERE id = ANY(?)
                                        AND status = 'pending' FOR UPDATE SKIP LOCKED)
                           RETURNING id, site, post_id, target)
                       SELECT c.id, o.kind FROM claimed AS c JOIN notifications AS o
                           ON o.site = c.site AND o.post_id = c.post_id
                           AND o.target = c.target""",
                    (iso(now), this_process(), iso(lease_until), list(ids))):
                found.setdefault(row[0], set()).add(row[1])
        return found

    def _finish_rows(self, sql: str, params: list[Any]) -> list[Any]:
        """Another process may add a row of a fallback's kind between the statement's check
        and its write (READ COMMITTED): the unique key then fails the batch, which is rolled
        back to its savepoint and written again, seeing that row now (committed: the error
        waited for it), up to three times, then one outcome at a time."""
        with self.atomic():
            for _ in range(3):
                self._flush()
                self._defer("SAVEPOINT finish_many")
                try:
                    kept = self._fetch_many(sql, params)
                except psycopg.errors.UniqueViolation:
                    self._statement("ROLLBACK TO SAVEPOINT finish_many")
                    continue
                self._defer("RELEASE SAVEPOINT finish_many")
                return kept
            return [row for one in params for row in self._one_finish(sql, one)]

    def _one_finish(self, sql: str, params: Any) -> list[Any]:
        self._defer("SAVEPOINT finish_one")
        try:
            kept = self._fetch(sql, params)
        except psycopg.errors.UniqueViolation:
            self._statement("ROLLBACK TO SAVEPOINT finish_one")
            return []
        self._defer("RELEASE SAVEPOINT finish_one")
        return kept

    def mark_status(self, site: str, post_id: int) -> None:
        """A fresh change number from the sequence, as the triggers give."""
        self._write(MARK, (site, post_id))
