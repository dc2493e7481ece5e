"""The PostgreSQL state: the backend contract (state_contract.py) on a real server, and what
only the database has: its migrations and their lock, SKIP LOCKED claims, a lost connection,
its errors without the URL's password, read-only servers.

Each module gets its own database (wpnotify_test_<pid>_<random>, dropped at the end), emptied
between tests (postgres_db.py). Without a server on 127.0.0.1:5432 these tests are skipped,
saying why; in CI (CI=true) they fail instead: CI must run them."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from postgres_db import admin, drop_database, make_database
from state_contract import *  # noqa: F403 (the contract's tests run here, against PostgreSQL)
from state_contract import NOW, kinds_by_target

from wpnotify.errors import StateError
from wpnotify.state import Action, Finished, InboundPing, State, Status, Verdict, open_state
from wpnotify.state.migrations import LATEST, MIGRATIONS
from wpnotify.state.postgres import PostgresState
from wpnotify.state.postgres_unit import placeholders

TABLES = ("notifications, sites, scheduled, hosts, pinged_outbox, status_outbox, workers, "
          "site_settings, inbound")

@pytest.fixture(scope="module")
def database(postgres: str) -> Iterator[str]:
    """One migrated database for the module's tests (its URL), emptied before each."""
    name = make_database()
    try:
        PostgresState.open(f"{postgres}/{name}").close()
        yield f"{postgres}/{name}"
    finally:
        drop_database(name)


class PostgresBackend:
    """The database of the module; every ``open`` is another connection to it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opened: list[PostgresState] = []

    def open(self) -> State:
        state = PostgresState.open(self.url)
        self.opened.append(state)
        return state

    def forge_claim(self, notification_id: int, token: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute("UPDATE notifications SET claimed_by = %s WHERE id = %s",
                       (token, notification_id))


@pytest.fixture()
def backend(database: str) -> Iterator[PostgresBackend]:
    with psycopg.connect(database, autocommit=True) as db:
        db.execute(f"TRUNCATE {TABLES} RESTART IDENTITY")
    made = PostgresBackend(database)
    yield made
    for state in made.opened:
        state.close()


@pytest.fixture()
def store(backend: PostgresBackend) -> PostgresState:
    state = backend.open()
    assert isinstance(state, PostgresState)
    return state


def test_the_factory_opens_the_database_for_a_url(backend: PostgresBackend) -> None:
    state = open_state(backend.url)
    try:
        assert isinstance(state, PostgresState)
    finally:
        state.close()


def test_placeholders_become_psycopgs() -> None:
    """``?`` and ``:name`` outside string literals; a literal ``%`` escaped; casts kept."""
    assert placeholders("SELECT ? WHERE a = :name AND b = '?:x' AND c::text LIKE 'a%'") == (
        "SELECT %s WHERE a = %(name)s AND b = '?:x' AND c::text LIKE 'a%%'")
    assert placeholders("x = 'it''s ?' OR y = ?") == "x = 'it''s ?' OR y = %s"


def test_a_new_database_gets_every_migration_recorded(fresh_database: str) -> None:
    state = PostgresState.open(fresh_database)
    state.close()
    with psycopg.connect(fresh_database) as db:
        found = db.execute("SELECT version, name FROM migrations ORDER BY version").fetchall()
        check = db.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE "
                           "conname = 'notifications_status_check'").fetchone()[0]
    assert found == [(m.version, m.name) for m in MIGRATIONS] and found[-1][0] == LATEST
    assert [s.value for s in Status] == [w for w in
                                         ("pending", "sending", "sent", "failed", "skipped")
                                         if f"'{w}'" in check]


def test_workers_starting_at_once_migrate_once(fresh_database: str) -> None:
    """Four processes' first commands at the same moment: one migrates, the others wait for
    it and find the schema done."""
    start = threading.Barrier(4)
    opened: list[PostgresState] = []
    errors: list[BaseException] = []

    def one() -> None:
        start.wait(5)
        try:
            opened.append(PostgresState.open(fresh_database))
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for state in opened:
        state.close()
    assert errors == [] and len(opened) == 4
    with psycopg.connect(fresh_database) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM migrations")]
    assert sorted(versions) == [m.version for m in MIGRATIONS]


def test_a_database_from_a_newer_wpnotify_is_refused(fresh_database: str) -> None:
    PostgresState.open(fresh_database).close()
    with psycopg.connect(fresh_database, autocommit=True) as db:
        db.execute("INSERT INTO migrations VALUES (%s, 'future', 'x')", (LATEST + 1,))
    with pytest.raises(StateError, match="newer than this wpnotify"):
        PostgresState.open(fresh_database)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(("where", "fix"), [
    ("127.0.0.1:{port}/wpnotify", "is PostgreSQL running"),
    ("127.0.0.1:5432/wpnotify_test_no_such_db", "create the database: createdb -h 127.0.0.1 "
                                                 "-p 5432 -U postgres wpnotify_test_no_such_db"),
    ("127.0.0.1:5432/postgres?user=wpnotify_test_no_such_role", "check the user name")])
def test_a_connection_refused_names_the_fix_never_the_password(postgres: str, where: str,
                                                               fix: str) -> None:
    url = f"postgresql://postgres:hunter2-secret@{where.format(port=free_port())}"
    for given in (url, url.replace(":hunter2-secret@", "@") + (
            "&" if "?" in url else "?") + "password=hunter2-secret"):
        with pytest.raises(StateError) as caught:
            PostgresState.open(given)
        message = str(caught.value)
        assert "hunter2" not in message and "\n" not in message, message
        assert "postgresql://postgres@127.0.0.1:" in message and fix in message, message
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("url", [
    "postgresql://postgres:hun%zzter2@127.0.0.1:5432/wpnotify",  # libpq quotes the token
    "postgresql://postgres@127.0.0.1:5432/wpnotify?password=hun%zzter2",
    "postgresql://postgres:hunter2@[::1/wpnotify",  # libpq quotes the whole URL
    "postgresql://postgres@127.0.0.1:5432/wpnotify?pass%77ord=hunter2&nosuch=1",
    "postgresql://postgres:hunter2@127.0.0.1:99999/wpnotify"])
def test_a_url_libpq_cannot_read_is_named_without_its_password(url: str) -> None:
    with pytest.raises(StateError) as caught:
        PostgresState.open(url)
    message = str(caught.value)
    assert "hunter2" not in message and "hun%zzter2" not in message, message
    assert "\n" not in message and "state_url cannot be read" in message, message
    assert "is PostgreSQL running" not in message, message  # not the fix for a typo


def test_the_url_is_shown_without_its_password(backend: PostgresBackend) -> None:
    state = PostgresState.open(backend.url.replace("postgres@", "postgres:hunter2@"))
    try:
        assert "hunter2" not in repr(state) + state.label + state.repair("SELECT 1")
        assert state.label == "state database " + backend.url
    finally:
        state.close()


def test_a_claim_skips_a_row_another_worker_holds(store: PostgresState,
                                                  backend: PostgresBackend) -> None:
    """A row locked by another worker's open transaction is skipped at once, not waited for
    (and not claimed): that worker is claiming it."""
    for target in ("a", "b", "c"):
        store.add("s", 1, "pingback", f"https://t/{target}", "https://s/1", NOW)
    a, b, c = (n.id for n in store.due(NOW))
    with psycopg.connect(backend.url) as rival:
        rival.execute("SELECT id FROM notifications WHERE id = %s FOR UPDATE", (b,))
        started = time.monotonic()
        assert store.claim_many([a, b, c], NOW, NOW + timedelta(seconds=30)) == {a, c}
        assert time.monotonic() - started < 2
        rival.rollback()
    assert store.claim_many([b], NOW, NOW + timedelta(seconds=30)) == {b}


def test_a_kind_another_process_takes_meanwhile_leaves_that_outcome_the_batch_kept(
        store: PostgresState, backend: PostgresBackend) -> None:
    """finish_many checks a fallback's kind is free in the statement; a row of it another
    process inserts between that check and the write (uncommitted when the batch ran) fails
    the batch's statement, which is written again once that row is committed: that
    outcome left unwritten, the others written, the caller's unit and its other writes
    kept."""
    for target in ("a", "b"):
        store.add("s", 1, "webmention", f"https://t/{target}", "https://s/1", NOW)
    a, b = (n.id for n in store.due(NOW))
    assert store.claim_many([a, b], NOW, NOW + timedelta(seconds=30)) == {a, b}
    with psycopg.connect(backend.url) as rival:
        rival.execute("INSERT INTO notifications (site, post_id, kind, target, source, "
                      "status, payload, created_at, updated_at) VALUES ('s', 1, 'pingback', "
                      "'https://t/a', 'https://s/1', 'pending', '{}', %s, %s)",
                      (NOW.isoformat(), NOW.isoformat()))
        committed = threading.Timer(0.5, rival.commit)
        committed.start()
        with store.atomic():
            store.add("s", 2, "pingback", "https://t/c", "https://s/2", NOW)
            assert store.finish_many([Finished(a, Status.SENT, kind="pingback"),
                                      Finished(b, Status.SENT, kind="pingback")], NOW) == {b}
        committed.join()
    assert kinds_by_target(store, "s", 1) == {"https://t/a": {"webmention", "pingback"},
                                              "https://t/b": {"pingback"}}
    assert [n.post_id for n in store.history(post_id=2)] == [2]
    assert store.get(a).status == Status.SENDING  # type: ignore[union-attr]  # it exists


def test_a_write_sent_with_the_commit_that_fails_keeps_nothing(store: PostgresState) -> None:
    """Writes nobody waits for go with the unit's COMMIT: one that fails there fails the
    unit, whole, as it would have failed when written."""
    with pytest.raises(StateError) as caught, store.atomic():
        store.add("s", 1, "pingback", "https://t/a", "https://s/1", NOW)
        store.queue_pinged_many([("s", 1, "https://t/a")], NOW)
        store._write_many("INSERT INTO no_such_table VALUES (?)", [(1,)])
    assert "no_such_table" in str(caught.value)
    assert store.history() == [] and store.pinged_waiting("s", 10) == {}


def test_a_unit_that_asks_nothing_sends_nothing(store: PostgresState,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Its BEGIN (and lock) wait for its first statement: none, nothing sent."""
    sent: list[object] = []
    monkeypatch.setattr(store.conn, "execute", lambda *a, **k: sent.append(a))
    monkeypatch.setattr(store.conn, "cursor", lambda *a, **k: sent.append(a))
    monkeypatch.setattr(store.conn, "pipeline", lambda *a, **k: sent.append(a))
    with store.claiming():
        pass
    with store.atomic():
        store.finish_many([], NOW)
    assert sent == []


def test_marks_are_taken_in_post_order_with_the_next_statement(
        store: PostgresState, monkeypatch: pytest.MonkeyPatch) -> None:
    """lock_marks marks each post once, lowest first, as the triggers would; sent with the
    unit's next statement."""
    sent: list[list[Any]] = []
    real = psycopg.Cursor.executemany

    def spy(cursor: Any, query: Any, params: Any, **kw: Any) -> Any:
        if "status_outbox" in str(query):
            sent.append(list(params))
        return real(cursor, query, params, **kw)
    monkeypatch.setattr(psycopg.Cursor, "executemany", spy)
    with store.atomic():
        store.lock_marks([("s", 7), ("s", 1), ("a", 9), ("s", 7)])
        assert sent == []  # not yet: with the next statement
        store.due(NOW)
    assert sent == [[("a", 9), ("s", 1), ("s", 7)]]
    assert sorted(post for post, _ in store.status_waiting("s", 10)) == [1, 7]


def backend_pid(state: PostgresState) -> int:
    return int(state.conn.info.backend_pid)


def test_a_connection_lost_between_units_is_opened_again(store: PostgresState) -> None:
    """The server ended the session (a restart): the next unit and the next read work."""
    store.add("s", 1, "pingback", "https://t/a", "https://s/1", NOW)
    for step in (lambda: store.add("s", 2, "pingback", "https://t/b", "https://s/2", NOW),
                 lambda: store.history()):
        with admin() as db:
            db.execute("SELECT pg_terminate_backend(%s)", (backend_pid(store),))
        step()
    assert {n.post_id for n in store.history()} == {1, 2}


def test_a_connection_lost_inside_a_unit_keeps_nothing(store: PostgresState) -> None:
    with pytest.raises(StateError) as caught, store.atomic():
        store.add("s", 1, "pingback", "https://t/a", "https://s/1", NOW)
        with admin() as db:
            db.execute("SELECT pg_terminate_backend(%s)", (backend_pid(store),))
        store.add("s", 2, "pingback", "https://t/b", "https://s/2", NOW)
    assert "connection to PostgreSQL was lost" in str(caught.value)
    assert "nothing of this unit of work was kept" in str(caught.value)
    assert store.history() == []


def test_a_nul_from_the_network_is_stored_not_refused(store: PostgresState) -> None:
    """PostgreSQL's text holds no NUL: a receiver's reply with one is kept with U+FFFD in
    its place (SQLite keeps it as it is), and the outcome is recorded."""
    store.add("s", 1, "pingback", "https://t/\0x", "https://s/1", NOW)
    (row,) = store.due(NOW)
    store.claim(row.id, NOW)
    store.finish(row.id, Status.FAILED, NOW, error="refused: a\0b", response="x\0y")
    done = store.get(row.id)
    assert done is not None and done.status == Status.FAILED
    assert (done.target, done.error, done.response) == ("https://t/\ufffdx", "refused: a\ufffdb",
                                                       "x\ufffdy")


def test_times_are_stored_as_the_files_sortable_text(store: PostgresState,
                                                     backend: PostgresBackend) -> None:
    store.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    store.record_poll("s", NOW, cursor=NOW, baseline=[(4, NOW)], deletions_seen=NOW)
    with psycopg.connect(backend.url) as db:
        assert db.execute("SELECT created_at FROM notifications").fetchone()[0] == (
            "2026-11-26T12:00:00.000000Z")
        assert db.execute("SELECT cursor, baseline, deletions_seen, last_poll_at FROM sites"
                          ).fetchone() == ("2026-11-26T12:00:00", '[[4, "2026-11-26T12:00:00"]]',
                                           "2026-11-26T12:00:00", "2026-11-26T12:00:00.000000Z")


def test_an_unreadable_value_names_a_psql_repair_that_works(store: PostgresState,
                                                            backend: PostgresBackend) -> None:
    store.record_poll("blog", NOW, cursor=NOW)
    with psycopg.connect(backend.url, autocommit=True) as db:
        db.execute("UPDATE sites SET cursor = 'garbage'")
    with pytest.raises(StateError) as caught:
        store.site("blog")
    message = str(caught.value)
    assert message.startswith(f"state database {backend.url}: site blog's cursor")
    command = message.split("start that site afresh with: ", 1)[1].split(" (its next poll")[0]
    assert command.startswith("psql ")
    subprocess.run(command, shell=True, check=True, capture_output=True)
    site = store.site("blog")
    assert site is not None and site.cursor is None


def test_a_read_only_server_is_told_apart(fresh_database: str) -> None:
    """Reads work (`status`, `history`); check says why writes cannot; a write is one line."""
    PostgresState.open(fresh_database).close()
    name = fresh_database.rsplit("/", 1)[1]
    with admin() as db:
        db.execute(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
    state = PostgresState.open(fresh_database)
    try:
        assert state.history() == []
        with pytest.raises(StateError, match="the server is read-only"):
            state.check_writable()
        with pytest.raises(StateError) as caught:
            state.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
        assert "point state_url at the primary" in str(caught.value)
    finally:
        state.close()


def test_a_permission_refused_names_the_fix_for_what_was_being_done(store: PostgresState
                                                                     ) -> None:
    refused = psycopg.errors.InsufficientPrivilege("permission denied for schema public")
    assert "GRANT SELECT, INSERT, UPDATE, DELETE" in str(store._error(refused))  # noqa: SLF001
    store._migrating = True  # noqa: SLF001 (as while the first command creates the tables)
    message = str(store._error(refused, "use"))  # noqa: SLF001
    assert message.startswith(f"cannot use state database {store.shown}: permission denied")
    assert "run it as the database's owner" in message and "GRANT CREATE ON SCHEMA" in message


def test_a_user_without_write_grants_is_refused_before_it_starts(store: PostgresState) -> None:
    store.conn.execute("BEGIN")
    try:
        role = f"wpnotify_test_{secrets.token_hex(4)}"
        store.conn.execute(f"CREATE ROLE {role} NOLOGIN")  # rolled back below
        store.conn.execute(f"SET LOCAL ROLE {role}")
        store._depth = 1  # noqa: SLF001 (reads inside this transaction, as that role)
        with pytest.raises(StateError) as caught:
            store.require_writable()
        assert "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public" in str(
            caught.value)
    finally:
        store._depth = 0  # noqa: SLF001
        store.conn.execute("ROLLBACK")


def wpnotify(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WPNOTIFY_")}
    return subprocess.run([sys.executable, "-m", "wpnotify", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


def test_the_commands_run_on_a_state_url(store: PostgresState, backend: PostgresBackend,
                                         tmp_path: Path) -> None:
    """history, status, retry, poll and check through the real CLI on the database; the
    URL's password is in none of their output. The site is on loopback port 9, where
    nothing listens: the poll fails and is recorded, and no request leaves the machine."""
    store.add("blog", 7, "pingback", "https://t.example/a", "http://127.0.0.1:9/p", NOW,
              status=Status.FAILED, error="fault 0", error_code="fault-0")
    config = tmp_path / "config.toml"
    config.write_text(f'state_url = "{backend.url.replace("postgres@", "postgres:hunter2@")}"\n'
                      '[http]\nallow_private_addresses = true\n[[sites]]\nname = "blog"\n'
                      'url = "http://127.0.0.1:9"\nusername = "u"\npassword = "pw"\n')
    shown = f"state database {backend.url}"
    runs = {args: wpnotify(config, *args.split()) for args in (
        "history --format json", "retry --all-failed", "poll", "status", "check")}
    assert all("hunter2" not in p.stdout + p.stderr for p in runs.values())
    assert "https://t.example/a" in runs["history --format json"].stdout
    assert runs["retry --all-failed"].returncode == 0
    assert store.history()[0].status == Status.PENDING
    assert runs["poll"].returncode == 1 and "Traceback" not in runs["poll"].stderr
    site = store.site("blog")
    assert site is not None and site.last_error and site.last_poll_at is not None
    assert runs["status"].returncode == 0 and "blog" in runs["status"].stdout
    assert f"ok: {shown}: writable" in runs["check"].stdout, runs["check"]
    assert not (tmp_path / "wpnotify.sqlite3").exists()  # no SQLite file on the side


def test_a_daemon_on_a_database_takes_no_file_lock(tmp_path: Path) -> None:
    """Several workers share one database: `run` locks a state file only."""
    from wpnotify.daemon import exclusive

    with exclusive("postgresql://u@h/db"), exclusive("postgresql://u@h/db"):
        pass
    assert list(tmp_path.iterdir()) == []
    with exclusive(tmp_path / "s.sqlite3"):
        assert (tmp_path / "s.sqlite3.lock").exists()


def test_only_the_postgres_modules_know_psycopg() -> None:
    """Callers see the protocols and records; the backend's connection stays inside it."""
    import re

    root = Path(__file__).parent.parent / "wpnotify"
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if re.search(r"^\s*(import psycopg|from psycopg)", p.read_text(), re.M))
    assert users == ["state/postgres.py", "state/postgres_unit.py"], users


def test_the_servers_clock_is_read_as_an_aware_utc_time(store: PostgresState) -> None:
    from datetime import UTC, datetime

    server = store.server_time()
    assert server is not None and server.tzinfo is UTC
    assert abs(server - datetime.now(UTC)) < timedelta(seconds=2)  # the same machine here


def test_the_connection_notices_a_vanished_server(backend: PostgresBackend) -> None:
    """TCP keepalives (about 30 s to notice a server gone without a word), unless the URL
    sets its own; so does its connect_timeout."""
    store = PostgresState.open(backend.url)
    params = store.conn.info.get_parameters()
    assert (params["keepalives"], params["keepalives_idle"]) == ("1", "15")
    assert params["connect_timeout"] == "10"
    store.close()
    own = PostgresState.open(backend.url + "?keepalives_idle=60&connect_timeout=3")
    params = own.conn.info.get_parameters()
    assert (params["keepalives_idle"], params["connect_timeout"]) == ("60", "3")
    own.close()


def test_a_version_8_database_gains_the_inbound_log(fresh_database: str) -> None:
    """A database of the previous schema keeps its sites; they have never read a ping. The
    CHECKs on verdict and action allow Verdict's and Action's words, and no other."""
    with psycopg.connect(fresh_database, autocommit=True) as db:
        for migration in MIGRATIONS[:8]:
            db.execute(migration.postgres)
            db.execute("INSERT INTO migrations VALUES (%s, %s, '2026-01-01')",
                       (migration.version, migration.name))
        db.execute("INSERT INTO sites (name, cursor) VALUES ('s', '2026-01-01T00:00:00')")
    state = PostgresState.open(fresh_database)
    try:
        assert state.inbound_cursor("s") is None
        assert state.add_pings("s", [InboundPing("s", 3, 1, "pingback", "https://src/", "a",
                                                 "", "c", NOW, NOW, "hold")], 2**40) == 1
        assert state.inbound_cursor("s") == 2**40
        site = state.site("s")
        assert site is not None and site.cursor is not None
        with pytest.raises(StateError, match="check constraint"):
            state._write("UPDATE inbound SET verdict = 'maybe'")  # noqa: SLF001 (no API does)
        for verdict in Verdict:
            state.record_verdict("s", 3, verdict=verdict, code=None, reason=None, attempts=1,
                                 next_attempt_at=None, now=NOW)
        for action in Action:
            state.record_action("s", 3, action, None, NOW)
    finally:
        state.close()
    with psycopg.connect(fresh_database) as db:
        versions = [row[0] for row in db.execute("SELECT version FROM migrations "
                                                 "ORDER BY version")]
    assert versions == list(range(1, LATEST + 1))


def test_a_unit_sent_with_its_commit_is_not_sent_again_after_a_lost_connection(
        store: PostgresState, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what cannot have been done is sent again (``_once_more``): a COMMIT whose
    answer was lost may have been done; running the unit again writes it twice."""
    import contextlib
    store._write("CREATE TABLE IF NOT EXISTS review_tally (n INT)")
    store._write("TRUNCATE review_tally")
    real = type(store.conn).pipeline
    lost: list[bool] = []

    @contextlib.contextmanager
    def answer_lost(conn: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with real(conn, *args, **kwargs) as pipeline:
            yield pipeline
        if not lost:  # the server ran it all, COMMIT included; its answer never came
            lost.append(True)
            conn.close()
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(type(store.conn), "pipeline", answer_lost)
    with contextlib.suppress(StateError), store.atomic():
        store._write_many("INSERT INTO review_tally VALUES (?)", [(1,)])
    monkeypatch.setattr(type(store.conn), "pipeline", real)
    try:
        assert store._rows("SELECT count(*) FROM review_tally")[0][0] == 1
    finally:
        store._write("DROP TABLE review_tally")


def test_a_deferred_writes_error_is_reported_as_itself_not_as_a_refused_kind(
        store: PostgresState) -> None:
    """A write sent later than it was made must still fail as itself: finish_many's
    savepoint fallback (a fallback's kind refused by the unique key) must not swallow
    another statement's duplicate key, nor record the outcome in a unit that failed."""
    store.add("s", 1, "webmention", "https://t/a", "https://s/1", NOW)
    (n,) = store.due(NOW)
    assert store.claim_many([n.id], NOW, NOW + timedelta(seconds=30)) == {n.id}
    with pytest.raises(StateError) as caught, store.atomic():
        store._write_many("INSERT INTO status_outbox (seq, site, post_id) VALUES (?, ?, ?)",
                          [(999, "s", 1), (999, "s", 2)])
        store.finish_many([Finished(n.id, Status.SENT, kind="pingback")], NOW)
    assert "duplicate key" in str(caught.value) and "status_outbox" in str(caught.value)
    kept = store.get(n.id)
    assert kept is not None and (kept.status, kept.kind) == (Status.SENDING, "webmention")


def test_a_claim_view_whose_connection_was_lost_is_read_again_whole(
        store: PostgresState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A claiming unit's first send carries its BEGIN: when the connection is lost during
    it (the server went away before answering), it is sent again whole on a new one
    (``_send``'s ``_once_more``); the rows must be the new connection's, one list per
    query, not the first try's cursors."""
    import contextlib
    store.add("s", 1, "pingback", "https://t.example/a", "https://s/1", NOW)
    (n,) = store.due(NOW)
    assert store.claim(n.id, NOW)
    store.set_host("t.example", wordpress=True)
    real = type(store.conn).pipeline
    lost: list[bool] = []

    @contextlib.contextmanager
    def answer_lost(conn: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        if lost:
            with real(conn, *args, **kwargs) as pipeline:
                yield pipeline
            return
        lost.append(True)  # the statements are queued, then the connection is gone
        with contextlib.suppress(psycopg.Error), real(conn, *args, **kwargs) as pipeline:
            yield pipeline
            conn.close()
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(type(store.conn), "pipeline", answer_lost)
    with store.claiming():
        hosts, flying = store.claim_view({"t.example"}, NOW)
    monkeypatch.setattr(type(store.conn), "pipeline", real)
    assert lost
    assert hosts["t.example"].wordpress
    assert [target for target, _ in flying] == ["https://t.example/a"]
