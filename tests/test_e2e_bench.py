"""The benchmark runs from a checkout and checks delivery itself: a small run of bench/run.py,
WordPress core's sender and wpnotify's backfill against the same posts and receivers. Figures
are printed, never asserted (timings belong to the bench, not to tests)."""

from __future__ import annotations

import re
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
