"""The unit of work both backends share: one connection per state, shared by threads under one
lock; ``atomic()`` around a transaction, nested units joining the outer one; the engine's
errors turned into one-line StateErrors. A backend gives the connection's few verbs (begin,
commit, roll back, run a statement, fetch rows) and the meaning of its errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from wpnotify.errors import StateError


class SqlUnit:
    """The open state, one per process. Every use of the connection holds one lock, and a unit
    of work holds it from its beginning to its commit. ``label`` names the state in messages
    ("state file PATH"); ``kept`` is what a backup restores ("file")."""

    label = "state"
    kept = "state"
    read_only = False  # opened for `status` and `history` by a user who may not write
    # The engine's own errors, which ``_error`` turns into StateErrors.
    _errors: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = 0  # units nested in the open one (the lock's owner's)
        self._closed = False

    # --- what the backend gives ------------------------------------------------------------

    def _error(self, exc: Exception, doing: str = "write") -> StateError:
        raise NotImplementedError

    def _begin(self, exclusive: bool = False) -> None:
        """Opens a transaction; ``exclusive``: holding the claiming lock (``_exclusive``)."""
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _exclusive(self) -> None:
        """Inside a unit: waits for, then holds until its end, the claiming lock."""
        raise NotImplementedError

    def _rollback(self) -> None:
        """Rolls back the open transaction, if there is one."""
        raise NotImplementedError

    def _fetch(self, sql: str, params: Any) -> list[Any]:
        """Runs one statement and returns its rows (readable by position and column name)."""
        raise NotImplementedError

    def _run(self, sql: str, params: Any) -> int:
        """Runs one statement; the rows it changed."""
        raise NotImplementedError

    def _run_many(self, sql: str, params: list[Any]) -> None:
        raise NotImplementedError

    def _fetch_many(self, sql: str, params: list[Any]) -> list[Any]:
        """Runs one statement once per parameter set, in their order, and returns the rows
        each gave (a RETURNING clause), all together: on PostgreSQL one round trip for the
        batch, not one each."""
        raise NotImplementedError

    def repair(self, sql: str) -> str:
        """The shell command that runs ``sql`` on this state (for a message to name)."""
        raise NotImplementedError

    def _read_only_error(self) -> StateError:
        return StateError(f"cannot write {self.label}: it is read-only for this user")

    # --- the unit of work ----------------------------------------------------------------

    def _require_open(self) -> None:
        """A use after close: the daemon's shutdown grace ran out while a worker still had an
        outcome to record. The engine would say its connection is closed (and the fix for
        a damaged state); this says what happened and what follows."""
        if self._closed:
            raise StateError(
                f"{self.label} was closed as wpnotify shut down, before this could "
                "be recorded; a notification left 'sending' counts as an attempt and is "
                "tried again after its back-off (failed, if it was its last attempt)")

    def require_writable(self) -> None:
        if self.read_only:
            raise self._read_only_error()

    @contextmanager
    def atomic(self, *, exclusive: bool = False) -> Iterator[None]:
        """BEGIN … COMMIT, rolled back whole on any error, so nothing is ever half-written;
        the engine's errors become a StateError that says what to do. Nested units join the
        outer one. ``exclusive``: the unit holds the claiming lock (``_exclusive``), no
        other process's exclusive unit overlapping it."""
        with self._lock:
            self._require_open()
            if self.read_only:
                raise self._read_only_error()
            if self._depth:
                self._depth += 1
                try:
                    if exclusive:
                        self._exclusive()
                    yield
                except self._errors as exc:
                    raise self._error(exc) from None
                finally:
                    self._depth -= 1
                return
            try:
                self._begin(exclusive)
            except self._errors as exc:
                raise self._error(exc) from None
            self._depth = 1
            try:
                yield
                self._commit()
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, self._errors):
                    raise self._error(exc) from None
                raise
            finally:
                self._depth = 0

    def _rows(self, sql: str, params: Any = ()) -> list[Any]:
        """Every read goes through here: a damaged state is one StateError, not a traceback."""
        with self._lock:
            self._require_open()
            try:
                return self._fetch(sql, params)
            except self._errors as exc:
                raise self._error(exc, "read") from None

    def _write(self, sql: str, params: Any = ()) -> int:
        """One statement in a unit of work (the caller's, if it has one); rows changed."""
        with self.atomic():
            return self._run(sql, params)

    def _write_many(self, sql: str, params: list[Any]) -> None:
        with self.atomic():
            if params:
                self._run_many(sql, params)

    def _rows_together(self, queries: list[tuple[str, Any]]) -> list[list[Any]]:
        """Each query's rows, the queries sent together (one round trip on PostgreSQL)."""
        return [self._rows(sql, params) for sql, params in queries]

    def _write_returning(self, sql: str, params: list[Any]) -> list[Any]:
        """``_fetch_many`` in a unit of work (the caller's, if it has one)."""
        with self.atomic():
            return self._fetch_many(sql, params) if params else []
