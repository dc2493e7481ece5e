"""The state file: schema versions, unique notifications, claim-before-send, history."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wpnotify.errors import StateError
from wpnotify.store import LATEST, Store, iso

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "state.sqlite3")


def test_a_new_file_gets_every_migration_recorded(store: Store) -> None:
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == LATEST
    rows = store.db.execute("SELECT version, name FROM migrations").fetchall()
    assert [tuple(r) for r in rows] == [(1, "initial schema"), (2, "who claimed a notification"),
                                        (3, "deletions seen"),
                                        (4, "history of one post without its site"),
                                        (5, "a site's queue without its history"),
                                        (6, "WordPress's pinged lists still to be told")]


def test_history_of_one_post_reads_an_index_not_the_table(store: Store) -> None:
    """`history --post ID` stays fast at a million rows (bench/run.py measures it)."""
    plan = " ".join(row[3] for row in store.db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM notifications WHERE post_id = ? "
        "ORDER BY created_at DESC, id DESC LIMIT 50", (7,)))
    assert "USING INDEX notifications_post_id" in plan and "SCAN notifications" not in plan


def plans_of(store: Store, call: Callable[[], object]) -> list[str]:
    """The query plans of the SELECTs that ``call`` runs, as the store runs them."""
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    try:
        call()
    finally:
        store.db.set_trace_callback(None)
    return [" ".join(row[3] for row in store.db.execute("EXPLAIN QUERY PLAN " + sql))
            for sql in statements if sql.lstrip().upper().startswith("SELECT")]


def test_a_poll_reads_the_queue_not_the_history(store: Store) -> None:
    """A site's history is most of the file: the queries of every poll and of `status` go
    through (site, status), not (site) or the table, so they stay fast as it grows."""
    for call in (lambda: store.due(NOW, ["a"]), lambda: store.next_retry("a"),
                 lambda: store.counts("a")):
        [plan] = plans_of(store, call)
        assert "INDEX notifications_site_status (site=?" in plan, plan
        assert "SCAN notifications" not in plan, plan
    [plan] = plans_of(store, lambda: store.due(NOW))  # every site: by status alone
    assert "INDEX notifications_due (status=?)" in plan, plan
    # A backfill's page: its posts, by post, not every pending row of the site.
    [plan] = plans_of(store, lambda: store.due(NOW, ["a"], {3, 4}))
    assert "INDEX notifications_post (site=? AND post_id=?)" in plan, plan


def test_due_is_filtered_and_limited_in_the_query(store: Store) -> None:
    for site in ("a", "b"):
        for post in range(1, 6):
            store.add(site, post, "pingback", f"https://t/{post}", "https://s/", NOW)
    assert {(n.site, n.post_id) for n in store.due(NOW, ["a"], {2, 3})} == {("a", 2), ("a", 3)}
    assert len(store.due(NOW, ["a", "b"], limit=4)) == 4
    assert store.due(NOW, ["a"], set()) == [] and store.due(NOW, []) == []


def test_threads_share_one_store(store: Store) -> None:
    """The sender's workers and its coordinating thread use one store at once."""
    from concurrent.futures import ThreadPoolExecutor

    def work(i: int) -> bool:
        store.add("s", i, "pingback", f"https://t/{i}", "https://s/", NOW)
        with store.transaction():  # nested transactions join the outer one
            claimed = store.claim(store.due(NOW, ["s"], {i})[0].id, NOW)
            store.finish(store.history(post_id=i)[0].id, "sent", NOW)
        return claimed

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(200)))
    assert store.counts("s")["sent"] == 200


def test_an_older_file_is_migrated_in_place(tmp_path: Path) -> None:
    """A file written by the first schema keeps its rows and gains every later column."""
    from wpnotify.store import MIGRATIONS

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
    store = Store.open(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == LATEST
    (row,) = store.history()
    assert (row.target, row.status, row.claimed_by) == ("https://t/", "sent", None)
    state = store.site("s")
    assert state is not None and state.cursor == "2026-01-01T00:00:00"
    assert state.deletions_seen is None


def test_a_file_from_a_newer_wpnotify_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    Store.open(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {LATEST + 1}")
    with pytest.raises(StateError, match="newer than this wpnotify"):
        Store.open(path)


def test_a_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="cannot use state file"):
        Store.open(path)


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="does not exist"):
        Store.open(tmp_path / "nope" / "state.sqlite3")


def test_one_notification_per_site_post_kind_and_target(store: Store) -> None:
    assert store.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    assert not store.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    assert store.add("s", 1, "trackback", "https://t/", "https://s/1", NOW)
    assert store.add("s", 2, "pingback", "https://t/", "https://s/2", NOW)
    assert store.add("other", 1, "pingback", "https://t/", "https://s/1", NOW)
    assert store.targets("s", 1, "pingback") == {"https://t/"}


def test_only_one_claim_wins(store: Store, tmp_path: Path) -> None:
    store.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    (row,) = store.due(NOW)
    rival = Store.open(tmp_path / "state.sqlite3")
    assert store.claim(row.id, NOW)
    assert not rival.claim(row.id, NOW)
    claimed = rival.get(row.id)
    assert claimed is not None and (claimed.status, claimed.attempts) == ("sending", 1)
    assert store.due(NOW) == []  # in flight, not due


def test_finish_records_the_outcome(store: Store) -> None:
    store.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    (row,) = store.due(NOW)
    store.claim(row.id, NOW)
    later = NOW + timedelta(minutes=1)
    store.finish(row.id, "sent", later, endpoint="https://t/xmlrpc.php", response="ok")
    done = store.get(row.id)
    assert done is not None
    assert (done.status, done.endpoint, done.response, done.sent_at) == (
        "sent", "https://t/xmlrpc.php", "ok", "2026-11-26T12:01:00.000000Z")


def test_pending_rows_wait_for_their_time(store: Store) -> None:
    store.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    (row,) = store.due(NOW)
    store.claim(row.id, NOW)
    store.finish(row.id, "pending", NOW, error="503", error_code="http-503",
                 next_attempt_at=NOW + timedelta(minutes=5))
    assert store.due(NOW + timedelta(minutes=4)) == []
    assert [r.id for r in store.due(NOW + timedelta(minutes=5))] == [row.id]


def in_a_minute(attempts: int) -> datetime:
    return NOW + timedelta(minutes=1)


def dead_process() -> str:
    """The claim token of a process of this host that has ended."""
    import subprocess

    from wpnotify.store import _process_token

    child = subprocess.Popen(["sleep", "30"])
    token = _process_token(child.pid)
    child.kill()
    child.wait()
    assert token is not None
    return token


def test_a_claim_by_a_dead_process_is_recovered_at_once(store: Store) -> None:
    import subprocess

    from wpnotify.store import _process_token, this_process

    store.add("s", 1, "pingback", "https://t/a", "https://s/1", NOW)
    store.add("s", 1, "pingback", "https://t/b", "https://s/1", NOW)
    mine, theirs = (r.id for r in store.due(NOW))
    store.claim(mine, NOW)
    store.claim(theirs, NOW)
    assert store.get(mine).claimed_by == this_process()
    child = subprocess.Popen(["sleep", "30"])
    token = _process_token(child.pid)
    child.kill()
    child.wait()
    assert token is not None
    store.db.execute("UPDATE notifications SET claimed_by = ? WHERE id = ?", (token, theirs))
    assert store.recover_interrupted(NOW, timedelta(minutes=10), in_a_minute) == (1, 0)
    assert store.get(theirs).status == "pending"
    assert store.get(theirs).next_attempt_at == iso(NOW + timedelta(minutes=1))  # backed off
    assert store.get(mine).status == "sending"  # this process is alive: its claim stands


def test_rows_left_in_flight_by_a_crash_are_sent_again(store: Store) -> None:
    store.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    (row,) = store.due(NOW)
    store.claim(row.id, NOW)
    assert store.recover_interrupted(NOW + timedelta(minutes=5), timedelta(minutes=10),
                                     in_a_minute) == (0, 0)
    assert store.recover_interrupted(NOW + timedelta(minutes=11), timedelta(minutes=10),
                                     in_a_minute) == (1, 0)
    again = store.get(row.id)
    assert again is not None
    assert (again.status, again.error_code, again.attempts) == ("pending", "interrupted", 1)


def test_history_filters_and_orders_newest_first(store: Store) -> None:
    for minute, (site, post, kind) in enumerate([("a", 1, "pingback"), ("a", 1, "trackback"),
                                                 ("a", 2, "pingback"), ("b", 1, "pingback")]):
        store.add(site, post, kind, f"https://t/{minute}", "https://s/", NOW +
                  timedelta(minutes=minute))
    assert [r.target for r in store.history()] == [f"https://t/{i}" for i in (3, 2, 1, 0)]
    assert [r.target for r in store.history(site="a", post_id=1)] == ["https://t/1",
                                                                      "https://t/0"]
    assert [r.target for r in store.history(kind="trackback")] == ["https://t/1"]
    assert [r.target for r in store.history(limit=1)] == ["https://t/3"]
    assert store.history(status="sent") == []


def test_site_state_keeps_cursor_baseline_and_bridge(store: Store) -> None:
    assert store.site("s") is None
    store.record_poll("s", NOW, cursor="2026-11-26T11:00:00", bridge=True,
                      baseline=[(4, "2026-11-26T11:00:00")])
    store.record_poll("s", NOW + timedelta(minutes=1), error="down")
    state = store.site("s")
    assert state is not None
    assert (state.cursor, state.bridge, state.last_error) == ("2026-11-26T11:00:00", True, "down")
    assert state.baseline == frozenset({(4, "2026-11-26T11:00:00")})
    assert state.last_ok_at == "2026-11-26T12:00:00.000000Z"


def test_retry_puts_failed_notifications_back_with_a_fresh_budget(store: Store) -> None:
    for target in ("https://t/1", "https://t/2"):
        store.add("s", 1, "pingback", target, "https://s/1", NOW, status="failed",
                  error="fault 0", error_code="fault-0")
    store.add("s", 1, "pingback", "https://t/3", "https://s/1", NOW)
    first, second, pending = sorted(r.id for r in store.history())
    with pytest.raises(StateError, match=f"{pending} \\(pending\\)"):
        store.requeue(ids=[first, pending])
    with pytest.raises(StateError, match="999 \\(no such notification\\)"):
        store.requeue(ids=[999])
    assert store.requeue(ids=[first]) == 1
    row = store.get(first)
    assert row is not None and (row.status, row.attempts) == ("pending", 0)
    assert "fault 0" in (row.error or "")
    assert store.requeue(ids=[], site="other") == 0
    assert store.requeue(ids=[], since=NOW + timedelta(days=3650)) == 0
    assert store.requeue(ids=[]) == 1 and store.get(second).status == "pending"


def test_a_notification_that_keeps_killing_its_sender_backs_off_then_fails(
        store: Store) -> None:
    """Each run that dies sending it counts an attempt; the next run does not retry it at
    once (other work goes first) but after the schedule's wait, and the last attempt's
    interruption fails it, saying what happened."""
    from wpnotify.errors import SendError
    from wpnotify.sending.decide import next_attempt

    delays = (60.0, 300.0, 1800.0)
    interrupted = SendError("x", code="interrupted", permanent=False)
    store.add("s", 1, "pingback", "https://hostile.example/", "https://s/1", NOW)
    (row,) = store.due(NOW)
    now, token = NOW, dead_process()
    for attempt in range(1, len(delays) + 2):
        assert [n.id for n in store.due(now)] == [row.id]
        assert store.claim(row.id, now)
        store.db.execute("UPDATE notifications SET claimed_by = ? WHERE id = ?", (token, row.id))

        def again(attempts: int, now: datetime = now) -> datetime | None:
            return next_attempt(interrupted, attempts, now, delays, jitter=lambda: 1.0)

        if attempt <= len(delays):
            assert store.recover_interrupted(now, timedelta(minutes=10), again) == (1, 0)
            left = store.get(row.id)
            assert (left.status, left.attempts, left.error_code) == ("pending", attempt,
                                                                     "interrupted")
            assert left.next_attempt_at == iso(now + timedelta(seconds=delays[attempt - 1]))
            assert store.due(now) == []  # not at once
            assert f"attempt {attempt} was interrupted" in (left.error or "")
            now += timedelta(seconds=delays[attempt - 1])
        else:
            assert store.recover_interrupted(now, timedelta(minutes=10), again) == (0, 1)
    done = store.get(row.id)
    assert (done.status, done.attempts, done.error_code) == ("failed", 4, "interrupted")
    assert "died or was killed while sending it" in (done.error or "")
    assert f"wpnotify retry {row.id}" in (done.error or "")
    assert store.due(now + timedelta(days=30)) == []


def test_a_late_write_after_close_says_what_happened(store: Store) -> None:
    """The daemon's shutdown grace ran out and the store was closed under a worker: its
    write says so, and not "restore it from a backup" (the file is fine)."""
    store.add("s", 1, "pingback", "https://t/", "https://s/1", NOW)
    (row,) = store.due(NOW)
    store.claim(row.id, NOW)
    store.close()
    for late in (lambda: store.finish(row.id, "sent", NOW), lambda: store.get(row.id)):
        with pytest.raises(StateError) as caught:
            late()
        assert "closed as wpnotify shut down" in str(caught.value)
        assert "tried again after its back-off" in str(caught.value)
        assert "backup" not in str(caught.value)
