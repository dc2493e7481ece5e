"""The state file's schema versions. Each migration is applied in its own write unit with its
record, and the version is read again inside it: another process may be migrating the same
file at this moment (a `status` while a fresh daemon creates it)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from wpnotify.times import iso

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
    (7, "notification statuses still to be told, and Send again requests taken", """
        -- A post whose notifications changed since WordPress was last told their statuses.
        -- Every change to a notification marks its post (the triggers: no caller can forget),
        -- replacing its mark with a new one: ``seq`` is a change number, never reused
        -- (AUTOINCREMENT), so a push removes a mark only if the post did not change again
        -- while it was in flight (no lost update), and the newest changes go first. Kept
        -- short: the whole schema fits the file's first page.
        CREATE TABLE status_outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            site TEXT NOT NULL, post_id INTEGER NOT NULL,
            UNIQUE (site, post_id));
        CREATE INDEX status_outbox_site ON status_outbox (site);
        CREATE TRIGGER status_on_insert AFTER INSERT ON notifications BEGIN
            REPLACE INTO status_outbox (site, post_id) VALUES (NEW.site, NEW.post_id); END;
        CREATE TRIGGER status_on_update AFTER UPDATE ON notifications BEGIN
            REPLACE INTO status_outbox (site, post_id) VALUES (NEW.site, NEW.post_id); END;
        -- The posts notified before: their statuses are told too, after newer changes.
        INSERT INTO status_outbox (site, post_id)
            SELECT DISTINCT site, post_id FROM notifications ORDER BY site, post_id;
        ALTER TABLE sites ADD COLUMN resend_seen INTEGER;  -- newest Send again request taken
    """),
    (8, "workers sharing the state: leases, and sites kept in the state", """
        -- A worker's claim runs until lease_until, renewed by its heartbeat; once past,
        -- another worker takes the notification over. NULL: claimed by an older wpnotify.
        ALTER TABLE notifications ADD COLUMN lease_until TEXT;
        -- Which worker polls a site, until when (renewed likewise).
        ALTER TABLE sites ADD COLUMN lease_holder TEXT;
        ALTER TABLE sites ADD COLUMN lease_until TEXT;
        -- Workers by their claim token (host:pid:start); seen_at: the latest heartbeat.
        -- No comment inside a CREATE: SQLite keeps its text, and the schema stays within
        -- the file's first page.
        CREATE TABLE workers (id TEXT PRIMARY KEY, started_at TEXT NOT NULL,
            seen_at TEXT NOT NULL);
        -- Sites added by `wpnotify sites add` (config: JSON, never a password), and the
        -- disabled flag of any site (config NULL for one from the configuration file).
        CREATE TABLE site_settings (name TEXT PRIMARY KEY, config TEXT,
            disabled INTEGER NOT NULL DEFAULT 0, added_at TEXT NOT NULL,
            updated_at TEXT NOT NULL);
        -- A lease's renewal marks its post for WordPress like any change to its row (the
        -- triggers of migration 7): a post being sent is told again at its cycle's end.
    """),
)
LATEST = MIGRATIONS[-1][0]


def migrate(version: Callable[[], int], atomic: Callable[[], AbstractContextManager[None]],
            execute: Callable[[str, tuple[object, ...]], object],
            statements: Callable[[str], list[str]]) -> None:
    """Applies the missing migrations: ``version`` reads the file's schema version (and
    refuses a newer one), ``atomic`` opens a write unit, ``execute`` runs one statement,
    ``statements`` splits a migration into them (the backend's parser knows where a trigger
    ends)."""
    if version() == LATEST:
        return
    for number, name, sql in MIGRATIONS:
        with atomic():
            if version() >= number:
                continue  # done by another process while this one waited for the lock
            for statement in statements(sql):
                execute(statement, ())
            execute("INSERT INTO migrations VALUES (?, ?, ?)",
                    (number, name, iso(datetime.now(UTC))))
            execute(f"PRAGMA user_version = {number:d}", ())
