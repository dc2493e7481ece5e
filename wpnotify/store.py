"""The state file: SQLite, versioned schema, one row per notification.

Every notification has a unique key (site, post, kind, target), so a second poll can never
create a second one. Sending follows claim-then-send: the row is committed as ``sending`` before
the request and updated after it, so a crash leaves a visible row, never a silent loss or a
silent second send. The store knows no HTTP and no protocol.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import socket
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wpnotify.errors import StateError

STATUSES = ("pending", "sending", "sent", "failed", "skipped")

# (version, name, SQL). Append only: a released migration is never edited.
MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "initial schema", """
        CREATE TABLE migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
        CREATE TABLE sites (
            name TEXT PRIMARY KEY,
            cursor TEXT,            -- newest modified_gmt seen (UTC, ISO 8601)
            baseline TEXT,          -- JSON [[id, modified_gmt]]: published at the first poll
            last_poll_at TEXT, last_ok_at TEXT, last_error TEXT,
            bridge INTEGER);        -- 1 present, 0 absent, NULL not known yet
        CREATE TABLE scheduled (
            site TEXT NOT NULL, post_id INTEGER NOT NULL, publish_at TEXT NOT NULL,
            PRIMARY KEY (site, post_id));
        CREATE TABLE notifications (
            id INTEGER PRIMARY KEY,
            site TEXT NOT NULL, post_id INTEGER NOT NULL, kind TEXT NOT NULL,
            target TEXT NOT NULL, source TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
            attempts INTEGER NOT NULL DEFAULT 0,
            endpoint TEXT, error TEXT, error_code TEXT, response TEXT,
            payload TEXT,           -- JSON: what the request carries beyond source and target
            created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            sent_at TEXT, next_attempt_at TEXT,
            UNIQUE (site, post_id, kind, target));
        CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
        CREATE INDEX notifications_post ON notifications (site, post_id);
        CREATE INDEX notifications_created ON notifications (created_at);
        CREATE TABLE hosts (
            host TEXT PRIMARY KEY,
            wordpress INTEGER NOT NULL DEFAULT 0,   -- known to run WordPress (flood check)
            not_before TEXT);                        -- no request before this time
    """),
    (2, "who claimed a notification", """
        ALTER TABLE notifications ADD COLUMN claimed_by TEXT;  -- host:pid:start of the sender
    """),
    (3, "deletions seen", """
        ALTER TABLE sites ADD COLUMN deletions_seen TEXT;  -- newest bridge deletion handled
    """),
    (4, "history of one post without its site", """
        CREATE INDEX notifications_post_id ON notifications (post_id, created_at);
    """),
    (5, "a site's queue without its history", """
        -- (site, post_id) looked more selective than (status) to the planner, so a poll's
        -- due() read all of a site's history: 0.13 s at a million rows. Also covers counts().
        CREATE INDEX notifications_site_status ON notifications (site, status, next_attempt_at);
    """),
    (6, "WordPress's pinged lists still to be told", """
        -- Written with the outcome that sent the URL, removed once the bridge confirmed it:
        -- a write-back that failed (or waits for the bridge) is tried again, never lost.
        CREATE TABLE pinged_outbox (
            site TEXT NOT NULL, post_id INTEGER NOT NULL, url TEXT NOT NULL,
            queued_at TEXT NOT NULL,
            PRIMARY KEY (site, post_id, url));
    """),
)
LATEST = MIGRATIONS[-1][0]


def _process_token(pid: int) -> str | None:
    """host:pid:start-time of a live process (the start time tells a reused pid apart)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    start = stat.rsplit(")", 1)[1].split()[19]  # field 22, after the command name
    return f"{socket.gethostname()}:{pid}:{start}"


@functools.cache
def this_process() -> str:
    return _process_token(os.getpid()) or f"{socket.gethostname()}:{os.getpid()}:?"


def process_dead(token: str | None) -> bool:
    """True only when ``token`` names a process of this host that no longer runs."""
    if not token:
        return False
    host, _, rest = token.partition(":")
    pid, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or start == "?":
        return False  # another machine's claim, or no /proc: only its age can tell
    return _process_token(int(pid)) != token


def iso(moment: datetime) -> str:
    """The one timestamp format in the file: UTC, microseconds, 'Z'. Sorts as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def state_error(path: Path, exc: sqlite3.DatabaseError, doing: str = "write") -> StateError:
    """A one-line StateError naming the file, SQLite's reason and the fix."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        fix = "another process holds a write lock on it (a backup tool, a stuck wpnotify?)"
    elif "full" in text or "I/O" in text:
        fix = ("the disk is full or failing: free some space, check the system log "
               "(nothing was half-written)")
    elif "readonly" in text or "read-only" in text or "unable to open" in text:
        fix = "make it and its folder writable for the user running wpnotify"
    else:
        fix = "restore it from a backup, or move it aside to start afresh"
    return StateError(f"cannot {doing} state file {path}: {text}; {fix}")


def _writable(path: Path) -> bool:
    """Whether this user may write the file and create the WAL's companions beside it
    (``-wal``, ``-shm``; access(2) also says no for an immutable file, even to root)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _connect_read_only(path: Path) -> sqlite3.Connection:
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


def _write_ahead_log(db: sqlite3.Connection, patience: float = 10.0) -> None:
    """Switches the file to WAL. When another process is switching (or creating) it at the
    same moment, SQLite answers "database is locked" at once, without waiting as it does for
    other statements; so this waits here, as long as any other statement would."""
    deadline = time.monotonic() + patience
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@dataclass(frozen=True)
class Notification:
    id: int
    site: str
    post_id: int
    kind: str
    target: str
    source: str
    status: str
    attempts: int
    endpoint: str | None
    error: str | None
    error_code: str | None
    response: str | None
    payload: dict[str, Any]
    created_at: str
    updated_at: str
    sent_at: str | None
    next_attempt_at: str | None
    claimed_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "payload"}
        return data


@dataclass(frozen=True)
class SiteState:
    name: str
    cursor: str | None
    baseline: frozenset[tuple[int, str]]
    deletions_seen: str | None
    last_poll_at: str | None
    last_ok_at: str | None
    last_error: str | None
    bridge: bool | None


class Store:
    """The open state file, one per process. Threads may share it: every use of the connection
    holds one lock, and a transaction holds it from BEGIN to COMMIT."""

    def __init__(self, db: sqlite3.Connection, path: Path, read_only: bool = False) -> None:
        self.db = db
        self.path = path
        self.read_only = read_only  # opened for `status` and `history` by a user who may not write
        self._lock = threading.RLock()
        self._depth = 0  # transactions nested in the open one (the lock's owner's)
        self._closed = False

    def _rows(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        """Every read goes through here: a damaged file is one StateError, not a traceback."""
        with self._lock:
            self._require_open()
            try:
                return self.db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise state_error(self.path, exc, "read") from None

    @classmethod
    def open(cls, path: Path) -> Store:
        """Opens (or creates) the state file, brought to the latest schema. A file that this
        user may read but not write (or in a folder it may not write, where SQLite keeps
        the WAL's companions) is opened read-only, for `status` and `history`; any write
        then is a StateError saying so."""
        if not path.parent.is_dir():
            raise StateError(f"state file folder {path.parent} does not exist; create it or "
                             "point state_file elsewhere")
        if path.exists() and not _writable(path):
            return cls._open_read_only(path)
        try:
            # Threads share it under Store's lock (the sender's workers record a fallback).
            db = sqlite3.connect(path, isolation_level=None, timeout=10.0,
                                 check_same_thread=False)
            db.row_factory = sqlite3.Row
            _write_ahead_log(db)
            db.execute("PRAGMA synchronous=FULL")
            store = cls(db, path)
            store._migrate()
        except sqlite3.DatabaseError as exc:
            raise state_error(path, exc, "use") from None
        return store

    @classmethod
    def _open_read_only(cls, path: Path) -> Store:
        try:
            store = cls(_connect_read_only(path), path, read_only=True)
            version = store._version()
        except sqlite3.DatabaseError as exc:
            raise state_error(path, exc, "read") from None
        if version < LATEST:
            store.close()
            raise StateError(
                f"state file {path} has schema version {version} and this wpnotify needs "
                f"{LATEST}, but it is read-only for this user, so it cannot be upgraded; run "
                "any wpnotify command once as the user who may write it (the daemon's), or "
                "make it and its folder writable")
        return store

    def close(self) -> None:
        """Closes the file, after the transaction in progress (it holds the lock)."""
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

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back whole on any error, so nothing is ever
        half-written; SQLite's errors become a StateError that says what to do. Nested ones
        join the outer one: the sender records a whole batch of outcomes with one commit."""
        with self._lock:
            self._require_open()
            if self.read_only:
                raise self._read_only_error()
            if self._depth:
                self._depth += 1
                try:
                    yield self.db
                except sqlite3.DatabaseError as exc:
                    raise state_error(self.path, exc) from None
                finally:
                    self._depth -= 1
                return
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise state_error(self.path, exc) from None
            self._depth = 1
            try:
                yield self.db
                self.db.execute("COMMIT")
            except BaseException as exc:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError):
                    raise state_error(self.path, exc) from None
                raise
            finally:
                self._depth = 0

    def _version(self) -> int:
        """The schema version; refuses a file from a newer wpnotify."""
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > LATEST:
            raise StateError(
                f"state file {self.path} has schema version {version}, newer than this wpnotify "
                f"knows ({LATEST}); upgrade wpnotify, or use another state_file")
        return version

    def _migrate(self) -> None:
        """Applies the missing migrations, each in its own write transaction with its record.
        Another process may be migrating the same file at this moment (a `status` while a
        fresh daemon creates it): the version is read again once the write lock is held, so
        what that process did is not done twice, and this one goes on."""
        if self._version() == LATEST:
            return
        for number, name, sql in MIGRATIONS:
            with self.transaction() as db:
                if self._version() >= number:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO migrations VALUES (?, ?, ?)",
                           (number, name, iso(datetime.now(UTC))))
                db.execute(f"PRAGMA user_version = {number:d}")

    # --- sites ---------------------------------------------------------------------------

    def site(self, name: str) -> SiteState | None:
        """A site's reading position. A value that cannot be read (a damaged or hand-edited
        file) is a StateError naming the site, the column and how to start the site afresh:
        a poll must not guess where it stands."""
        found = self._rows("SELECT * FROM sites WHERE name = ?", (name,))
        if not found:
            return None
        row = found[0]
        for column in ("cursor", "deletions_seen"):
            if row[column] is not None and not _readable(row[column], _wp_time):
                raise self._bad_site(name, column, row[column], row["last_ok_at"])
        try:
            baseline = frozenset((int(i), str(m))
                                 for i, m in json.loads(row["baseline"] or "[]"))
        except (ValueError, TypeError):
            raise self._bad_site(name, "baseline", row["baseline"], row["last_ok_at"]) from None
        bridge = None if row["bridge"] is None else bool(row["bridge"])
        return SiteState(row["name"], row["cursor"], baseline, row["deletions_seen"],
                         row["last_poll_at"],
                         row["last_ok_at"], row["last_error"], bridge)

    def _bad_site(self, name: str, column: str, value: object, last_ok: str | None
                  ) -> StateError:
        since = (f"--since {last_ok[:10]}" if last_ok and _readable(last_ok, parse_iso)
                 else "--since DATE")
        reset = _sqlite(self.path, "UPDATE sites SET cursor = NULL, baseline = NULL, "
                        f"deletions_seen = NULL WHERE name = {_sql_text(name)}")
        return StateError(
            f"state file {self.path}: site {name}'s {column} cannot be read "
            f"({str(value)[:40]!r}); start that site afresh with: {reset} (its next poll "
            f"watches from then on; send what it missed with: wpnotify backfill --site {name} "
            f"{since})")

    def record_poll(self, name: str, now: datetime, *, cursor: str | None = None,
                    error: str | None = None, bridge: bool | None = None,
                    baseline: list[tuple[int, str]] | None = None,
                    deletions_seen: str | None = None) -> None:
        """Notes a poll's outcome; a value of None keeps the old one."""
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO sites (name) VALUES (?)", (name,))
            db.execute(
                """UPDATE sites SET last_poll_at = :now,
                       last_ok_at = CASE WHEN :error IS NULL THEN :now ELSE last_ok_at END,
                       last_error = :error, cursor = COALESCE(:cursor, cursor),
                       bridge = COALESCE(:bridge, bridge),
                       baseline = COALESCE(:baseline, baseline),
                       deletions_seen = COALESCE(:deletions, deletions_seen)
                   WHERE name = :name""",
                {"now": iso(now), "error": error, "cursor": cursor, "name": name,
                 "baseline": None if baseline is None else json.dumps(baseline),
                 "deletions": deletions_seen,
                 "bridge": None if bridge is None else int(bridge)})

    # --- scheduled posts -----------------------------------------------------------------

    def watch(self, site: str, post_id: int, publish_at: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO scheduled VALUES (?, ?, ?)",
                       (site, post_id, publish_at))

    def unwatch(self, site: str, post_ids: list[int]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM scheduled WHERE site = ? AND post_id = ?",
                           [(site, i) for i in post_ids])

    def scheduled_due(self, site: str, now: datetime) -> list[int]:
        rows = self._rows(
            "SELECT post_id FROM scheduled WHERE site = ? AND publish_at <= ? ORDER BY post_id",
            (site, iso(now)))
        return [row[0] for row in rows]

    # --- notifications -------------------------------------------------------------------

    def add(self, site: str, post_id: int, kind: str, target: str, source: str, now: datetime,
            *, payload: dict[str, Any] | None = None, status: str = "pending",
            error: str | None = None, error_code: str | None = None) -> bool:
        """Queues a notification unless one with the same key exists; True if it was new."""
        with self.transaction() as db:
            cur = db.execute(
                """INSERT OR IGNORE INTO notifications (site, post_id, kind, target, source,
                       status, payload, error, error_code, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (site, post_id, kind, target, source, status, json.dumps(payload or {}),
                 error, error_code, iso(now), iso(now)))
            return cur.rowcount == 1

    def get(self, notification_id: int) -> Notification | None:
        rows = self._rows("SELECT * FROM notifications WHERE id = ?", (notification_id,))
        return _notification(rows[0], self.path) if rows else None

    def targets(self, site: str, post_id: int, kind: str) -> set[str]:
        rows = self._rows(
            "SELECT target FROM notifications WHERE site = ? AND post_id = ? AND kind = ?",
            (site, post_id, kind))
        return {row[0] for row in rows}

    def kinds(self, keys: list[tuple[str, int, str]]) -> dict[tuple[str, int, str], set[str]]:
        """(site, post, target) -> the kinds that have a row for it; one query per site."""
        found: dict[tuple[str, int, str], set[str]] = {key: set() for key in keys}
        for site in {key[0] for key in keys}:
            posts = sorted({post for s, post, _ in keys if s == site})
            for row in self._rows(
                    f"SELECT post_id, target, kind FROM notifications WHERE site = ? AND "
                    f"post_id IN ({','.join('?' * len(posts))})", (site, *posts)):
                if (key := (site, row[0], row[1])) in found:
                    found[key].add(row[2])
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
        # Of given posts: found by post (notifications_post); "+status" keeps the planner off
        # the status indexes, which would read every pending row of the site. Otherwise
        # found by status (notifications_site_status, notifications_due): the queue, not the
        # history.
        status = "status"
        if posts is not None:
            where += f" AND post_id IN ({','.join('?' * len(posts))})"
            params += sorted(posts)
            status = "+status"
        rows = self._rows(
            f"""SELECT * FROM notifications
                WHERE {status} = 'pending'
                  AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
                  {where}
                ORDER BY COALESCE(next_attempt_at, created_at), id LIMIT ?""",
            (iso(now), *params, limit))
        return [_notification(row, self.path) for row in rows]

    def claim(self, notification_id: int, now: datetime) -> bool:
        """Marks a pending notification as being sent by this process, committed before any
        request goes out. False when another process claimed it first."""
        with self.transaction() as db:
            cur = db.execute(
                """UPDATE notifications SET status = 'sending', attempts = attempts + 1,
                       updated_at = ?, claimed_by = ? WHERE id = ? AND status = 'pending'""",
                (iso(now), this_process(), notification_id))
            return cur.rowcount == 1

    def release(self, notification_id: int) -> None:
        """Gives back a claim on which nothing was sent (the host was busy)."""
        with self.transaction() as db:
            db.execute("""UPDATE notifications SET status = 'pending', attempts = attempts - 1,
                              claimed_by = NULL WHERE id = ? AND status = 'sending'""",
                       (notification_id,))

    def finish(self, notification_id: int, status: str, now: datetime, *,
               endpoint: str | None = None, error: str | None = None,
               error_code: str | None = None, response: str | None = None,
               next_attempt_at: datetime | None = None) -> None:
        """Records how an attempt ended."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self.transaction() as db:
            db.execute(
                """UPDATE notifications SET status = ?, updated_at = ?,
                       endpoint = COALESCE(?, endpoint), error = ?, error_code = ?,
                       response = COALESCE(?, response),
                       sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END,
                       next_attempt_at = ?
                   WHERE id = ?""",
                (status, iso(now), endpoint, error, error_code, response, status, iso(now),
                 iso(next_attempt_at) if next_attempt_at else None, notification_id))

    def resend(self, notification_id: int, now: datetime, payload: dict[str, Any]) -> None:
        """Queues a sent notification again (a Webmention after its post changed)."""
        with self.transaction() as db:
            db.execute(
                """UPDATE notifications SET status = 'pending', attempts = 0, updated_at = ?,
                       next_attempt_at = NULL, error = NULL, error_code = NULL, payload = ?
                   WHERE id = ?""", (iso(now), json.dumps(payload), notification_id))

    def set_kind(self, notification_id: int, kind: str) -> bool:
        """Records that a notification went out as another kind (a Webmention row that fell
        back to Pingback); False when that kind already has a row for the same target."""
        try:
            with self.transaction() as db:
                db.execute("UPDATE notifications SET kind = ? WHERE id = ?",
                           (kind, notification_id))
        except StateError as exc:
            if "UNIQUE constraint" in str(exc):
                return False
            raise
        return True

    def settle(self, site: str, kind: str, target: str, now: datetime, response: str) -> int:
        """Marks every other pending notification of this (site, kind, target) as sent, with
        ``response`` saying why (one update-service ping covers them all)."""
        with self.transaction() as db:
            cur = db.execute(
                """UPDATE notifications SET status = 'sent', sent_at = ?, updated_at = ?,
                       response = ?, error = NULL, error_code = NULL, next_attempt_at = NULL
                   WHERE site = ? AND kind = ? AND target = ? AND status = 'pending'""",
                (iso(now), iso(now), response, site, kind, target))
            return cur.rowcount

    def defer(self, notification_id: int, now: datetime, until: datetime, reason: str,
              code: str) -> None:
        """Puts a pending notification off without trying it (its host just failed): no
        attempt is counted, and the history says why."""
        with self.transaction() as db:
            db.execute(
                """UPDATE notifications SET updated_at = ?, next_attempt_at = ?, error = ?,
                       error_code = ? WHERE id = ? AND status = 'pending'""",
                (iso(now), iso(until), reason, code, notification_id))

    def recover_interrupted(self, now: datetime, older_than: timedelta,
                            again: Callable[[int], datetime | None]) -> tuple[int, int]:
        """Puts back rows left ``sending`` by a process that died mid-request: once the
        claiming process is known dead (same host), else once the claim is older than
        ``older_than`` (no request lives that long). Returns (queued again, given up).

        The interrupted attempt counts (``claim`` counted it) and waits like any failed one,
        ``again(attempts)`` deciding when, or that the budget is spent (None: failed). A
        target that kills its sender is then not tried at once by every restart, forever,
        ahead of everything else. In doubt, wpnotify sends again: receivers deduplicate
        (pingback fault 48, WordPress's "already a ping from that URL"), and both count as
        sent. The history says what happened (error_code ``interrupted``).
        """
        with self.transaction() as db:
            rows = db.execute("SELECT id, claimed_by, updated_at, attempts FROM notifications "
                              "WHERE status = 'sending'").fetchall()
            stale = [(row[0], row[3]) for row in rows
                     if row[2] < iso(now - older_than) or process_dead(row[1])]
            plans = [(i, attempts, again(attempts)) for i, attempts in stale]
            db.executemany(
                """UPDATE notifications SET status = 'pending', next_attempt_at = ?, error = ?,
                       error_code = 'interrupted', updated_at = ?, claimed_by = NULL
                   WHERE id = ? AND status = 'sending'""",
                [(iso(when), f"attempt {attempts} was interrupted: the sending process died "
                  "or was killed while sending it; tried again later in case it was lost",
                  iso(now), i) for i, attempts, when in plans if when is not None])
            db.executemany(
                """UPDATE notifications SET status = 'failed', next_attempt_at = NULL,
                       error = ?, error_code = 'interrupted', updated_at = ?, claimed_by = NULL
                   WHERE id = ? AND status = 'sending'""",
                [(f"interrupted: the sending process died or was killed while sending it "
                  f"(attempt {attempts}, the last the retry schedule allows): a restart "
                  f"during the send, or a target that stops wpnotify; `wpnotify retry {i}` "
                  f"sends it again",
                  iso(now), i) for i, attempts, when in plans if when is None])
            failed = sum(when is None for _, _, when in plans)
            return len(plans) - failed, failed

    def history(self, *, site: str | None = None, post_id: int | None = None,
                kind: str | None = None, status: str | None = None,
                limit: int = 50) -> list[Notification]:
        """Notifications, newest first, optionally filtered."""
        clauses, params = [], []
        for column, value in (("site", site), ("post_id", post_id), ("kind", kind),
                              ("status", status)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._rows(
            f"SELECT * FROM notifications {where} ORDER BY created_at DESC, id DESC LIMIT ?",
            (*params, limit))
        return [_notification(row, self.path) for row in rows]

    def requeue(self, *, ids: list[int], site: str | None = None,
                since: datetime | None = None) -> int:
        """Failed notifications back to pending with a fresh retry budget; by ID, or all
        failed ones (of a site, since a time). Unknown or not-failed IDs are an error."""
        with self.transaction() as db:
            if ids:
                marks = ",".join("?" * len(ids))
                rows = db.execute(f"SELECT id, status FROM notifications WHERE id IN ({marks})",
                                  ids).fetchall()
                found = {row[0]: row[1] for row in rows}
                wrong = [f"{i} ({found.get(i, 'no such notification')})" for i in ids
                         if found.get(i) != "failed"]
                if wrong:
                    raise StateError(f"only failed notifications can be retried: "
                                     f"{', '.join(wrong)}")
                where, params = f"id IN ({marks})", list[Any](ids)
            else:
                where = "status = 'failed' AND (? IS NULL OR site = ?) AND (? IS NULL OR " \
                        "updated_at >= ?)"
                stamp = iso(since) if since else None
                params = list[Any]([site, site, stamp, stamp])
            cur = db.execute(
                f"""UPDATE notifications SET status = 'pending', attempts = 0,
                        next_attempt_at = NULL, updated_at = ?,
                        error = 'queued again by wpnotify retry; it failed with: '
                                || COALESCE(error, '')
                    WHERE {where}""", [iso(datetime.now(UTC)), *params])
            return cur.rowcount

    def counts(self, site: str) -> dict[str, int]:
        """How many notifications of a site are in each status (every status listed)."""
        rows = self._rows("SELECT status, COUNT(*) FROM notifications WHERE site = ? "
                          "GROUP BY status", (site,))
        return {**dict.fromkeys(STATUSES, 0), **{row[0]: row[1] for row in rows}}

    def next_retry(self, site: str) -> str | None:
        rows = self._rows("SELECT MIN(next_attempt_at) FROM notifications WHERE site = ? "
                          "AND status = 'pending'", (site,))
        return rows[0][0] if rows else None

    def _read_only_error(self) -> StateError:
        return StateError(f"cannot write state file {self.path}: the state file is read-only "
                          "for this user (it, or its folder, is not writable); make it and its "
                          "folder writable for the user running wpnotify, or run this as that "
                          "user")

    def require_writable(self) -> None:
        """Raises StateError when the file was opened read-only: for a command that will
        write, before it does anything else (reads a site, sends)."""
        if self.read_only:
            raise self._read_only_error()

    def check_writable(self) -> None:
        """Raises StateError unless a write transaction can be opened (and it is rolled back)."""
        self.require_writable()
        with self._lock:
            self._require_open()
            try:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute("CREATE TABLE IF NOT EXISTS write_check (x)")
                self.db.execute("ROLLBACK")
            except sqlite3.DatabaseError as exc:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise state_error(self.path, exc) from None

    # --- WordPress's pinged lists ----------------------------------------------------------

    def queue_pinged(self, site: str, post_id: int, urls: list[str], now: datetime) -> None:
        """Notes that WordPress should list these URLs as pinged for the post; call it in
        the transaction that records why (the outcome), so neither is kept without the
        other."""
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO pinged_outbox VALUES (?, ?, ?, ?)",
                           [(site, post_id, url, iso(now)) for url in urls])

    def pinged_waiting(self, site: str, limit: int) -> dict[int, list[str]]:
        """Up to ``limit`` URLs of a site still to be told to WordPress, by post (in the
        primary key's order: no sort, however long the backlog)."""
        waiting: dict[int, list[str]] = {}
        for row in self._rows("SELECT post_id, url FROM pinged_outbox WHERE site = ? "
                              "ORDER BY post_id, url LIMIT ?", (site, limit)):
            waiting.setdefault(row[0], []).append(row[1])
        return waiting

    def pinged_told(self, site: str, posts: dict[int, list[str]]) -> None:
        """WordPress confirmed these: they leave the outbox."""
        with self.transaction() as db:
            db.executemany("DELETE FROM pinged_outbox WHERE site = ? AND post_id = ? AND url = ?",
                           [(site, post, url) for post, urls in posts.items() for url in urls])

    # --- hosts ---------------------------------------------------------------------------

    def host(self, host: str) -> tuple[bool, str | None]:
        """(known to run WordPress, no request before this ISO time or None)."""
        return self.hosts({host}).get(host, (False, None))

    def hosts(self, hosts: set[str]) -> dict[str, tuple[bool, str | None]]:
        """host -> (known to run WordPress, not-before time or None), for those of ``hosts``
        the file knows (one query). A host is a host name[:port], or an update service's
        URL (paced on its own)."""
        marks = ",".join("?" * len(hosts))
        rows = self._rows(f"SELECT host, wordpress, not_before FROM hosts WHERE host IN "
                          f"({marks})", list(hosts)) if hosts else []
        for row in rows:
            if row[2] is not None and not _readable(row[2], parse_iso):
                fix = _sqlite(self.path, "UPDATE hosts SET not_before = NULL WHERE host = "
                              + _sql_text(row[0]))
                raise StateError(f"state file {self.path}: the hold on {row[0]} cannot be read "
                                 f"({str(row[2])[:40]!r}); remove it with: {fix}")
        return {row[0]: (bool(row[1]), row[2]) for row in rows}

    def set_host(self, host: str, *, wordpress: bool | None = None,
                 not_before: datetime | None = None) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO hosts (host) VALUES (?)", (host,))
            db.execute(
                """UPDATE hosts SET wordpress = COALESCE(?, wordpress),
                       not_before = COALESCE(?, not_before) WHERE host = ?""",
                (None if wordpress is None else int(wordpress),
                 iso(not_before) if not_before else None, host))


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sqlite(path: Path, sql: str) -> str:
    """A shell command that repairs the file by hand, for an error message to name."""
    quoted = f'"{sql}"' if not set(sql) & set('"$`\\!') else shlex.quote(sql)
    return f"sqlite3 {shlex.quote(str(path))} {quoted}"


def _wp_time(text: str) -> datetime:
    """Like wordpress.wp_time (the store may not import the source): a ``*_gmt`` value."""
    return datetime.fromisoformat(text)


def _readable(value: object, parse: Callable[[str], object]) -> bool:
    try:
        parse(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def _notification(row: sqlite3.Row, path: Path) -> Notification:
    """A row as a Notification; one the sender could not use (a damaged or hand-edited
    file) is a StateError naming the row and the fix, never a traceback later."""
    data = dict(row)
    try:
        data["payload"] = json.loads(data["payload"] or "{}")
        if not isinstance(data["payload"], dict):
            raise ValueError("not an object")
        if data["next_attempt_at"] is not None:
            parse_iso(data["next_attempt_at"])
    except (ValueError, TypeError) as exc:
        number = int(data["id"])
        fix = _sqlite(path, f"DELETE FROM notifications WHERE id = {number:d}")
        raise StateError(
            f"state file {path}: notification {number} cannot be read ({exc}); restore the "
            f"file from a backup, or delete that row with: {fix} (a backfill of its post "
            "plans it again)") from None
    return Notification(**data)
