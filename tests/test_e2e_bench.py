"""The benchmark runs from a checkout and checks delivery itself: a small run of bench/run.py,
WordPress core's sender and wpnotify's backfill against the same posts and receivers. Figures
are printed, never asserted (timings belong to the bench, not to tests)."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent


def test_a_small_bench_delivers_everything_exactly_once_both_ways() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--posts", "4", "--links", "2",
         "--hosts", "3", "--latency", "0.01", "--history-rows", "5000"],
        capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert any(r.startswith("| wpnotify") and "exactly once" in r for r in rows), out
    assert any(r.startswith("| WordPress core") and "exactly once" in r for r in rows), out
    assert "receiver requests: wpnotify 20, WordPress core 20" in out  # 4 x (2 x 2 + 1)
    # The receivers time the first request and the last answer: both inside wpnotify's run.
    span = re.search(r"start-up and the first posts read (\d+\.\d+) s; first request to last "
                     r"answer (\d+\.\d+) s .*; after it (\d+\.\d+) s", out)
    assert span is not None, out
    assert all(float(part) > 0 for part in span.groups()), span.group(0)
    assert "idle poll: 1 request(s)" in out
    assert "history --post on 5,000 rows" in out
    assert "idle poll on that state file: 1 request(s)" in out


def test_a_tiny_bench_on_postgresql_with_two_workers_delivers_everything_once() -> None:
    """--state and --workers: SQLite and PostgreSQL with one worker, PostgreSQL with two
    processes, each delivering every notification exactly once within the per-host limit,
    the ratios printed; the bench's database is gone afterwards."""
    import psycopg

    name = f"wpnotify_bench_test_{secrets.token_hex(4)}"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--posts", "4", "--links", "2",
         "--hosts", "3", "--latency", "0.01", "--history-rows", "0", "--skip-core",
         "--state", f"postgresql://postgres@127.0.0.1:5432/{name}", "--workers", "2"],
        capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    rows = {cells[1].strip(): cells for line in out.splitlines() if line.startswith("| wpnotify")
            for cells in [line.split("|")]}
    assert set(rows) == {"wpnotify, SQLite, 1 worker", "wpnotify, PostgreSQL, 1 worker",
                         "wpnotify, PostgreSQL, 2 workers"}, out
    for cells in rows.values():
        assert cells[7].strip() == "exactly once", out
        assert 1 <= int(cells[6]) <= 2, out  # host peak, within --per-host (2)
    assert "sum" in rows["wpnotify, PostgreSQL, 2 workers"][5]  # two processes' memory
    assert "PostgreSQL / SQLite, 1 worker: wall" in out
    assert "2 workers / 1 worker, PostgreSQL: wall" in out
    assert re.search(r"per-host limit 2: at most [12] request\(s\) .*: PASS", out), out
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as db:
        left = db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchall()
    assert left == []
