"""A unit of work on the SQLite file: the shared unit (``sql_unit``) on one sqlite3
connection, and SQLite's errors turned into StateErrors."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from wpnotify.errors import StateError
from wpnotify.state.migrations import LATEST
from wpnotify.state.sql_unit import SqlUnit
from wpnotify.state.sqlite_files import repair_command, state_error


class SqliteFile(SqlUnit):
    """The open state file, one per process (see ``SqlUnit``). ``db`` is for SQLite-only
    tests and tools; callers type against ``State``, which has none."""

    kept = "file"
    _errors = (sqlite3.Error,)

    def __init__(self, db: sqlite3.Connection, path: Path, read_only: bool = False) -> None:
        super().__init__()
        self.db = db
        self.path = path
        self.label = f"state file {path}"
        self.read_only = read_only  # opened for `status` and `history` by a user who may not write

    def repair(self, sql: str) -> str:
        return repair_command(self.path, sql)

    def _version(self) -> int:
        """The schema version; refuses a file from a newer wpnotify."""
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > LATEST:
            raise StateError(
                f"state file {self.path} has schema version {version}, newer than this wpnotify "
                f"knows ({LATEST}); upgrade wpnotify, or use another state_file")
        return version

    def close(self) -> None:
        """Closes the file, after the unit of work in progress (it holds the lock)."""
        with self._lock:
            self._closed = True
            self.db.close()

    def _error(self, exc: Exception, doing: str = "write") -> StateError:
        return state_error(self.path, exc, doing)

    def _read_only_error(self) -> StateError:
        return StateError(f"cannot write state file {self.path}: the state file is read-only "
                          "for this user (it, or its folder, is not writable); make it and its "
                          "folder writable for the user running wpnotify, or run this as that "
                          "user")

    def check_writable(self) -> None:
        """A write transaction is opened and rolled back (its table is never committed)."""
        self.require_writable()
        with self._lock:
            self._require_open()
            try:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute("CREATE TABLE IF NOT EXISTS write_check (x)")
                self.db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise state_error(self.path, exc) from None

    def _begin(self, exclusive: bool = False) -> None:
        self.db.execute("BEGIN IMMEDIATE")  # the writer lock: exclusive already

    def _commit(self) -> None:
        self.db.execute("COMMIT")

    def _rollback(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def _exclusive(self) -> None:
        """Nothing to take: a unit of work holds SQLite's one writer lock from BEGIN
        IMMEDIATE to COMMIT, which keeps every other process's units out already."""

    def _fetch(self, sql: str, params: Any) -> list[Any]:
        return self.db.execute(sql, params).fetchall()

    def _run(self, sql: str, params: Any) -> int:
        return self.db.execute(sql, params).rowcount

    def _run_many(self, sql: str, params: list[Any]) -> None:
        self.db.executemany(sql, params)

    def _fetch_many(self, sql: str, params: list[Any]) -> list[Any]:
        # sqlite3's executemany returns no rows; in-process, one call each costs little.
        return [row for one in params for row in self.db.execute(sql, one).fetchall()]
