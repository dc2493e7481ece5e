"""The fleet end to end (issue 15): three `wpnotify run` workers on one PostgreSQL database,
two real WordPress sites (the second added with `wpnotify sites add` while they run), eight
pingback receivers and 320 notifications; one worker is killed with SIGKILL three times while
they send, and a new one started each time. Every notification arrives, the receivers see no
more duplicates than were in flight at the kills, no host ever has more than
per_host_concurrency requests at once, no site is read by two workers at once (from the
workers' own logs), and `status` and the metrics tell the story."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import xmlrpc.client
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import devsite
import pytest
from receivers import reply, serving_all

from wpnotify.state import Notification, Status, open_state
from wpnotify.state.processes import process_token

pytestmark = pytest.mark.e2e

SITES = {"one": "127.0.0.16", "two": "127.0.0.17"}  # loopback addresses no other test uses
RECEIVERS = [f"127.0.0.{60 + i}" for i in range(8)]
POSTS = 20  # per site; each links once to every receiver: 2 x 20 x 8 = 320 notifications
DELAY = 0.2  # seconds each receiver takes over a request
PER_HOST = 2
KILLS = 3
PG = "postgresql://postgres@127.0.0.1:5432"
NO_DISK_CRON = "define('DISABLE_WP_CRON', true);"  # WordPress's own enclosure checks stay out


# --- receivers ----------------------------------------------------------------------------

@dataclass
class Traffic:
    """Every request every receiver saw: in flight per host now and at its peak, and every
    ping (source, target), duplicates kept."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: Counter[str] = field(default_factory=Counter)
    peak: Counter[str] = field(default_factory=Counter)
    pings: list[tuple[str, str]] = field(default_factory=list)

    def enter(self, host: str) -> None:
        with self.lock:
            self.in_flight[host] += 1
            self.peak[host] = max(self.peak[host], self.in_flight[host])

    def leave(self, host: str, ping: tuple[str, str] | None) -> None:
        with self.lock:
            self.in_flight[host] -= 1
            if ping is not None:
                self.pings.append(ping)

    def count(self) -> int:
        with self.lock:
            return len(self.pings)


class Receiver(ThreadingHTTPServer):
    """A pingback host on its own loopback address: GET answers a page advertising /rpc,
    POST /rpc records the ping; both after DELAY seconds, counted in flight meanwhile."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: a killed worker's kept-alive connection is reset, as expected."""

    def __init__(self, address: str, traffic: Traffic) -> None:
        super().__init__((address, 0), _Handler)
        self.traffic = traffic
        self.host = f"{address}:{self.server_address[1]}"  # as wpnotify's host_of keys it

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.traffic.enter(self.server.host)
        time.sleep(DELAY)
        self.server.traffic.leave(self.server.host, None)
        reply(self, 200, b"<html><body>a page</body></html>", "text/html",
              {"X-Pingback": self.server.url("/rpc")})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        (source, target), _ = xmlrpc.client.loads(body)
        self.server.traffic.enter(self.server.host)
        time.sleep(DELAY)
        self.server.traffic.leave(self.server.host, (source, target))
        reply(self, 200, xmlrpc.client.dumps(("ok",), methodresponse=True).encode(),
              "text/xml", {})


@pytest.fixture()
def receivers() -> Iterator[tuple[list[Receiver], Traffic]]:
    traffic = Traffic()
    with serving_all([Receiver(address, traffic) for address in RECEIVERS], 0.2) as servers:
        yield servers, traffic


# --- the sites and the database ---------------------------------------------------------------

@pytest.fixture(scope="module")
def blogs(wordpress_ready: None) -> Iterator[dict[str, devsite.Site]]:
    with devsite.running({name: devsite.Site(host, title=f"Fleet {name}", bridge=True,
                                             extra_config=NO_DISK_CRON)
                          for name, host in SITES.items()}) as made:
        yield made


@pytest.fixture()
def database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped after it."""
    name = f"wpnotify_test_fleet_{os.getpid()}_{secrets.token_hex(3)}"
    problem = _psql(f'CREATE DATABASE "{name}"')
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the fleet test: PostgreSQL: {problem}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 cannot be used: {problem}")
    try:
        yield f"{PG}/{name}"
    finally:
        _psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _psql(sql: str) -> str | None:
    """Runs one statement on the server's postgres database; the error, if any."""
    import psycopg

    try:
        with psycopg.connect(f"{PG}/postgres", autocommit=True, connect_timeout=5) as db:
            db.execute(sql)  # type: ignore[arg-type]  # a test's own fixed statement
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


# --- the workers ----------------------------------------------------------------------------

@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path
    metrics: str
    token: str = ""
    stopped_at: datetime | None = None  # when it was stopped (SIGSTOP), never to run again


@dataclass
class Fleet:
    folder: Path
    config: Path
    state: str
    workers: list[Worker] = field(default_factory=list)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "wpnotify", "--config", str(self.config),
                               *args], capture_output=True, text=True, timeout=60,
                              env=_env(), check=False)
        assert proc.returncode == 0, f"wpnotify {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc

    def start(self) -> Worker:
        n = len(self.workers)
        log = self.folder / f"worker{n}.log"
        with socket_port() as port:
            metrics = f"127.0.0.1:{port}"
        env = {**_env(), **({"WPNOTIFY_METRICS_LISTEN": metrics})}
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [sys.executable, "-m", "wpnotify", "--config", str(self.config), "run"],
                stdout=subprocess.DEVNULL, stderr=handle, env=env)
        worker = Worker(process, log, metrics)
        wait_for(lambda: logged(worker, "daemon.started"), 30, "a worker to start")
        worker.token = process_token(process.pid) or ""
        assert logged(worker, "daemon.started")[0]["worker"] == worker.token
        self.workers.append(worker)
        return worker

    def alive(self) -> list[Worker]:
        return [w for w in self.workers if w.stopped_at is None]

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                if worker.stopped_at is not None:
                    worker.process.send_signal(signal.SIGKILL)
                worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.process.wait(40)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WPNOTIFY_")}
    return {**env, "PYTHONPATH": root}


class socket_port:
    """A free TCP port on 127.0.0.1 (bound, then let go for the worker to take)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def write_config(folder: Path, state: str, site: devsite.Site) -> Path:
    (folder / "one.password").write_text(site.app_password + "\n")
    config = folder / "config.toml"
    config.write_text("\n".join([
        f'state_url = "{state}"', "poll_interval = 5", "worker_lease = 6",
        "sites_refresh = 2", "",
        "[http]", "allow_private_addresses = true", "concurrency = 8",
        f"per_host_concurrency = {PER_HOST}", "",
        "[retry]", "delays = [1, 2, 5]", "",
        "[[sites]]", 'name = "one"', f'url = "{site.url}"', 'username = "admin"',
        'password_file = "one.password"', ""]))
    return config


def events(worker: Worker) -> list[dict[str, Any]]:
    """The worker's log: JSON lines only (a killed worker's last may be cut short)."""
    lines = worker.log.read_text(errors="replace").splitlines()
    found = []
    for number, line in enumerate(lines, 1):
        try:
            found.append(json.loads(line))
        except ValueError:
            cut = worker.stopped_at is not None and number == len(lines)
            assert cut, f"{worker.log.name} line {number} is not JSON: {line[:200]}"
    return found


def logged(worker: Worker, name: str) -> list[dict[str, Any]]:
    return [event for event in events(worker) if event.get("event") == name]


def site_polls(fleet: Fleet, end: datetime) -> dict[str, list[tuple[datetime, datetime, str]]]:
    """Per site, every read of it: (start, end, worker). A read that a kill cut short ends
    when the worker was stopped."""
    polls: dict[str, list[tuple[datetime, datetime, str]]] = {}
    for worker in fleet.workers:
        open_: dict[str, datetime] = {}
        for event in events(worker):
            name = event.get("event")
            if name not in ("site.poll_started", "site.poll_ended"):
                continue
            at = datetime.fromisoformat(event["timestamp"])
            if name == "site.poll_started":
                assert event["site"] not in open_, (worker.token, event)
                open_[event["site"]] = at
            else:
                polls.setdefault(event["site"], []).append(
                    (open_.pop(event["site"]), at, worker.token))
        for site, start in open_.items():
            polls.setdefault(site, []).append((start, worker.stopped_at or end, worker.token))
    return polls


def rows(state: str) -> list[Notification]:
    store = open_state(state)
    try:
        return store.history(limit=10_000)
    finally:
        store.close()


def in_flight_by(state: str) -> Counter[str]:
    return Counter(r.claimed_by or "" for r in rows(state) if r.status is Status.SENDING)


def metrics(worker: Worker) -> dict[str, float]:
    """The worker's /metrics as {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://{worker.metrics}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            values[key] = float(value)
    return values


def publish(site: devsite.Site, name: str, receivers: list[Receiver]) -> list[str]:
    """POSTS posts at once (one PHP run), each linking to every receiver; their targets."""
    posts = []
    targets = []
    for i in range(POSTS):
        links = [r.url(f"/t/{name}/{i}/{n}") for n, r in enumerate(receivers)]
        targets += links
        posts.append({"post_status": "publish", "post_type": "post", "post_author": 1,
                      "post_title": f"Fleet post {i}", "post_content": "".join(
                          f'<p><a href="{url}">link {n}</a></p>' for n, url in enumerate(links))})
    made = site.php(
        f"$ids = []; foreach (json_decode({devsite.php_str(json.dumps(posts))}, true) as $p) "
        "{ $id = wp_insert_post($p, true); if (is_wp_error($id)) { return "
        "$id->get_error_message(); } $ids[] = $id; } return $ids;")
    assert isinstance(made, list) and len(made) == POSTS, made
    return targets


# --- the test -------------------------------------------------------------------------------

def test_three_workers_survive_kills_and_a_site_added_while_they_run(
        blogs: dict[str, devsite.Site], database: str,
        receivers: tuple[list[Receiver], Traffic], tmp_path: Path) -> None:
    servers, traffic = receivers
    fleet = Fleet(tmp_path, write_config(tmp_path, database, blogs["one"]), database)
    try:
        for _ in range(3):
            fleet.start()
        # A site added while the workers run: each picks it up without a restart.
        (tmp_path / "two.password").write_text(blogs["two"].app_password + "\n")
        fleet.cli("sites", "add", "two", "--url", blogs["two"].url, "--username", "admin",
                  "--password-file", str(tmp_path / "two.password"))
        for worker in fleet.workers:
            wait_for(lambda w=worker: any(e["added"] == ["two"]
                                          for e in logged(w, "sites.changed")),
                     15, "the workers to pick up the added site")

        def first_polls() -> bool:  # a first poll only watches from then on
            report = json.loads(fleet.cli("status", "--format", "json").stdout)
            return {s["site"] for s in report if s["last_poll_at"]} == set(SITES)

        wait_for(first_polls, 60, "both sites' first poll")
        targets = publish(blogs["one"], "one", servers) + publish(blogs["two"], "two", servers)
        kills = kill_while_sending(fleet, traffic)

        def all_sent() -> bool:
            found = rows(database)
            return len(found) == len(targets) and all(r.status is Status.SENT for r in found)

        wait_for(all_sent, 120, "every notification to be sent")
        # A killed worker shows as alive until a lease passes since its last heartbeat,
        # and its sites are taken over at the next poll of them.
        status = wait_for(lambda: settled(fleet), 20, "`status` to show the fleet as it is")
        scraped = {w.token: metrics(w) for w in fleet.alive()}
    finally:
        fleet.stop_all()
    final = rows(database)
    polls = site_polls(fleet, datetime.now(UTC))
    print(f"fleet: in flight at the kills {kills}, pings {len(traffic.pings)}, peaks "
          f"{dict(traffic.peak)}, reads {({s: len(p) for s, p in polls.items()})}")

    # Every notification delivered, once more at most if it was in flight at a kill.
    assert sorted(r.target for r in final) == sorted(targets)
    assert {r.status for r in final} == {Status.SENT}
    arrived = Counter(traffic.pings)
    assert set(arrived) == {(r.source, r.target) for r in final}
    duplicates = sum(arrived.values()) - len(arrived)
    assert duplicates <= sum(kills), (duplicates, kills)
    # The per-host limit held for the fleet at every moment (and was reached).
    peaks = dict(traffic.peak)
    assert max(peaks.values()) == PER_HOST, peaks
    assert set(peaks) == {s.host for s in servers}
    assert_read_apart(polls)
    # `status`: the workers alive, the killed ones not, each site polled by a live one.
    assert f"workers ({len(fleet.alive())} alive):" in status, status
    assert status.count(": daemon, alive; last seen") == len(fleet.alive()), status
    assert status.count(": daemon, not seen within a lease") == KILLS, status
    assert_metrics_agree(scraped, final, kills)


def assert_read_apart(polls: dict[str, list[tuple[datetime, datetime, str]]]) -> None:
    """No two workers read one site at once; both sites were read, the added one too."""
    assert set(polls) == set(SITES)
    for site, spans in polls.items():
        for a_start, a_end, a in spans:
            for b_start, b_end, b in spans:
                assert a == b or a_end <= b_start or b_end <= a_start, (site, a, b)


def assert_metrics_agree(scraped: dict[str, dict[str, float]], final: list[Notification],
                         kills: list[int]) -> None:
    """Each live worker's /metrics counts what the state says it sent; the rows in flight
    at the kills were taken over once each, those of the last kill by live workers."""
    by_worker = Counter(r.claimed_by for r in final)
    for token, values in scraped.items():
        sent = sum(v for k, v in values.items()
                   if k.startswith("wpnotify_notifications_total{") and 'outcome="sent"' in k)
        assert sent == by_worker[token], (token, sent, by_worker[token])
    taken_over = sum(v.get("wpnotify_lease_takeovers_total", 0.0) for v in scraped.values())
    assert kills[-1] <= taken_over <= sum(kills), (taken_over, kills)
    assert sum(1 for r in final if r.attempts >= 2) >= max(kills)  # sent again after a kill


def kill_while_sending(fleet: Fleet, traffic: Traffic) -> list[int]:
    """KILLS times, while the fleet sends: stops the worker with the most in flight,
    counts its rows in flight (SIGSTOP holds them still; its requests already at a receiver
    end meanwhile), kills it with SIGKILL and starts another. Returns those counts."""
    counts = []
    for _ in range(KILLS):
        mark = traffic.count()
        wait_for(lambda m=mark: traffic.count() >= m + 30, 60, "the fleet to send more")
        victim: Worker = wait_for(lambda: busiest(fleet), 30,
                                  "a worker with notifications in flight")
        victim.process.send_signal(signal.SIGSTOP)
        victim.stopped_at = datetime.now(UTC)
        time.sleep(DELAY * 3)  # its requests at the receivers end
        counts.append(in_flight_by(fleet.state)[victim.token])
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        fleet.start()
    return counts


def busiest(fleet: Fleet) -> Worker | None:
    """The live worker with the most notifications in flight (None if none has any)."""
    held = in_flight_by(fleet.state)
    worker = max(fleet.alive(), key=lambda w: held[w.token])
    return worker if held[worker.token] else None


def settled(fleet: Fleet) -> str | None:
    """`status`, once it shows the live workers alive, the killed ones not, and a live
    worker polling each site."""
    out = fleet.cli("status").stdout
    alive = {w.token for w in fleet.alive()}
    if not all(f"{token}: daemon, alive" in out for token in alive):
        return None
    if any(f"{w.token}: daemon, alive" in out for w in fleet.workers
           if w.token not in alive):
        return None
    holders = [line.split("polled by: ", 1)[1].strip() for line in out.splitlines()
               if "polled by: " in line]
    return out if len(holders) == len(SITES) and set(holders) <= alive else None
