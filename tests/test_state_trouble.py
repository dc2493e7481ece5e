"""State file trouble through the real command: corrupt, newer, locked, read-only, full disk.
Each gives one line naming the problem and the fix, a non-zero exit, and nothing half-written."""

from __future__ import annotations

import os
import resource
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from wpnotify.store import LATEST, Store

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('state_file = "state.sqlite3"\n[[sites]]\nname = "blog"\n'
                    'url = "https://blog.example"\nusername = "u"\npassword = "pw"\n')
    store = Store.open(tmp_path / "state.sqlite3")
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
