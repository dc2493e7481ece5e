"""The state's schema versions, one history for both backends: each version has its name,
its SQLite SQL and its PostgreSQL SQL. Each migration is applied in its own write unit with its
record, and the version is read again inside it: another process may be migrating the same
state at this moment (a `status` while a fresh daemon creates it).

The PostgreSQL schema stores what the SQLite file stores, in the same forms, so that the SQL
both backends share (``sql_*.py``) and the records read the same values: times are TEXT in
the state's sortable ISO form (``times.iso``; WordPress's own form for a site's cursors), not
``timestamptz``, since the shared SQL compares and orders them as text and the records parse
that text; statuses are TEXT under the same CHECK; payloads are JSON TEXT; flags are INTEGER
0/1; ids are BIGINT identities and post IDs BIGINT (SQLite's INTEGER is 64-bit)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import NamedTuple

from wpnotify.times import iso


class Migration(NamedTuple):
    """One schema version: ``sqlite`` and ``postgres`` make the same tables and columns."""

    version: int
    name: str
    sqlite: str
    postgres: str


# SQLite's (version, name, SQL). Append only: a released migration is never edited.
_SQLITE: tuple[tuple[int, str, str], ...] = (
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
        -- Workers by their claim token (host:pid:start); seen_at: the latest heartbeat;
        -- daemon: a `wpnotify run`, which takes its share of the sites' polls (a backfill
        -- or a poll beside it is a worker too while it sends, but takes no share).
        -- No comment inside a CREATE: SQLite keeps its text, and the schema stays within
        -- the file's first page.
        CREATE TABLE workers (id TEXT PRIMARY KEY, started_at TEXT NOT NULL,
            seen_at TEXT NOT NULL, daemon INTEGER NOT NULL DEFAULT 0);
        -- Sites added by `wpnotify sites add` (config: JSON, never a password), and the
        -- disabled flag of any site (config NULL for one from the configuration file).
        CREATE TABLE site_settings (name TEXT PRIMARY KEY, config TEXT,
            disabled INTEGER NOT NULL DEFAULT 0, added_at TEXT NOT NULL,
            updated_at TEXT NOT NULL);
        -- Every change to a row marks its post, but a lease's renewal (the heartbeat of a
        -- worker, every few seconds for every row it sends) does not: only an update that
        -- sets one of these columns fires the trigger.
        DROP TRIGGER status_on_update;
        CREATE TRIGGER status_on_update AFTER UPDATE OF site, post_id, kind, target, source,
            status, attempts, endpoint, error, error_code, response, payload, created_at,
            updated_at, sent_at, next_attempt_at, claimed_by ON notifications BEGIN
            REPLACE INTO status_outbox (site, post_id) VALUES (NEW.site, NEW.post_id); END;
    """),
    (9, "pings received and what was made of them", """
        -- A trackback or pingback comment of a site, as first read (its text capped on
        -- insert), its verdict and what was done to it in WordPress: see
        -- records.InboundPing. No comment inside the CREATE (see migration 8).
        CREATE TABLE inbound (site TEXT NOT NULL, comment_id INTEGER NOT NULL,
            post_id INTEGER NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL,
            author TEXT NOT NULL, author_ip TEXT NOT NULL, content TEXT NOT NULL,
            received_at TEXT NOT NULL, seen_at TEXT NOT NULL, status_seen TEXT NOT NULL,
            verdict TEXT NOT NULL DEFAULT 'pending'
                CHECK (verdict IN ('pending', 'verified', 'unverified', 'skipped')),
            code TEXT, reason TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT,
            action TEXT NOT NULL DEFAULT 'none'
                CHECK (action IN ('none', 'spam', 'approved', 'held', 'left')),
            status_after TEXT, decided_at TEXT, acted_at TEXT,
            PRIMARY KEY (site, comment_id));
        -- inbound_due: a site's pending pings in comment order (few: next_attempt_at is
        -- checked row by row). inbound_unacted: its pings not acted on, in comment order (a
        -- site in "report" mode keeps all of them so; read in "moderate" only).
        -- inbound_seen, inbound_site_seen: `wpnotify inbound`, newest first.
        CREATE INDEX inbound_due ON inbound (site, verdict, comment_id);
        CREATE INDEX inbound_unacted ON inbound (site, action, comment_id);
        CREATE INDEX inbound_seen ON inbound (seen_at, comment_id);
        CREATE INDEX inbound_site_seen ON inbound (site, seen_at, comment_id);
        -- The highest comment ID read (NULL: never read; the first read takes what is held).
        ALTER TABLE sites ADD COLUMN inbound_cursor INTEGER;
    """),
)
# PostgreSQL's SQL of the same versions (see the module's docstring for the types). Every
# text column compares byte by byte (COLLATE "C"), as SQLite's do, whatever the database's
# locale: times and keys order as in the file. Each migration runs as one multi-statement
# query (a function's body holds semicolons).
_POSTGRES: dict[int, str] = {
    1: """
        CREATE TABLE migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
        CREATE TABLE sites (
            name TEXT COLLATE "C" PRIMARY KEY,
            cursor TEXT COLLATE "C",        -- newest modified_gmt seen (UTC, ISO 8601)
            baseline TEXT,                  -- JSON [[id, modified_gmt]]
            last_poll_at TEXT COLLATE "C", last_ok_at TEXT COLLATE "C", last_error TEXT,
            bridge INTEGER);                -- 1 present, 0 absent, NULL not known yet
        CREATE TABLE scheduled (
            site TEXT COLLATE "C" NOT NULL, post_id BIGINT NOT NULL,
            publish_at TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (site, post_id));
        CREATE TABLE notifications (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            site TEXT COLLATE "C" NOT NULL, post_id BIGINT NOT NULL,
            kind TEXT COLLATE "C" NOT NULL, target TEXT COLLATE "C" NOT NULL,
            source TEXT NOT NULL,
            status TEXT COLLATE "C" NOT NULL
                CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
            attempts INTEGER NOT NULL DEFAULT 0,
            endpoint TEXT, error TEXT, error_code TEXT, response TEXT,
            payload TEXT,                   -- JSON, as in the file
            created_at TEXT COLLATE "C" NOT NULL, updated_at TEXT COLLATE "C" NOT NULL,
            sent_at TEXT COLLATE "C", next_attempt_at TEXT COLLATE "C",
            UNIQUE (site, post_id, kind, target));
        CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
        CREATE INDEX notifications_post ON notifications (site, post_id);
        CREATE INDEX notifications_created ON notifications (created_at);
        CREATE TABLE hosts (
            host TEXT COLLATE "C" PRIMARY KEY,
            wordpress INTEGER NOT NULL DEFAULT 0,
            not_before TEXT COLLATE "C");
    """,
    2: "ALTER TABLE notifications ADD COLUMN claimed_by TEXT COLLATE \"C\";",
    3: "ALTER TABLE sites ADD COLUMN deletions_seen TEXT COLLATE \"C\";",
    4: "CREATE INDEX notifications_post_id ON notifications (post_id, created_at);",
    5: """CREATE INDEX notifications_site_status
              ON notifications (site, status, next_attempt_at);""",
    6: """
        CREATE TABLE pinged_outbox (
            site TEXT COLLATE "C" NOT NULL, post_id BIGINT NOT NULL,
            url TEXT COLLATE "C" NOT NULL, queued_at TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (site, post_id, url));
    """,
    7: """
        -- As in the file: every change to a notification replaces its post's mark with one
        -- of a fresh change number (the sequence; never reused).
        CREATE SEQUENCE status_outbox_seq;
        CREATE TABLE status_outbox (
            seq BIGINT PRIMARY KEY DEFAULT nextval('status_outbox_seq'),
            site TEXT COLLATE "C" NOT NULL, post_id BIGINT NOT NULL,
            UNIQUE (site, post_id));
        ALTER SEQUENCE status_outbox_seq OWNED BY status_outbox.seq;
        CREATE INDEX status_outbox_site ON status_outbox (site);
        CREATE FUNCTION status_mark() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO status_outbox (site, post_id) VALUES (NEW.site, NEW.post_id)
                ON CONFLICT (site, post_id) DO UPDATE SET seq = nextval('status_outbox_seq');
            RETURN NULL;
        END $$;
        CREATE TRIGGER status_on_insert AFTER INSERT ON notifications
            FOR EACH ROW EXECUTE FUNCTION status_mark();
        CREATE TRIGGER status_on_update AFTER UPDATE ON notifications
            FOR EACH ROW EXECUTE FUNCTION status_mark();
        INSERT INTO status_outbox (site, post_id)
            SELECT DISTINCT site, post_id FROM notifications ORDER BY site, post_id;
        ALTER TABLE sites ADD COLUMN resend_seen BIGINT;
    """,
    8: """
        ALTER TABLE notifications ADD COLUMN lease_until TEXT COLLATE "C";
        ALTER TABLE sites ADD COLUMN lease_holder TEXT COLLATE "C";
        ALTER TABLE sites ADD COLUMN lease_until TEXT COLLATE "C";
        CREATE TABLE workers (id TEXT COLLATE "C" PRIMARY KEY,
            started_at TEXT COLLATE "C" NOT NULL, seen_at TEXT COLLATE "C" NOT NULL,
            daemon INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE site_settings (name TEXT COLLATE "C" PRIMARY KEY, config TEXT,
            disabled INTEGER NOT NULL DEFAULT 0, added_at TEXT COLLATE "C" NOT NULL,
            updated_at TEXT COLLATE "C" NOT NULL);
        -- Every change to a row marks its post, but a lease's renewal (the heartbeat of a
        -- worker, every few seconds for every row it sends) does not: only an update that
        -- sets one of these columns fires the trigger.
        DROP TRIGGER status_on_update ON notifications;
        CREATE TRIGGER status_on_update AFTER UPDATE OF site, post_id, kind, target, source,
                status, attempts, endpoint, error, error_code, response, payload, created_at,
                updated_at, sent_at, next_attempt_at, claimed_by ON notifications
            FOR EACH ROW EXECUTE FUNCTION status_mark();
    """,
    9: """
        CREATE TABLE inbound (site TEXT COLLATE "C" NOT NULL, comment_id BIGINT NOT NULL,
            post_id BIGINT NOT NULL, kind TEXT COLLATE "C" NOT NULL,
            source TEXT COLLATE "C" NOT NULL, author TEXT NOT NULL,
            author_ip TEXT COLLATE "C" NOT NULL, content TEXT NOT NULL,
            received_at TEXT COLLATE "C" NOT NULL, seen_at TEXT COLLATE "C" NOT NULL,
            status_seen TEXT COLLATE "C" NOT NULL,
            verdict TEXT COLLATE "C" NOT NULL DEFAULT 'pending'
                CHECK (verdict IN ('pending', 'verified', 'unverified', 'skipped')),
            code TEXT COLLATE "C", reason TEXT, attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT COLLATE "C",
            action TEXT COLLATE "C" NOT NULL DEFAULT 'none'
                CHECK (action IN ('none', 'spam', 'approved', 'held', 'left')),
            status_after TEXT COLLATE "C", decided_at TEXT COLLATE "C",
            acted_at TEXT COLLATE "C",
            PRIMARY KEY (site, comment_id));
        CREATE INDEX inbound_due ON inbound (site, verdict, comment_id);
        CREATE INDEX inbound_unacted ON inbound (site, action, comment_id);
        CREATE INDEX inbound_seen ON inbound (seen_at, comment_id);
        CREATE INDEX inbound_site_seen ON inbound (site, seen_at, comment_id);
        ALTER TABLE sites ADD COLUMN inbound_cursor BIGINT;
    """,
}
MIGRATIONS: tuple[Migration, ...] = tuple(
    Migration(number, name, sql, _POSTGRES[number]) for number, name, sql in _SQLITE)
LATEST = MIGRATIONS[-1].version
# The key of the advisory lock a PostgreSQL migration holds (any fixed number: "wpnm").
MIGRATION_LOCK = 0x77706E6D


def migrate(version: Callable[[], int], atomic: Callable[[], AbstractContextManager[None]],
            execute: Callable[[str, tuple[object, ...]], object],
            statements: Callable[[str], list[str]], *, postgres: bool = False) -> None:
    """Applies the missing migrations: ``version`` reads the schema version (and refuses a
    newer one), ``atomic`` opens a write unit, ``execute`` runs one statement, ``statements``
    splits a migration into them (the backend's parser knows where a trigger ends). On
    PostgreSQL each unit first takes an advisory lock, which SQLite's write lock is already:
    of two workers starting at once, the second waits, then finds the version done."""
    if version() == LATEST:
        return
    for migration in MIGRATIONS:
        with atomic():
            if postgres:
                execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            if version() >= migration.version:
                continue  # done by another process while this one waited for the lock
            sql = migration.postgres if postgres else migration.sqlite
            for statement in statements(sql):
                execute(statement, ())
            execute("INSERT INTO migrations VALUES (?, ?, ?)",
                    (migration.version, migration.name, iso(datetime.now(UTC))))
            if not postgres:
                execute(f"PRAGMA user_version = {migration.version:d}", ())
