"""The bench's parts that need no WordPress: --state refuses a database it must not drop (and
never echoes a password), and the receivers count each host's peak of requests in flight,
which the bench holds against --per-host."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.231"  # a loopback address of its own (the bench's receivers are .101 and up)


@pytest.mark.parametrize(("url", "says"), [
    ("postgresql://postgres@127.0.0.1:5432/postgres", "must be named wpnotify_bench"),
    ("postgresql://postgres@127.0.0.1/wpnotify_bench;drop", "must be named wpnotify_bench"),
    ("postgresql://u:sekrit@192.0.2.1:5432/wpnotify_bench", "must be on a loopback address"),
    ("mysql://root@127.0.0.1/wpnotify_bench", "give a postgresql:// URL"),
    ("postgresql://u:sekrit@127.0.0.1:99999/wpnotify_bench", "not a URL"),
])
def test_state_refuses_a_database_the_bench_may_not_drop(url: str, says: str) -> None:
    """Refused before anything is set up: one line naming the fix, no password, exit 2."""
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--state", url],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("run.py: error: --state: ") and says in last, proc.stderr
    assert "sekrit" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_workers_must_be_from_1_to_16() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--workers", "0"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "--workers must be from 1 to 16, not 0" in proc.stderr


def _get(path: str, method: str = "GET") -> bytes:
    request = urllib.request.Request(f"http://{HOST}:8080{path}", method=method,
                                     data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as reply:
        body: bytes = reply.read()
    return body


def test_receivers_record_each_hosts_peak_in_flight() -> None:
    """Three pages asked at once are three in flight at the host; one after another, one;
    a reset forgets the peak. (The stats request itself is not counted.)"""
    receivers = subprocess.Popen([sys.executable, str(ROOT / "bench" / "receivers.py"), HOST,
                                  "--latency", "0.3"], stdout=subprocess.PIPE, text=True)
    try:
        assert receivers.stdout is not None
        assert receivers.stdout.readline().strip() == "ready"
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(_get, ["/p/a", "/p/b", "/p/c"]))
        assert json.loads(_get("/_stats"))["peak"] == {HOST: 3}
        _get("/_reset", "POST")
        assert json.loads(_get("/_stats"))["peak"] == {}
        _get("/p/a")
        _get("/p/b")
        assert json.loads(_get("/_stats"))["peak"] == {HOST: 1}
    finally:
        receivers.terminate()
        receivers.wait(10)
