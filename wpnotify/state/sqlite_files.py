"""The SQLite file itself: opening it (read-write in WAL mode, or read-only without creating
anything beside it), SQLite's errors as one-line StateErrors, and the repair commands those
messages name."""

from __future__ import annotations

import os
import shlex
import sqlite3
import time
import urllib.parse
from pathlib import Path

from wpnotify.errors import StateError
from wpnotify.state.rows import shell_sql

# Primary result codes (an extended code carries one in its low byte) and what each asks of
# the user; any other error means a damaged file.
_FIXES = {
    sqlite3.SQLITE_BUSY: "another process holds a write lock on it (a backup tool, a stuck "
                         "wpnotify?)",
    sqlite3.SQLITE_LOCKED: "another process holds a write lock on it (a backup tool, a stuck "
                           "wpnotify?)",
    sqlite3.SQLITE_FULL: "the disk is full or failing: free some space, check the system log "
                         "(nothing was half-written)",
    sqlite3.SQLITE_IOERR: "the disk is full or failing: free some space, check the system log "
                          "(nothing was half-written)",
    sqlite3.SQLITE_READONLY: "make it and its folder writable for the user running wpnotify",
    sqlite3.SQLITE_CANTOPEN: "make it and its folder writable for the user running wpnotify",
}
_DAMAGED = "restore it from a backup, or move it aside to start afresh"


def primary_code(exc: Exception) -> int | None:
    """SQLite's primary result code of ``exc``; None for an error raised by Python's module
    itself (a closed connection, a misuse), which carries none."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def state_error(path: Path, exc: Exception, doing: str = "write") -> StateError:
    """A one-line StateError naming the file, SQLite's reason and the fix."""
    fix = _FIXES.get(primary_code(exc) or 0, _DAMAGED)
    return StateError(f"cannot {doing} state file {path}: {exc}; {fix}")


def busy(exc: sqlite3.Error) -> bool:
    """Another connection holds the lock this one needs."""
    return primary_code(exc) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def writable(path: Path) -> bool:
    """Whether this user may write the file and create the WAL's companions beside it
    (``-wal``, ``-shm``; access(2) also says no for an immutable file, even to root)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def connect(path: Path) -> sqlite3.Connection:
    """A read-write connection in WAL mode, every commit synced. Threads share it under the
    state's lock (the sender's workers record a fallback)."""
    db = sqlite3.connect(path, isolation_level=None, timeout=10.0, check_same_thread=False)
    db.row_factory = sqlite3.Row
    write_ahead_log(db)
    db.execute("PRAGMA synchronous=FULL")
    return db


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection that creates nothing beside the file: a ``-shm`` made by this
    user could lock the daemon's user out of its own file. While a writer has the file open,
    its ``-shm`` is there and SQLite reads through it (the latest changes included).
    Otherwise the file is read as immutable, which is right only when its ``-wal`` holds
    nothing: else that would show an old state, and it is an error instead."""
    uri = "file:" + urllib.parse.quote(str(path))
    wal = path.with_name(path.name + "-wal")
    if path.with_name(path.name + "-shm").exists():
        uri += "?mode=ro"
    elif wal.exists() and wal.stat().st_size > 0:
        raise StateError(
            f"cannot read state file {path}: its latest changes are still in {wal.name} and "
            "this user may not open them (the folder is read-only, or the file is); run this "
            "as the user who runs wpnotify, or make the folder writable")
    else:
        uri += "?immutable=1"
    db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=10.0,
                         check_same_thread=False)
    db.row_factory = sqlite3.Row
    return db


def write_ahead_log(db: sqlite3.Connection, patience: float = 10.0) -> None:
    """Switches the file to WAL. When another process is switching (or creating) it at the
    same moment, SQLite answers "database is locked" at once, without waiting as it does for
    other statements; so this waits here, as long as any other statement would."""
    deadline = time.monotonic() + patience
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def repair_command(path: Path, sql: str) -> str:
    """A shell command that repairs the file by hand, for an error message to name."""
    return shell_sql(f"sqlite3 {shlex.quote(str(path))}", sql)


def statements(sql: str) -> list[str]:
    """A migration's statements: split at each ";" that ends one (a trigger's body holds
    several, between BEGIN and END)."""
    found, pending = [], ""
    for part in sql.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending)
            pending = ""
    if pending.strip(" \n;"):
        raise ValueError(f"a migration ends inside a statement: {pending.strip()[:60]!r}")
    return found
