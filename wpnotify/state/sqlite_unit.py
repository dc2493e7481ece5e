"""A unit of work on the SQLite file: one connection shared by threads under one lock,
``atomic()`` around its transactions, and SQLite's errors turned into StateErrors."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from wpnotify.errors import StateError
from wpnotify.state.migrations import LATEST
from wpnotify.state.sqlite_files import state_error


class SqliteFile:
    """The open state file, one per process. Threads may share it: every use of the connection
    holds one lock, and a unit of work holds it from BEGIN to COMMIT. ``db`` is for
    SQLite-only tests and tools; callers type against ``State``, which has none."""

    def __init__(self, db: sqlite3.Connection, path: Path, read_only: bool = False) -> None:
        self.db = db
        self.path = path
        self.read_only = read_only  # opened for `status` and `history` by a user who may not write
        self._lock = threading.RLock()
        self._depth = 0  # units nested in the open one (the lock's owner's)
        self._closed = False

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

    def _require_open(self) -> None:
        """A use after close: the daemon's shutdown grace ran out while a worker still had an
        outcome to record. SQLite would say "Cannot operate on a closed database" (and the
        fix for a damaged file); this says what happened and what follows."""
        if self._closed:
            raise StateError(
                f"state file {self.path} was closed as wpnotify shut down, before this could "
                "be recorded; a notification left 'sending' counts as an attempt and is "
                "tried again after its back-off (failed, if it was its last attempt)")

    def _read_only_error(self) -> StateError:
        return StateError(f"cannot write state file {self.path}: the state file is read-only "
                          "for this user (it, or its folder, is not writable); make it and its "
                          "folder writable for the user running wpnotify, or run this as that "
                          "user")

    def require_writable(self) -> None:
        if self.read_only:
            raise self._read_only_error()

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

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT, rolled back whole on any error, so nothing is ever
        half-written; SQLite's errors become a StateError that says what to do. Nested units
        join the outer one."""
        with self._lock:
            self._require_open()
            if self.read_only:
                raise self._read_only_error()
            if self._depth:
                self._depth += 1
                try:
                    yield
                except sqlite3.Error as exc:
                    raise state_error(self.path, exc) from None
                finally:
                    self._depth -= 1
                return
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise state_error(self.path, exc) from None
            self._depth = 1
            try:
                yield
                self.db.execute("COMMIT")
            except BaseException as exc:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise state_error(self.path, exc) from None
                raise
            finally:
                self._depth = 0

    def _exclusive(self) -> None:
        """Nothing to take: a unit of work holds SQLite's one writer lock from BEGIN
        IMMEDIATE to COMMIT, which keeps every other process's units out already."""

    def _rows(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        """Every read goes through here: a damaged file is one StateError, not a traceback."""
        with self._lock:
            self._require_open()
            try:
                return self.db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise state_error(self.path, exc, "read") from None

    def _write(self, sql: str, params: Any = ()) -> int:
        """One statement in a unit of work (the caller's, if it has one); rows changed."""
        with self.atomic():
            return self.db.execute(sql, params).rowcount

    def _write_many(self, sql: str, params: list[Any]) -> None:
        with self.atomic():
            self.db.executemany(sql, params)
