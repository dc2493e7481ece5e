"""State file trouble through the real command: corrupt, newer, locked, read-only, full disk.
Each gives one line naming the problem and the fix, a non-zero exit, and nothing half-written."""

from __future__ import annotations

import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wpnotify.state.migrations import LATEST
from wpnotify.state.sqlite import SqliteState
from wpnotify.times import wp_time

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('state_file = "state.sqlite3"\n[[sites]]\nname = "blog"\n'
                    'url = "https://blog.example"\nusername = "u"\npassword = "pw"\n')
    store = SqliteState.open(tmp_path / "state.sqlite3")
    store.add("blog", 1, "pingback", "https://t.example/", "https://blog.example/p", NOW,
              status="failed", error="fault 0", error_code="fault-0")
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return path


def wpnotify(config: Path, *args: str, limit: Callable[[], None] | None = None
             ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WPNOTIFY_")}
    return subprocess.run([sys.executable, "-m", "wpnotify", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=60, check=False,
                          preexec_fn=limit)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wpnotify: error: "), proc.stderr
    for phrase in phrases:
        assert phrase in lines[0]


def failed_rows(config: Path) -> int:
    with sqlite3.connect(config.parent / "state.sqlite3") as db:
        return int(db.execute("SELECT COUNT(*) FROM notifications WHERE status = 'failed'"
                              ).fetchone()[0])


def test_a_corrupt_state_file(config: Path) -> None:
    state = config.parent / "state.sqlite3"
    state.write_bytes(b"\x00garbage" * 1000)
    assert_one_line_error(wpnotify(config, "history"), "cannot use state file",
                          "restore it from a backup")


def test_a_state_file_from_a_newer_wpnotify(config: Path) -> None:
    with sqlite3.connect(config.parent / "state.sqlite3") as db:
        db.execute(f"PRAGMA user_version = {LATEST + 5}")
    assert_one_line_error(wpnotify(config, "history"), f"schema version {LATEST + 5}",
                          "upgrade wpnotify")


def test_a_state_file_locked_by_another_process(config: Path) -> None:
    holder = sqlite3.connect(config.parent / "state.sqlite3", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        proc = wpnotify(config, "retry", "--all-failed")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_one_line_error(proc, "locked", "another process holds a write lock")
    assert failed_rows(config) == 1


def test_a_read_only_state_file(config: Path) -> None:
    state = config.parent / "state.sqlite3"
    if subprocess.run(["chattr", "+i", str(state)], capture_output=True).returncode != 0:
        pytest.fail("chattr +i is needed to make a file read-only for root")
    try:
        proc = wpnotify(config, "retry", "--all-failed")
    finally:
        subprocess.run(["chattr", "-i", str(state)], check=True)
    assert_one_line_error(proc, "cannot", "writable")
    assert failed_rows(config) == 1


def test_a_full_disk(config: Path) -> None:
    """RLIMIT_FSIZE makes every write past 4 KiB fail, as a full disk does."""
    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    proc = wpnotify(config, "retry", "--all-failed", limit=small_files)
    assert_one_line_error(proc, "disk is full or failing", "nothing was half-written")
    assert failed_rows(config) == 1


@pytest.fixture()
def loopback(tmp_path: Path) -> Path:
    """A config whose site would be on loopback (port 9, where nothing listens): these tests
    must fail before any request, and if one went out it would stay on this machine."""
    path = tmp_path / "loopback.toml"
    path.write_text('state_file = "state.sqlite3"\n[http]\nallow_private_addresses = true\n'
                    '[[sites]]\nname = "blog"\nurl = "http://127.0.0.1:9"\nusername = "u"\n'
                    'password = "pw"\n')
    store = SqliteState.open(tmp_path / "state.sqlite3")
    for post in range(300):  # rows over many pages
        store.add("blog", post, "pingback", f"https://t.example/{post}",
                  "http://127.0.0.1:9/p", NOW, status="sent")
    store.record_poll("blog", NOW, cursor=wp_time("2026-11-26T11:00:00"),
                      baseline=[(1, wp_time("2026-11-26T10:59:00"))])
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return path


def set_in_state(config: Path, sql: str) -> None:
    with sqlite3.connect(config.parent / "state.sqlite3") as db:
        db.execute(sql)
    sqlite3.connect(config.parent / "state.sqlite3").close()


@pytest.mark.parametrize("command", ["status", "poll", "history"])
def test_damaged_pages_in_the_state_file(loopback: Path, command: str) -> None:
    """The header and schema read fine; every other page is garbage. (The schema outgrew
    the first page with migration 8: its pages are found with SQLite's dbstat table.)"""
    state = loopback.parent / "state.sqlite3"
    with sqlite3.connect(state) as db:
        size = int(db.execute("PRAGMA page_size").fetchone()[0])
        schema = {int(row[0]) for row in db.execute(
            "SELECT pageno FROM dbstat WHERE name = 'sqlite_schema'")}
    data = state.read_bytes()
    garbage = (b"\xa5\x17garbage" * (size // 9 + 1))[:size]
    pages = [data[(n - 1) * size:n * size] if n in schema else garbage
             for n in range(1, len(data) // size + 1)]
    assert 1 in schema and len(pages) - len(schema) > 10  # most pages are garbage
    state.write_bytes(b"".join(pages))
    proc = wpnotify(loopback, command)
    # Every command's first step reads the sites kept in the state (issue 15, `wpnotify sites`).
    assert_one_line_error(proc, f"cannot read state file {state}", "malformed",
                          "restore it from a backup")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("column", "value"), [
    ("cursor", "garbage"), ("cursor", "2026-13-45T99:00:00"), ("baseline", "{not json"),
    ("baseline", '[["x", 1, 2]]'), ("deletions_seen", "yesterday")])
@pytest.mark.parametrize("command", ["status", "poll"])
def test_an_unreadable_site_value(loopback: Path, command: str, column: str,
                                  value: str) -> None:
    """Names the site, the column, and a command that starts the site afresh."""
    set_in_state(loopback, f"UPDATE sites SET {column} = '{value}'")
    proc = wpnotify(loopback, command)
    assert_one_line_error(proc, f"site blog's {column} cannot be read", "start that site afresh",
                          "UPDATE sites SET cursor = NULL", "wpnotify backfill --site blog "
                          "--since 2026-11-26")


def test_the_fix_an_unreadable_site_value_names_works(loopback: Path) -> None:
    set_in_state(loopback, "UPDATE sites SET cursor = 'garbage'")
    message = wpnotify(loopback, "status").stderr
    command = message.split("start that site afresh with: ", 1)[1].split(" (its next poll")[0]
    subprocess.run(command, shell=True, check=True)
    proc = wpnotify(loopback, "status")
    assert proc.returncode == 0 and "cursor: none" in proc.stdout, proc.stderr


@pytest.mark.parametrize(("column", "value"), [("payload", "{not json"), ("payload", "[1]"),
                                               ("next_attempt_at", "soon")])
def test_an_unreadable_notification(loopback: Path, column: str, value: str) -> None:
    set_in_state(loopback, f"UPDATE notifications SET {column} = '{value}' WHERE post_id = 7")
    assert_one_line_error(wpnotify(loopback, "history", "--limit", "1000"),
                          "notification 8 cannot be read", "restore the file from a backup",
                          "DELETE FROM notifications WHERE id = 8")


def test_an_unreadable_host_hold(loopback: Path) -> None:
    set_in_state(loopback, "INSERT INTO hosts VALUES ('t.example', 0, 'whenever')")
    set_in_state(loopback, "UPDATE notifications SET status = 'pending' WHERE post_id = 7")
    proc = wpnotify(loopback, "poll")  # the site is not there: logged, then the sending
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("wpnotify: error: ") and "the hold on t.example cannot be read" in last
    assert "\"UPDATE hosts SET not_before = NULL WHERE host = 't.example'\"" in last


def without_root_powers() -> None:
    """In the child, before exec: root without the capabilities that pass over file modes
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER), so a file's mode holds for it as for
    any user; it stays the owner of the test's files and may run the interpreter."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def read_only(state: Path, *, folder: bool) -> None:
    for path in state.parent.glob(state.name + "*"):
        path.chmod(0o444)
    if folder:
        state.parent.chmod(0o555)


@pytest.fixture()
def restore_modes(config: Path) -> Iterator[None]:
    yield
    config.parent.chmod(0o755)


@pytest.mark.parametrize("folder", [False, True], ids=["file", "file-and-folder"])
def test_status_and_history_read_a_file_this_user_cannot_write(
        config: Path, restore_modes: None, folder: bool) -> None:
    read_only(config.parent / "state.sqlite3", folder=folder)
    assert wpnotify(config, "retry", "--all-failed", limit=without_root_powers).returncode == 1
    history = wpnotify(config, "history", "--format", "json", limit=without_root_powers)
    assert history.returncode == 0, history.stderr
    assert [row["target"] for row in json.loads(history.stdout)] == ["https://t.example/"]
    status = wpnotify(config, "status", limit=without_root_powers)
    assert status.returncode == 0, status.stderr
    assert "1 failed" in status.stdout and status.stderr == ""
    assert sorted(p.name for p in config.parent.iterdir()) == ["config.toml", "state.sqlite3"]


def test_history_of_a_read_only_file_sees_what_the_daemon_just_wrote(
        config: Path, restore_modes: None) -> None:
    """A writer (the daemon, another user) holds it open: its latest rows are in the -wal,
    read through the -shm, which this user may not write either."""
    state = config.parent / "state.sqlite3"
    daemon = SqliteState.open(state)
    try:
        daemon.add("blog", 2, "webmention", "https://new.example/", "https://blog.example/q",
                   NOW)
        read_only(state, folder=True)
        history = wpnotify(config, "history", "--format", "json", limit=without_root_powers)
    finally:
        daemon.close()
    assert history.returncode == 0, history.stderr
    assert {row["target"] for row in json.loads(history.stdout)} == {
        "https://t.example/", "https://new.example/"}


def test_a_read_only_file_whose_latest_changes_cannot_be_read(config: Path,
                                                              restore_modes: None) -> None:
    """Its -wal holds changes, its -shm is gone (the writer was killed and cleaned after)
    and the folder is read-only: reading it as it is would show an older state."""
    state = config.parent / "state.sqlite3"
    daemon = SqliteState.open(state)
    daemon.add("blog", 2, "webmention", "https://new.example/", "https://blog.example/q", NOW)
    copies = {name: (config.parent / name).read_bytes()
              for name in ("state.sqlite3", "state.sqlite3-wal")}
    daemon.close()
    for name, data in copies.items():
        (config.parent / name).write_bytes(data)
    read_only(state, folder=True)
    proc = wpnotify(config, "history", limit=without_root_powers)
    assert_one_line_error(proc, "latest changes are still in state.sqlite3-wal",
                          "folder is read-only", "as the user who runs wpnotify")


def test_a_read_only_file_that_needs_an_upgrade(config: Path, restore_modes: None) -> None:
    state = config.parent / "state.sqlite3"
    with sqlite3.connect(state) as db:
        db.execute(f"PRAGMA user_version = {LATEST - 1}")
    sqlite3.connect(state).close()
    read_only(state, folder=True)
    assert_one_line_error(wpnotify(config, "status", limit=without_root_powers),
                          f"schema version {LATEST - 1}", "read-only for this user",
                          "cannot be upgraded", "as the user who may write it")


def test_a_write_to_a_read_only_file_says_so(config: Path, restore_modes: None) -> None:
    read_only(config.parent / "state.sqlite3", folder=False)
    assert_one_line_error(wpnotify(config, "retry", "--all-failed", limit=without_root_powers),
                          "the state file is read-only for this user", "make it and its folder "
                          "writable")
    assert failed_rows(config) == 1


def test_a_poll_on_a_read_only_file_stops_before_reading_any_site(
        loopback: Path, restore_modes: None) -> None:
    """Its site (port 9) is never asked: the poll says read-only, not 'cannot reach'."""
    read_only(loopback.parent / "state.sqlite3", folder=True)
    assert_one_line_error(wpnotify(loopback, "poll", limit=without_root_powers),
                          "the state file is read-only for this user")
