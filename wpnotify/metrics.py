"""The daemon's Prometheus endpoint and ``/healthz``, when ``metrics_listen`` is set (and only
then imported: the reading commands never load prometheus_client).

Counted as it happens (an ``Events`` listener): attempts by kind and outcome, their latency,
lease takeovers, each site's last good poll. Read from the state at scrape time (a collector):
the queue by site and status, and the retries due; that reading is cached for CACHE_FOR
seconds, so a storm of scrapes costs one set of queries, each on an index.

Labels hold configured site names, kinds and statuses only: their number is bounded by the
configuration, and no URL, host or secret ever becomes a label.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from wpnotify.errors import StateError, WpnotifyError
from wpnotify.settings import listen_address
from wpnotify.state import History, SiteLog, Status

CACHE_FOR = 2.0  # seconds a reading of the state serves scrapes and health checks
MAX_CLIENTS = 16  # connections served at once; more are closed unanswered
CLIENT_TIMEOUT = 10.0  # seconds a connection may take, its whole request and our answer
SEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 20.0, 30.0, 60.0)

log = structlog.get_logger("wpnotify.metrics")


class ReadState(History, SiteLog, Protocol):
    """What the metrics read of the state."""


@dataclass(frozen=True)
class Reading:
    """One reading of the state: by site, the queue by status and the retries due; or the
    error that stopped it."""

    at: float
    queue: dict[str, dict[Status, int]] = field(default_factory=dict)
    due: dict[str, int] = field(default_factory=dict)
    error: str | None = None


class Metrics:
    """The registry, fed by events and read by scrapes; also what ``/healthz`` answers."""

    def __init__(self, sites: Callable[[], Sequence[str]], store: ReadState,
                 clock: Callable[[], datetime], healthy_within: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        """``sites``: the names of the sites in effect, asked at each reading (sites added
        or removed while the daemon runs show at the next scrape)."""
        self.site_names = sites
        self.store = store
        self.clock = clock
        self.healthy_within = healthy_within
        self.monotonic = monotonic
        self.registry = CollectorRegistry()
        # First: a scrape collects in this order, and its reading of the state also drops
        # the series of sites gone (``_read``) before the gauges below are collected.
        self.registry.register(_StateCollector(self))
        self.attempts = Counter("wpnotify_notifications", "Send attempts ended, by kind and "
                                "outcome (the status recorded)", ["kind", "outcome"],
                                registry=self.registry)
        self.send_seconds = Histogram("wpnotify_send_seconds", "Seconds one send attempt "
                                      "took", ["kind"], buckets=SEND_BUCKETS,
                                      registry=self.registry)
        self.judged_pings = Counter("wpnotify_inbound_pings", "Received pings judged, by "
                                    "site, verdict and what was done (inbound)",
                                    ["site", "verdict", "action"], registry=self.registry)
        self.takeovers = Counter("wpnotify_lease_takeovers", "Notifications taken over from "
                                 "a dead worker or an expired lease", registry=self.registry)
        self.last_ok = Gauge("wpnotify_site_last_ok_poll_timestamp_seconds", "When each "
                             "site was last read without error (Unix time)", ["site"],
                             registry=self.registry)
        self._last_alive = monotonic()
        self._reading: Reading | None = None
        self._reading_lock = threading.Lock()
        self._from_state()

    def _from_state(self) -> None:
        """Each site's last good poll as the state remembers it (a restart keeps it)."""
        for name in self.site_names():
            try:
                site = self.store.site(name)
            except StateError as exc:
                log.warning("metrics.state_unreadable", error=str(exc))
                return
            if site is not None and site.last_ok_at is not None:
                self.last_ok.labels(name).set(site.last_ok_at.timestamp())

    def _forget_sites_but(self, names: set[str]) -> None:
        for sample in [s for family in self.last_ok.collect() for s in family.samples]:
            site = sample.labels["site"]
            if site not in names:
                self.last_ok.remove(site)

    # --- Events ------------------------------------------------------------------------------

    def attempt(self, kind: str, outcome: str, seconds: float) -> None:
        self.attempts.labels(kind, outcome).inc()
        self.send_seconds.labels(kind).observe(max(seconds, 0.0))

    def judged(self, site: str, verdict: str, action: str) -> None:
        self.judged_pings.labels(site, verdict, action).inc()

    def takeover(self, count: int) -> None:
        if count > 0:
            self.takeovers.inc(count)

    def polled(self, site: str, ok: bool, at: datetime) -> None:
        if ok:
            self.last_ok.labels(site).set(at.timestamp())

    def alive(self) -> None:
        self._last_alive = self.monotonic()

    # --- reading the state -----------------------------------------------------------------

    def reading(self) -> Reading:
        """The state's numbers, read at most once per CACHE_FOR seconds; concurrent callers
        wait for the one reading in progress instead of starting their own."""
        with self._reading_lock:
            now = self.monotonic()
            if self._reading is None or now - self._reading.at >= CACHE_FOR:
                self._reading = self._read(now)
            return self._reading

    def _read(self, started: float) -> Reading:
        """One short query per site and question; the state's lock is taken and let go
        around each, so the sender waits for one at most. A site no longer in effect
        (removed or disabled while the daemon runs) loses its last-good-poll series."""
        reading = Reading(started)
        wall = self.clock()
        names = self.site_names()
        self._forget_sites_but(set(names))
        try:
            for name in names:
                reading.queue[name] = self.store.counts(name)
                reading.due[name] = self.store.retries_due(name, wall)
        except StateError as exc:
            log.warning("metrics.state_unreadable", error=str(exc))
            return Reading(started, error=str(exc))
        return reading

    def health(self) -> str | None:
        """None when healthy, else why not (one line): the loop made no progress within
        ``healthy_within`` seconds, or the state did not answer."""
        quiet = self.monotonic() - self._last_alive
        if quiet > self.healthy_within:
            return (f"no progress for {quiet:.0f} s (limit {self.healthy_within:.0f} s): the "
                    "daemon's loop is stalled")
        error = self.reading().error
        return None if error is None else f"the state does not answer: {error}"


class _StateCollector:
    """The queue depth and the retries due, from a cached reading of the state."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # not read at registration: the state is read at scrape time only

    def collect(self) -> Iterator[Metric]:
        reading = self.metrics.reading()
        up = GaugeMetricFamily("wpnotify_state_up", "1 when the state answered the last "
                               "reading, else 0")
        up.add_metric([], 0.0 if reading.error else 1.0)
        yield up
        if reading.error:
            return
        queue = GaugeMetricFamily("wpnotify_queue_notifications", "Notifications in the "
                                  "state, by site and status", labels=["site", "status"])
        due = GaugeMetricFamily("wpnotify_retries_due", "Notifications tried before whose "
                                "next attempt is due now, by site", labels=["site"])
        for site, counts in reading.queue.items():
            for status, count in counts.items():
                queue.add_metric([site, status.value], float(count))
            due.add_metric([site], float(reading.due[site]))
        yield queue
        yield due


# --- HTTP ----------------------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    """GET /metrics, GET /healthz, 404 for anything else; no request body is ever read."""

    server: _Server
    timeout = CLIENT_TIMEOUT  # each read's; the deadline below bounds them all together
    protocol_version = "HTTP/1.0"  # one request a connection: nothing is held open

    def setup(self) -> None:
        """The whole connection within CLIENT_TIMEOUT: the socket's timeout is per read, so
        a client sending a byte every few seconds (up to 64 KiB of request line, then 100
        headers) would keep its slot for days, and 16 such clients every probe out."""
        super().setup()
        self._late = False  # cut off: what was read is a torn request, left unanswered
        self._deadline = threading.Timer(CLIENT_TIMEOUT, self._cut_off)
        self._deadline.daemon = True
        self._deadline.start()

    def _cut_off(self) -> None:
        self._late = True
        with contextlib.suppress(OSError):  # closed already
            self.connection.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once

    def finish(self) -> None:
        self._deadline.cancel()
        super().finish()

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self._late:
            return
        path = self.path.split("?", 1)[0]
        metrics = self.server.metrics
        if path == "/metrics":
            self._reply(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            problem = metrics.health()
            self._reply(503 if problem else 200, f"{problem or 'ok'}\n".encode(),
                        "text/plain; charset=utf-8")
        else:
            self._reply(404, b"not found: try /metrics or /healthz\n",
                        "text/plain; charset=utf-8")

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass  # scrapes are not worth a log line each; errors show in the replies


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily,
                 metrics: Metrics) -> None:
        self.address_family = family
        self.metrics = metrics
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """At most MAX_CLIENTS at once: a flood of connections costs no more threads."""
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone before its answer (it hung up, or was cut off) is no traceback on
        stderr; anything else is logged as the bug it is."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        log.exception("metrics.request_failed")

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class MetricsServer:
    """The endpoint, served by a thread of its own until ``close()``."""

    def __init__(self, listen: str, metrics: Metrics) -> None:
        self.metrics = metrics
        self._server = _bind(listen, metrics)
        self.address: tuple[str, int] = self._server.server_address[:2]  # type: ignore[assignment] # (host, port) for both families
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="wpnotify-metrics", daemon=True)
        self._thread.start()
        log.info("metrics.listening", host=self.address[0], port=self.address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _bind(listen: str, metrics: Metrics) -> _Server:
    """The server bound to ``metrics_listen``; a bad address or a port taken is one line
    naming the setting."""
    host, port = listen_address(listen)
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        return _Server((str(address[0]), int(address[1])), family, metrics)
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise WpnotifyError(f"cannot serve metrics on metrics_listen = {listen!r}: {reason}; "
                            "choose a free port on an address of this machine, or remove "
                            "metrics_listen") from None
