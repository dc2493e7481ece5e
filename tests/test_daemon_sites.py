"""Sites at runtime (issue 15): a running `wpnotify run` picks up `wpnotify sites add` and
`wpnotify sites disable` without a restart. A real daemon process, against a stand-in
WordPress REST endpoint on loopback (answers an empty post list to every request, and notes
which site asked: the sites are paths of one local server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ENV = {k: v for k, v in os.environ.items() if not k.startswith("WPNOTIFY_")}


class StandinWordPress(ThreadingHTTPServer):
    """Every GET is answered ``[]`` (no posts), counted by the first path segment."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.asked: Counter[str] = Counter()
        self.lock = threading.Lock()

    def url(self, site: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{site}"

    def count(self, site: str) -> int:
        with self.lock:
            return self.asked[site]


class _Handler(BaseHTTPRequestHandler):
    server: StandinWordPress

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        with self.server.lock:
            self.server.asked[self.path.strip("/").split("/")[0].split("?")[0]] += 1
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def wordpress() -> Iterator[StandinWordPress]:
    server = StandinWordPress()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def wpnotify(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "wpnotify", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, check=False, env=ENV)
    assert proc.returncode == 0, proc.stderr
    return proc


def wait_for(condition: Callable[[], bool], daemon: subprocess.Popen[str], what: str,
             seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert daemon.poll() is None, f"the daemon ended: {daemon.communicate()}"
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.1)


def events(log: Path, name: str) -> list[dict[str, object]]:
    found = []
    for line in log.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == name:
            found.append(event)
    return found


def test_a_site_added_or_disabled_while_the_daemon_runs_is_picked_up(
        tmp_path: Path, wordpress: StandinWordPress) -> None:
    (tmp_path / "pw").write_text("stand-in password\n")
    config = tmp_path / "config.toml"
    config.write_text('state_file = "state.sqlite3"\npoll_interval = 5\nsites_refresh = 1\n')
    log = tmp_path / "daemon.log"
    with log.open("w") as stderr:
        daemon = subprocess.Popen([sys.executable, "-m", "wpnotify", "--config", str(config),
                                   "run"], stdout=subprocess.DEVNULL, stderr=stderr, env=ENV,
                                  text=True)
    try:
        wait_for(lambda: bool(events(log, "daemon.started")), daemon, "the start")
        assert events(log, "daemon.started")[0]["sites"] == []  # no site at all: it runs
        wpnotify(config, "sites", "add", "late", "--url", wordpress.url("late"),
                 "--username", "admin", "--password-file", str(tmp_path / "pw"))
        wait_for(lambda: wordpress.count("late") > 0, daemon, "a poll of the added site")
        assert [e["added"] for e in events(log, "sites.changed")] == [["late"]]
        wait_for(lambda: bool(events(log, "site.read")), daemon, "the poll's end")
        assert not events(log, "site.unreadable"), log.read_text()

        wpnotify(config, "sites", "disable", "late")
        wait_for(lambda: len(events(log, "sites.changed")) == 2, daemon, "the disabling")
        assert events(log, "sites.changed")[1]["removed"] == ["late"]
        asked = wordpress.count("late")
        time.sleep(6)  # longer than poll_interval: a poll would have come
        assert wordpress.count("late") == asked
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=40)
    assert code == 0, log.read_text()
    assert "stand-in password" not in log.read_text()
