"""systemd's notify protocol: READY once the polls are scheduled, STOPPING at the end, and
watchdog pings from the work itself, which stop when a job wedges (so systemd restarts the
daemon). A real AF_UNIX datagram socket stands in for systemd's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from wpnotify import daemon as daemon_module
from wpnotify.daemon import Daemon, alive_tick
from wpnotify.service import Service
from wpnotify.settings import Settings, SiteSettings
from wpnotify.state.sqlite import SqliteState
from wpnotify.systemd import Notifier, watchdog_seconds


class Systemd:
    """The receiving end of NOTIFY_SOCKET: every datagram, with when it came."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.got: list[tuple[float, str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.got.append((time.monotonic(), data.decode()))

    def lines(self) -> list[str]:
        return [line for _, text in list(self.got) for line in text.split("\n")]

    def pings(self, after: float = 0.0) -> list[float]:
        return [at for at, text in list(self.got) if "WATCHDOG=1" in text and at >= after]

    def wait_for(self, line: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while line not in self.lines():
            assert time.monotonic() < deadline, f"no {line} from the daemon: {self.lines()}"
            time.sleep(0.02)

    def close(self) -> None:
        self._done.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture()
def systemd(tmp_path: Path) -> Iterator[Systemd]:
    receiver = Systemd(str(tmp_path / "notify.sock"))
    yield receiver
    receiver.close()


def test_lines_reach_a_socket_by_path_and_an_abstract_one(systemd: Systemd,
                                                          tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    notifier.ready("polling 1 site(s)")
    systemd.wait_for("READY=1")
    assert "STATUS=polling 1 site(s)" in systemd.lines()
    name = f"wpnotify-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
        abstract.bind("\0" + name)
        abstract.settimeout(5)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send("STATUS=x")
        assert abstract.recv(100) == b"STATUS=x"


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled and notifier.watchdog is None
    assert notifier.send("READY=1") is False
    notifier.alive()  # and nothing raises


def test_a_socket_gone_is_logged_once_and_never_raised(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody.sock"),
                         "WATCHDOG_USEC": "1"})
    with capture_logs() as events:
        notifier.ready("x")
        notifier.stopping()
        notifier.alive()
    assert [e["event"] for e in events] == ["systemd.notify_failed"]


@pytest.mark.parametrize(("environ", "seconds"), [
    ({"WATCHDOG_USEC": "4000000"}, 4.0),
    ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}, None),  # another process's
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_the_watchdog_applies_to_this_process_only(environ: dict[str, str],
                                                   seconds: float | None) -> None:
    assert watchdog_seconds(environ, os.getpid()) == seconds
    if "WATCHDOG_PID" not in environ:
        mine = {**environ, "WATCHDOG_PID": str(os.getpid())}
        assert watchdog_seconds(mine, os.getpid()) == seconds


def test_pings_go_at_most_every_half_timeout(systemd: Systemd, tmp_path: Path) -> None:
    now = [100.0]
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
                         "WATCHDOG_USEC": "10000000"}, clock=lambda: now[0])
    for step in [0, 1, 2, 4.9, 5.0, 5.1, 9.9, 10.0]:
        now[0] = 100.0 + step
        notifier.alive()
    time.sleep(0.3)
    assert len(systemd.pings()) == 3  # at 0, 5 and 10
    assert alive_tick(10.0) == 2.5 and alive_tick(None) == daemon_module.ALIVE_TICK


# --- the daemon --------------------------------------------------------------------------------

def make_daemon(tmp_path: Path, watchdog_usec: int) -> tuple[Daemon, SqliteState]:
    settings = Settings(sites=(SiteSettings(name="s", url="https://s.example", username="u",
                                            password="p"),))
    store = SqliteState.open(tmp_path / "state.sqlite3")
    environ = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
               "WATCHDOG_USEC": str(watchdog_usec)}
    return Daemon(settings, Service(settings, store), environ=environ), store


def serve_until(daemon: Daemon, stop: threading.Event) -> None:
    """Serves in this (the main) thread until ``stop``; signal handlers restored after."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    stopper = threading.Thread(target=lambda: (stop.wait(30), daemon.stop()))
    stopper.start()
    try:
        daemon.serve()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        stop.set()
        stopper.join()


def test_the_daemon_is_ready_pings_while_idle_and_says_it_stops(
        systemd: Systemd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    daemon, store = make_daemon(tmp_path, watchdog_usec=400_000)  # pings every 0.2 s at most
    polled = threading.Event()
    monkeypatch.setattr(daemon, "poll_site", lambda site: polled.set())
    stop = threading.Event()

    def watch() -> None:
        systemd.wait_for("READY=1")
        time.sleep(1.5)  # idle: only the alive tick runs
        stop.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    serve_until(daemon, stop)
    watcher.join()
    store.close()
    lines = systemd.lines()
    assert lines.index("READY=1") < lines.index("STOPPING=1")
    assert polled.is_set()
    pings = systemd.pings()
    assert len(pings) >= 5, pings  # ~every 0.2 s for 1.5 s
    assert max(b - a for a, b in zip(pings, pings[1:], strict=False)) < 0.4  # never late


def test_a_wedged_job_stops_the_watchdog_pings(systemd: Systemd, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The pings come from the one worker thread's own work: once a job blocks, they stop,
    and systemd (WatchdogSec) would restart the daemon."""
    monkeypatch.setattr(daemon_module, "RETRY_TICK", 0.6)
    monkeypatch.setattr(daemon_module, "GRACE", 0.2)
    daemon, store = make_daemon(tmp_path, watchdog_usec=400_000)
    monkeypatch.setattr(daemon, "poll_site", lambda site: None)
    wedged, release = threading.Event(), threading.Event()

    def wedge() -> None:
        wedged.set()
        release.wait(30)

    monkeypatch.setattr(daemon, "send_due", wedge)
    stop = threading.Event()
    result: dict[str, float] = {}

    def watch() -> None:
        systemd.wait_for("READY=1")
        assert wedged.wait(10)
        result["wedged_at"] = time.monotonic()
        time.sleep(1.5)  # seven watchdog half-periods
        result["stopped_at"] = time.monotonic()
        stop.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        serve_until(daemon, stop)
    finally:
        release.set()
        watcher.join()
        store.close()
    assert [at for at in systemd.pings() if at < result["wedged_at"]], "no ping before"
    assert [at for at in systemd.pings(after=result["wedged_at"] + 0.05)
            if at < result["stopped_at"]] == []


def test_wpnotify_run_tells_systemd_and_serves_health(tmp_path: Path) -> None:
    """The real command, with a site that does not answer: READY, pings, /healthz ok,
    then SIGTERM: STOPPING, exit 0."""
    receiver = Systemd(str(tmp_path / "notify.sock"))
    with socket.socket() as probe:  # a free port for the metrics
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "config.toml").write_text(
        f'state_file = "state.sqlite3"\nmetrics_listen = "127.0.0.1:{port}"\n'
        '[[sites]]\nname = "a"\nurl = "http://127.0.0.1:9/"\nusername = "u"\n'
        'password = "p"\n')
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
           "WATCHDOG_USEC": "1000000"}
    proc = subprocess.Popen([sys.executable, "-m", "wpnotify", "--config",
                             str(tmp_path / "config.toml"), "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        receiver.wait_for("READY=1", timeout=30)
        time.sleep(1.2)
        import http.client
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/healthz")
        reply = connection.getresponse()
        assert (reply.status, reply.read()) == (200, b"ok\n")
        connection.close()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        receiver.close()
    assert proc.returncode == 0, stderr
    assert len(receiver.pings()) >= 2
    assert "STOPPING=1" in receiver.lines()
    assert any(line.startswith("STATUS=polling 1 site(s)") for line in receiver.lines())
