"""Several processes on one state file at the same moment: creating it, and planning the same
post. Each must see the other's work and go on, never fail or record a thing twice."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from wpnotify.errors import StateError
from wpnotify.store import LATEST, Store

OPENERS = 8


def open_at_once(path: Path, count: int) -> list[StateError]:
    """``count`` threads open ``path`` at one moment, each with its own connection (as
    separate processes have); returns the errors."""
    start = threading.Barrier(count)
    errors: list[StateError] = []

    def open_it() -> None:
        start.wait()
        try:
            Store.open(path).close()
        except StateError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_threads_creating_one_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """The migrations are applied once, and those who find them done go on."""
    for round_ in range(20):
        path = tmp_path / f"state{round_}.sqlite3"
        assert open_at_once(path, OPENERS) == []
        check = Store.open(path)
        assert check.db.execute("PRAGMA user_version").fetchone()[0] == LATEST
        assert [r[0] for r in check.db.execute("SELECT version FROM migrations")] == list(
            range(1, LATEST + 1))
        check.close()


def test_processes_creating_one_new_file_at_once_all_succeed(tmp_path: Path) -> None:
    """`wpnotify status` while a fresh daemon creates the file: real processes."""
    path = tmp_path / "state.sqlite3"
    at = time.time() + 1.5  # every process imports first, then all open at this moment
    code = ("import sys, time; from pathlib import Path; from wpnotify.store import Store; "
            "from wpnotify.errors import StateError\n"
            f"time.sleep(max({at!r} - time.time(), 0))\n"
            "try:\n    Store.open(Path(sys.argv[1])).close()\n"
            "except StateError as exc:\n    print(exc); sys.exit(1)\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(OPENERS)]
    outputs = [(proc.wait(timeout=60), proc.communicate()[0]) for proc in procs]
    assert all(rc == 0 for rc, _ in outputs), outputs
