"""The SQLite state: the backend contract (state_contract.py), and what only the file has:
schema versions and migrations, query plans and indexes, SQLite's errors by their codes."""

from __future__ import annotations

import re
import sqlite3
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from state_contract import *  # noqa: F403 (the contract's tests run here, against SQLite)
from state_contract import NOW

from wpnotify.errors import StateError
from wpnotify.state import Action, InboundPing, State, Status, Verdict, open_state
from wpnotify.state.migrations import LATEST, MIGRATIONS
from wpnotify.state.sqlite import SqliteState
from wpnotify.state.sqlite_files import state_error
from wpnotify.times import iso


class SqliteBackend:
    """One state file in a temporary folder; every ``open`` is another connection to it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.opened: list[SqliteState] = []

    def open(self) -> State:
        state = SqliteState.open(self.path)
        self.opened.append(state)
        return state

    def forge_claim(self, notification_id: int, token: str) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute("UPDATE notifications SET claimed_by = ? WHERE id = ?",
                       (token, notification_id))
        db.close()


@pytest.fixture()
def backend(tmp_path: Path) -> SqliteBackend:
    return SqliteBackend(tmp_path / "state.sqlite3")


@pytest.fixture()
def store(tmp_path: Path) -> SqliteState:
    return SqliteState.open(tmp_path / "state.sqlite3")


def test_the_factory_opens_the_sqlite_file(tmp_path: Path) -> None:
    state = open_state(tmp_path / "state.sqlite3")
    assert isinstance(state, SqliteState) and (tmp_path / "state.sqlite3").exists()


def test_a_new_file_gets_every_migration_recorded(store: SqliteState) -> None:
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == LATEST
    rows = store.db.execute("SELECT version, name FROM migrations").fetchall()
    assert [tuple(r) for r in rows] == [(1, "initial schema"), (2, "who claimed a notification"),
                                        (3, "deletions seen"),
                                        (4, "history of one post without its site"),
                                        (5, "a site's queue without its history"),
                                        (6, "WordPress's pinged lists still to be told"),
                                        (7, "notification statuses still to be told, and "
                                            "Send again requests taken"),
                                        (8, "workers sharing the state: leases, and sites "
                                            "kept in the state"),
                                        (9, "pings received and what was made of them")]


def test_the_status_enum_is_the_files_check_constraint(store: SqliteState) -> None:
    """Status and the file's CHECK list the same words, in the same order."""
    (sql,) = store.db.execute("SELECT sql FROM sqlite_master WHERE name = 'notifications'"
                              ).fetchone()
    found = re.search(r"CHECK \(status IN \(([^)]*)\)\)", sql)
    assert found is not None
    assert [word.strip(" '") for word in found.group(1).split(",")] == [s.value for s in Status]


def test_times_are_stored_as_sortable_text(store: SqliteState) -> None:
    """The file's text forms are unchanged: iso for the queue, WordPress's for cursors."""
    store.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    store.record_poll("s", NOW, cursor=NOW, baseline=[(4, NOW)], deletions_seen=NOW)
    assert store.db.execute("SELECT created_at FROM notifications").fetchone()[0] == (
        "2026-11-26T12:00:00.000000Z")
    row = store.db.execute("SELECT cursor, baseline, deletions_seen, last_poll_at FROM sites"
                           ).fetchone()
    assert tuple(row) == ("2026-11-26T12:00:00", '[[4, "2026-11-26T12:00:00"]]',
                          "2026-11-26T12:00:00", "2026-11-26T12:00:00.000000Z")


def test_history_of_one_post_reads_an_index_not_the_table(store: SqliteState) -> None:
    """`history --post ID` stays fast at a million rows (bench/run.py measures it)."""
    plan = " ".join(row[3] for row in store.db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM notifications WHERE post_id = ? "
        "ORDER BY created_at DESC, id DESC LIMIT 50", (7,)))
    assert "USING INDEX notifications_post_id" in plan and "SCAN notifications" not in plan


def plans_of(store: SqliteState, call: Callable[[], object]) -> list[str]:
    """The query plans of the SELECTs that ``call`` runs, as the state runs them."""
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    try:
        call()
    finally:
        store.db.set_trace_callback(None)
    return [" ".join(row[3] for row in store.db.execute("EXPLAIN QUERY PLAN " + sql))
            for sql in statements if sql.lstrip().upper().startswith("SELECT")]


def test_a_poll_reads_the_queue_not_the_history(store: SqliteState) -> None:
    """A site's history is most of the file: the queries of every poll and of `status` go
    through (site, status), not (site) or the table, so they stay fast as it grows."""
    for call in (lambda: store.due(NOW, ["a"]), lambda: store.next_retry("a"),
                 lambda: store.counts("a"), lambda: store.retries_due("a", NOW)):
        [plan] = plans_of(store, call)
        assert "INDEX notifications_site_status (site=?" in plan, plan
        assert "SCAN notifications" not in plan, plan
    [plan] = plans_of(store, lambda: store.due(NOW))  # every site: by status alone
    assert "INDEX notifications_due (status=?)" in plan, plan
    # A backfill's page: its posts, by post, not every pending row of the site.
    [plan] = plans_of(store, lambda: store.due(NOW, ["a"], {3, 4}))
    assert "INDEX notifications_post (site=? AND post_id=?)" in plan, plan


def test_an_older_file_is_migrated_in_place(tmp_path: Path) -> None:
    """A file written by the first schema keeps its rows and gains every later column."""
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:
        for statement in MIGRATIONS[0][2].split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute("INSERT INTO migrations VALUES (1, 'initial schema', '2026-01-01')")
        db.execute("INSERT INTO sites (name, cursor) VALUES ('s', '2026-01-01T00:00:00')")
        db.execute("""INSERT INTO notifications (site, post_id, kind, target, source, status,
                          created_at, updated_at) VALUES ('s', 1, 'pingback', 'https://t/',
                          'https://s/1', 'sent', '2026-01-01', '2026-01-01')""")
        db.execute("PRAGMA user_version = 1")
    store = SqliteState.open(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == LATEST
    (row,) = store.history()
    assert (row.target, row.status, row.claimed_by) == ("https://t/", Status.SENT, None)
    state = store.site("s")
    assert state is not None and state.cursor == datetime(2026, 1, 1, tzinfo=UTC)
    assert state.deletions_seen is None


def test_a_file_from_a_newer_wpnotify_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    SqliteState.open(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {LATEST + 1}")
    with pytest.raises(StateError, match="newer than this wpnotify"):
        SqliteState.open(path)


def test_a_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="cannot use state file"):
        SqliteState.open(path)


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="does not exist"):
        SqliteState.open(tmp_path / "nope" / "state.sqlite3")


def sqlite_failure(message: str, code: int) -> sqlite3.Error:
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code  # as SQLite's own errors carry it
    return exc


@pytest.mark.parametrize(("code", "fix"), [
    (sqlite3.SQLITE_BUSY, "holds a write lock"), (sqlite3.SQLITE_LOCKED, "holds a write lock"),
    (sqlite3.SQLITE_FULL, "disk is full"), (sqlite3.SQLITE_IOERR_WRITE, "disk is full"),
    (sqlite3.SQLITE_READONLY_DBMOVED, "make it and its folder writable"),
    (sqlite3.SQLITE_CANTOPEN, "make it and its folder writable"),
    (sqlite3.SQLITE_CORRUPT, "restore it from a backup")])
def test_errors_are_told_apart_by_their_code_not_their_text(code: int, fix: str) -> None:
    """The message text plays no part (here it says nothing); SQLite's reason is kept."""
    error = state_error(Path("/s.sqlite3"), sqlite_failure("something", code))
    assert str(error).startswith("cannot write state file /s.sqlite3: something; ")
    assert fix in str(error)


def test_an_error_of_pythons_module_is_a_damaged_file() -> None:
    error = state_error(Path("/s.sqlite3"), sqlite3.ProgrammingError("locked busy full"), "read")
    assert "restore it from a backup" in str(error)


def test_only_the_sqlite_modules_know_sqlite() -> None:
    """Callers see the protocols and records; the backend's connection stays inside it."""
    root = Path(__file__).parent.parent / "wpnotify"
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if re.search(r"^\s*(import sqlite3|from sqlite3)", p.read_text(), re.M))
    assert users and all(re.fullmatch(r"state/sqlite\w*\.py", name) for name in users), users


def test_a_late_claim_in_an_old_unit_counts_no_stale_time(store: SqliteState) -> None:
    """A claim written a moment ago is no stale claim: recovery compares stored times."""
    store.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    (row,) = store.due(NOW)
    store.claim(row.id, NOW)
    assert store.recover_interrupted(NOW + timedelta(minutes=9, seconds=59),
                                     timedelta(minutes=10), lambda n, b: NOW) == (0, 0)
    assert iso(store.get(row.id).updated_at) == iso(NOW)  # type: ignore[union-attr]  # exists


def test_a_verdict_and_an_action_are_the_files_check_constraints(store: SqliteState) -> None:
    """Verdict and Action list the words the inbound table's CHECKs allow, in order."""
    (sql,) = store.db.execute("SELECT sql FROM sqlite_master WHERE name = 'inbound'").fetchone()
    for column, enum in (("verdict", Verdict), ("action", Action)):
        found = re.search(rf"CHECK \({column} IN \(([^)]*)\)\)", sql)
        assert found is not None
        assert [w.strip(" '") for w in found.group(1).split(",")] == [m.value for m in enum]


def test_a_poll_reads_the_pings_waiting_not_the_sites_history(store: SqliteState) -> None:
    """inbound_due and inbound_unacted come in comment order from their own indexes (no
    scan of the site's pings, no sort); the listings stop at their limit."""
    for call, index in ((lambda: store.inbound_due("a", NOW),
                         "INDEX inbound_due (site=? AND verdict=?)"),
                        (lambda: store.inbound_unacted("a"),
                         "INDEX inbound_unacted (site=? AND action=?)"),
                        (lambda: store.inbound_list(site="a", verdict=Verdict.VERIFIED),
                         "INDEX inbound_site_seen (site=?)"),
                        (lambda: store.inbound_list(), "INDEX inbound_seen")):
        [plan] = plans_of(store, call)
        assert index in plan and "TEMP B-TREE" not in plan, plan


def test_a_version_8_file_gains_the_inbound_log(tmp_path: Path) -> None:
    """A file of the previous schema keeps its sites and notifications; its sites have
    never read a ping."""
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:
        for migration in MIGRATIONS[:8]:
            db.executescript(migration.sqlite)
            db.execute("INSERT INTO migrations VALUES (?, ?, '2026-01-01')",
                       (migration.version, migration.name))
        db.execute("INSERT INTO sites (name, cursor) VALUES ('s', '2026-01-01T00:00:00')")
        db.execute("PRAGMA user_version = 8")
    db.close()
    store = SqliteState.open(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert store.inbound_cursor("s") is None
    assert store.add_pings("s", [InboundPing("s", 3, 1, "pingback", "https://src/", "a", "",
                                             "c", NOW, NOW, "hold")], 3) == 1
    site = store.site("s")
    assert site is not None and site.cursor == datetime(2026, 1, 1, tzinfo=UTC)
    assert store.inbound_cursor("s") == 3


def test_an_unreadable_ping_names_a_repair_that_works(store: SqliteState) -> None:
    store.add_pings("s", [InboundPing("s", 3, 1, "pingback", "https://src/", "a", "", "c",
                                      NOW, NOW, "hold")], 3)
    store.db.execute("UPDATE inbound SET decided_at = 'whenever'")
    with pytest.raises(StateError) as caught:
        store.inbound_list()
    message = str(caught.value)
    assert message.startswith(f"state file {store.path}: the received ping 3 of site s "
                              "cannot be read"), message
    command = message.split("delete that row with: ", 1)[1].split(" (that ping")[0]
    subprocess.run(command, shell=True, check=True, capture_output=True)
    assert store.inbound_list() == []
