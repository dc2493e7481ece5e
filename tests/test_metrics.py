"""The Prometheus endpoint and /healthz (metrics_listen): what the events and the state show
at a scrape, the cache that makes a scrape storm one set of queries, health going stale and
coming back, and a port that cannot be had said in one line. Also the wiring: the sender
reports attempts, passes and takeovers through ``Events``."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer
from test_sender import make_world, pingable, queue

from wpnotify import metrics as metrics_module
from wpnotify.errors import ConfigError, WpnotifyError
from wpnotify.metrics import MetricsServer
from wpnotify.service import Service
from wpnotify.settings import Settings, SiteSettings, load_settings
from wpnotify.state import Status
from wpnotify.state.sqlite import SqliteState

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def settings_of(*names: str) -> Settings:
    return Settings(sites=tuple(SiteSettings(name=n, url=f"https://{n}.example", username="u",
                                             password="p") for n in names))


class CountingState(SqliteState):
    """The SQLite state, counting the metrics' queries."""

    calls = 0

    def counts(self, site: str) -> dict[Status, int]:
        type(self).calls += 1
        return super().counts(site)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[SqliteState]:
    state = CountingState.open(tmp_path / "state.sqlite3")
    CountingState.calls = 0
    yield state
    state.close()


@pytest.fixture()
def serving(store: SqliteState) -> Iterator[tuple[Service, MetricsServer]]:
    service = Service(settings_of("a", "b"), store, clock=lambda: NOW)
    with service.metrics("127.0.0.1:0", healthy_within=60) as server:
        yield service, server


def get(server: MetricsServer, path: str, method: str = "GET") -> tuple[int, str, str]:
    connection = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        connection.request(method, path)
        reply = connection.getresponse()
        return reply.status, reply.getheader("Content-Type") or "", reply.read().decode()
    finally:
        connection.close()


def scrape(server: MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, by name and sorted labels."""
    status, content_type, text = get(server, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_events_are_counted_by_kind_and_outcome_with_their_latency(
        serving: tuple[Service, MetricsServer]) -> None:
    service, server = serving
    service.events.attempt("pingback", "sent", 0.2)
    service.events.attempt("pingback", "sent", 3.0)
    service.events.attempt("webmention", "pending", 0.004)
    service.events.takeover(3)
    service.events.takeover(0)
    service.events.polled("a", True, NOW)
    service.events.polled("b", False, NOW)
    found = scrape(server)
    assert found[("wpnotify_notifications_total", (("kind", "pingback"), ("outcome", "sent")))] == 2
    assert found[("wpnotify_notifications_total",
                  (("kind", "webmention"), ("outcome", "pending")))] == 1
    assert found[("wpnotify_send_seconds_count", (("kind", "pingback"),))] == 2
    assert found[("wpnotify_send_seconds_sum", (("kind", "pingback"),))] == pytest.approx(3.2)
    assert found[("wpnotify_send_seconds_bucket", (("kind", "pingback"), ("le", "0.25")))] == 1
    assert found[("wpnotify_send_seconds_bucket", (("kind", "webmention"), ("le", "0.005")))] == 1
    assert found[("wpnotify_lease_takeovers_total", ())] == 3
    assert found[("wpnotify_site_last_ok_poll_timestamp_seconds", (("site", "a"),))] == \
        NOW.timestamp()
    assert ("wpnotify_site_last_ok_poll_timestamp_seconds", (("site", "b"),)) not in found


def test_received_pings_are_counted_by_site_verdict_and_action(
        serving: tuple[Service, MetricsServer]) -> None:
    service, server = serving
    service.events.judged("a", "unverified", "spam")
    service.events.judged("a", "unverified", "spam")
    service.events.judged("a", "verified", "none")
    found = scrape(server)
    key = ("site", "a")
    assert found[("wpnotify_inbound_pings_total",
                  (("action", "spam"), key, ("verdict", "unverified")))] == 2
    assert found[("wpnotify_inbound_pings_total",
                  (("action", "none"), key, ("verdict", "verified")))] == 1


def test_the_queue_and_the_due_retries_are_read_from_the_state(
        serving: tuple[Service, MetricsServer], store: SqliteState) -> None:
    for post in range(1, 5):
        store.add("a", post, "pingback", f"https://t/{post}", "https://a/", NOW)
    store.add("b", 1, "pingback", "https://t/1", "https://b/", NOW)
    rows = store.due(NOW, ["a"])
    for n, (status, wait) in zip(rows, [(Status.SENT, 0), (Status.PENDING, -1),
                                         (Status.PENDING, 30)], strict=False):
        store.claim(n.id, NOW)
        store.finish(n.id, status, NOW, error="x", error_code="x",
                     next_attempt_at=NOW + timedelta(minutes=wait))
    found = scrape(serving[1])
    queue_of = {(dict(labels)["site"], dict(labels)["status"]): value
                for (name, labels), value in found.items()
                if name == "wpnotify_queue_notifications"}
    assert queue_of[("a", "pending")] == 3 and queue_of[("a", "sent")] == 1
    assert queue_of[("b", "pending")] == 1 and queue_of[("b", "failed")] == 0
    assert len(queue_of) == 2 * len(Status)  # site x status: nothing else becomes a label
    assert found[("wpnotify_retries_due", (("site", "a"),))] == 1  # tried, and due
    assert found[("wpnotify_retries_due", (("site", "b"),))] == 0  # never tried
    assert found[("wpnotify_state_up", ())] == 1


def test_a_scrape_storm_reads_the_state_once(serving: tuple[Service, MetricsServer]) -> None:
    server = serving[1]
    CountingState.calls = 0
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: get(server, "/metrics")[0], range(24)))
    assert replies == [200] * 24
    assert CountingState.calls == 2  # one reading: one query per site


def test_the_last_good_poll_is_taken_from_the_state_at_start(store: SqliteState) -> None:
    """A restart does not forget when a site was last read."""
    store.record_poll("a", NOW - timedelta(minutes=3))
    service = Service(settings_of("a", "b"), store, clock=lambda: NOW)
    with service.metrics("127.0.0.1:0", healthy_within=60) as server:
        found = scrape(server)
    assert found[("wpnotify_site_last_ok_poll_timestamp_seconds", (("site", "a"),))] == \
        (NOW - timedelta(minutes=3)).timestamp()


def test_healthz_is_ok_then_stale_then_ok_again(store: SqliteState) -> None:
    service = Service(settings_of("a"), store, clock=lambda: NOW)
    with service.metrics("127.0.0.1:0", healthy_within=0.3) as server:
        assert get(server, "/healthz")[::2] == (200, "ok\n")
        time.sleep(0.5)
        status, _, text = get(server, "/healthz")
        assert status == 503
        assert re.fullmatch(r"no progress for \d+ s \(limit 0 s\): the daemon's loop is "
                            r"stalled\n", text)
        service.events.alive()
        assert get(server, "/healthz")[0] == 200


def test_healthz_says_when_the_state_does_not_answer(
        store: SqliteState, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "CACHE_FOR", 0.0)
    service = Service(settings_of("a"), store, clock=lambda: NOW)
    with service.metrics("127.0.0.1:0", healthy_within=60) as server:
        assert get(server, "/healthz")[0] == 200
        store.close()
        status, _, text = get(server, "/healthz")
        assert status == 503 and text.startswith("the state does not answer: state file")
        assert scrape(server)[("wpnotify_state_up", ())] == 0


def test_anything_else_is_404_and_other_methods_are_refused(
        serving: tuple[Service, MetricsServer]) -> None:
    server = serving[1]
    assert get(server, "/")[0] == 404
    assert get(server, "/metrics/../etc")[0] == 404
    assert get(server, "/metrics?x=1")[0] == 200
    assert get(server, "/metrics", method="POST")[0] == 501


def test_a_port_taken_is_one_line_naming_the_setting(store: SqliteState) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = Service(settings_of("a"), store)
        with pytest.raises(WpnotifyError) as caught, \
                service.metrics(f"127.0.0.1:{port}", healthy_within=60):
            pass
    message = str(caught.value)
    assert f"metrics_listen = '127.0.0.1:{port}'" in message and "\n" not in message
    assert "choose a free port" in message


@pytest.mark.parametrize("value", ["9464", "127.0.0.1", "[nope]:1", "host:99999", "a b:1"])
def test_a_bad_metrics_listen_is_refused_naming_the_key(tmp_path: Path, value: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'metrics_listen = "{value}"\n[[sites]]\nname = "a"\n'
                      'url = "https://a.example"\nusername = "u"\npassword = "p"\n')
    with pytest.raises(ConfigError, match=r"metrics_listen: use \"host:port\"|metrics_listen: "
                       "the address in"):
        load_settings(config, environ={})


@pytest.mark.parametrize("value", ["127.0.0.1:9464", "[::1]:9464", "localhost:0"])
def test_a_good_metrics_listen_is_kept(value: str) -> None:
    assert Settings(sites=settings_of("a").sites, metrics_listen=value).metrics_listen == value


def test_wpnotify_run_on_a_taken_port_fails_in_one_line(tmp_path: Path) -> None:
    """The daemon refuses to start, with no traceback, and exit status 1 (systemd retries:
    the port may be the old process's, still closing)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (tmp_path / "config.toml").write_text(
            f'state_file = "state.sqlite3"\nmetrics_listen = "127.0.0.1:{port}"\n'
            '[[sites]]\nname = "a"\nurl = "http://127.0.0.1:9/"\nusername = "u"\n'
            'password = "p"\n')
        proc = subprocess.run([sys.executable, "-m", "wpnotify", "--config",
                               str(tmp_path / "config.toml"), "run"], capture_output=True,
                              text=True, timeout=60, check=False,
                              env={**os.environ, "NOTIFY_SOCKET": ""})
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("{")]
    assert errors == [f"wpnotify: error: cannot serve metrics on metrics_listen = "
                      f"'127.0.0.1:{port}': Address already in use; choose a free port on an "
                      "address of this machine, or remove metrics_listen"]
    assert not any(json.loads(line).get("event") == "daemon.started"
                   for line in proc.stderr.splitlines() if line.startswith("{"))


# --- the wiring: the sender reports through Events --------------------------------------------

class Recorded:
    """An Events listener that keeps what it heard."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def attempt(self, kind: str, outcome: str, seconds: float) -> None:
        with self.lock:
            self.heard.append(("attempt", (kind, outcome, seconds)))

    def takeover(self, count: int) -> None:
        self.heard.append(("takeover", count))

    def polled(self, site: str, ok: bool, at: datetime) -> None:
        self.heard.append(("polled", (site, ok)))

    def judged(self, site: str, verdict: str, action: str) -> None:
        self.heard.append(("judged", (site, verdict, action)))

    def alive(self) -> None:
        with self.lock:
            self.heard.append(("alive", None))


def test_the_sender_reports_each_attempt_and_each_pass(tmp_path: Path,
                                                       httpserver: HTTPServer) -> None:
    world = make_world(tmp_path)
    recorded = Recorded()
    world["sender"].events = recorded
    queue(world, pingable(httpserver, "/a"))
    httpserver.expect_request("/xmlrpc.php", method="POST").respond_with_data(
        b"<?xml version='1.0'?><methodResponse><params><param><value><string>ok</string>"
        b"</value></param></params></methodResponse>", content_type="text/xml")
    world["sender"].deliver(["s"])
    attempts = [value for name, value in recorded.heard if name == "attempt"]
    assert [(kind, outcome) for kind, outcome, _ in attempts] == [("pingback", "sent")]
    assert 0 <= attempts[0][2] < 10
    assert sum(name == "alive" for name, _ in recorded.heard) >= 2  # each pass of the loop


def test_the_sender_reports_notifications_taken_over(tmp_path: Path,
                                                     httpserver: HTTPServer) -> None:
    """Rows another worker left in flight, put back in the queue (and sent): a takeover."""
    world = make_world(tmp_path)
    recorded = Recorded()
    world["sender"].events = recorded
    store: SqliteState = world["store"]
    queue(world, pingable(httpserver, "/a"))
    httpserver.expect_request("/xmlrpc.php", method="POST").respond_with_data(
        b"<?xml version='1.0'?><methodResponse><params><param><value><string>ok</string>"
        b"</value></param></params></methodResponse>", content_type="text/xml")
    store.claim(store.due(world["clock"]())[0].id, world["clock"]())
    world["clock"].now += timedelta(minutes=11)
    world["sender"].deliver(["s"])
    assert [value for name, value in recorded.heard if name == "takeover"] == [1]
    assert [value[:2] for name, value in recorded.heard if name == "attempt"] == [
        ("pingback", "sent")]


def test_an_ipv6_address_is_served(store: SqliteState) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    service = Service(settings_of("a"), store, clock=lambda: NOW)
    try:
        context = service.metrics("[::1]:0", healthy_within=60)
        server = context.__enter__()
    except WpnotifyError as exc:
        pytest.skip(f"::1 cannot be bound here: {exc}")
    try:
        assert server.address[0] == "::1"
        assert get(server, "/healthz")[::2] == (200, "ok\n")
    finally:
        context.__exit__(None, None, None)


def test_a_site_added_while_serving_shows_at_the_next_reading(store: SqliteState) -> None:
    """The sites are asked at each reading: one added at runtime (the daemon swaps the
    service's settings) is counted, one removed is not."""
    service = Service(settings_of("a"), store, clock=lambda: NOW)
    store.add("b", 1, "pingback", "https://t.example/", "https://b.example/1", NOW)
    with service.metrics("127.0.0.1:0", healthy_within=60) as server:
        service.events.polled("a", True, NOW)
        first = scrape(server)
        assert ("wpnotify_site_last_ok_poll_timestamp_seconds", (("site", "a"),)) in first
        assert ("wpnotify_queue_notifications", (("site", "a"), ("status", "pending"))) in first
        assert not any(dict(labels).get("site") == "b" for _, labels in first)
        service.settings = settings_of("b")
        time.sleep(metrics_module.CACHE_FOR + 0.1)  # the cached reading's time
        second = scrape(server)
    assert second[("wpnotify_queue_notifications", (("site", "b"), ("status", "pending")))] == 1
    assert not any(dict(labels).get("site") == "a" for name, labels in second
                   if name == "wpnotify_queue_notifications")
    assert not any(dict(labels).get("site") == "a" for name, labels in second
                   if name == "wpnotify_site_last_ok_poll_timestamp_seconds")  # gone too


def test_clients_that_trickle_their_request_lose_their_slot_in_time(
        store: SqliteState, monkeypatch: pytest.MonkeyPatch,
        capfd: pytest.CaptureFixture[str]) -> None:
    """A slowloris: every slot taken by a client sending a byte at a time, each within the
    socket's timeout. Each is cut off when its time for the whole request is up, and
    /healthz answers again (a probe must not fail for as long as they trickle)."""
    monkeypatch.setattr(metrics_module, "CLIENT_TIMEOUT", 2.0)
    monkeypatch.setattr(metrics_module._Handler, "timeout", 2.0)
    service = Service(settings_of("a"), store, clock=lambda: NOW)
    stop = threading.Event()
    with service.metrics("127.0.0.1:0", healthy_within=60) as server:
        slow = [socket.create_connection(server.address) for _ in
                range(metrics_module.MAX_CLIENTS)]

        def trickle(sock: socket.socket) -> None:
            try:
                sock.sendall(b"GET /")
                while not stop.wait(0.25):  # a byte well within each read's timeout
                    sock.sendall(b"a")
            except OSError:
                pass  # cut off: what the test wants

        threads = [threading.Thread(target=trickle, args=(s,), daemon=True) for s in slow]
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.3)  # every slot is taken by now
            deadline = time.monotonic() + 5.0
            answered = None
            while answered is None and time.monotonic() < deadline:
                try:
                    answered = get(server, "/healthz")[::2]
                except (OSError, http.client.HTTPException):
                    time.sleep(0.1)
            assert answered == (200, "ok\n")
        finally:
            stop.set()
            for sock in slow:
                sock.close()
    assert "Traceback" not in capfd.readouterr().err  # a torn request is left unanswered
