"""The benchmark's receivers: one small HTTP server per loopback host, all in this process,
each answer held back by a fixed latency (a distant, busy receiver). Run by bench/run.py.

On every host, port 8080 (the only port besides 80 and 443 that WordPress core's sender will
contact):

    GET/HEAD /p/<anything>   a page advertising its pingback server (X-Pingback and <link>)
    POST /rpc                pingback.ping(source, target); a repeat gets fault 48
    POST /tb/<anything>      a TrackBack ping (form fields); success reply
    GET /_stats              what every host received, as JSON (answered at once), with
                             each host's peak of requests in flight at once (from a request
                             read to its answer written)
    POST /_reset             forgets it

The paths are not WordPress's (xmlrpc.php, /trackback/), so wpnotify treats the hosts as the
unknown receivers they are, without WordPress's 15-second spacing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
import xmlrpc.client
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

PORT = 8080


class Tally:
    """What all hosts received. ``pings``: (kind, target) -> list of sources."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pings: dict[tuple[str, str], list[str]] = {}
        self.requests: Counter[str] = Counter()  # "host METHOD" -> count
        self.in_flight: Counter[str] = Counter()  # host -> requests being answered now
        self.peak: Counter[str] = Counter()  # host -> the most it answered at once
        self.first = self.last = 0.0  # wall clock: the first request came, the last answer went

    def record(self, kind: str, target: str, source: str) -> bool:
        """True the first time this (kind, target, source) arrives."""
        with self.lock:
            sources = self.pings.setdefault((kind, target), [])
            sources.append(source)
            return sources.count(source) == 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"pings": [[k, t, s] for (k, t), s in self.pings.items()],
                    "requests": dict(self.requests), "peak": dict(self.peak),
                    "first": self.first, "last": self.last}

    def reset(self) -> None:
        with self.lock:
            self.pings.clear()
            self.requests.clear()
            self.in_flight.clear()
            self.peak.clear()
            self.first = self.last = 0.0


class Receiver(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, host: str, latency: float, tally: Tally) -> None:
        super().__init__((host, PORT), Handler)
        self.host = host
        self.latency = latency
        self.tally = tally


class Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"  # keep-alive, for the clients that reuse connections
    # Headers and body go out as two writes; with Nagle's algorithm the body would wait for
    # the client's delayed ACK (40 ms) on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    @contextlib.contextmanager
    def _counted(self) -> Iterator[None]:
        """A request being answered: counted, and in flight at its host until the answer
        is written (or the client is gone), for the host's peak. The sender's per-host limit
        covers at least this span, so the peak can only understate what it let through."""
        tally, host = self.server.tally, self.server.host
        with tally.lock:
            tally.requests[f"{host} {self.command}"] += 1
            tally.first = tally.first or time.time()
            tally.in_flight[host] += 1
            tally.peak[host] = max(tally.peak[host], tally.in_flight[host])
        try:
            yield
        finally:
            with tally.lock:
                tally.in_flight[host] -= 1

    def _page(self, with_body: bool) -> None:
        with self._counted():
            time.sleep(self.server.latency)
            self._page_reply(with_body)

    def _page_reply(self, with_body: bool) -> None:
        rpc = f"http://{self.server.host}:{PORT}/rpc"
        body = (f'<!DOCTYPE html><html><head><title>Page</title>'
                f'<link rel="pingback" href="{rpc}"></head>'
                f"<body><p>A receiver's page, {self.path}.</p></body></html>").encode()
        self._reply(200, body, "text/html; charset=utf-8", {"X-Pingback": rpc},
                    with_body=with_body)

    def do_HEAD(self) -> None:
        self._page(with_body=False)

    def do_GET(self) -> None:
        if self.path == "/_stats":
            body = json.dumps(self.server.tally.snapshot()).encode()
            self._reply(200, body, "application/json", {})
            return
        self._page(with_body=True)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/_reset":
            self.server.tally.reset()
            self._reply(204, b"", "text/plain", {})
            return
        with self._counted():
            time.sleep(self.server.latency)
            self._answer_post(body)

    def _answer_post(self, body: bytes) -> None:
        if self.path == "/rpc":
            try:
                (source, target), _ = xmlrpc.client.loads(body)
            except Exception:  # noqa: BLE001 (a bad call is answered, not fatal)
                reply = xmlrpc.client.dumps(xmlrpc.client.Fault(-32700, "parse error"),
                                            methodresponse=True)
            else:
                first = self.server.tally.record("pingback", str(target), str(source))
                reply = (xmlrpc.client.dumps(("registered",), methodresponse=True) if first
                         else xmlrpc.client.dumps(xmlrpc.client.Fault(48, "already registered"),
                                                  methodresponse=True))
            self._reply(200, reply.encode(), "text/xml; charset=utf-8", {})
        elif self.path.startswith("/tb/"):
            form = parse_qs(body.decode("utf-8", "replace"))
            url = (form.get("url") or [""])[0]
            target = f"http://{self.server.host}:{PORT}{self.path}"
            self.server.tally.record("trackback", target, url)
            self._reply(200, b'<?xml version="1.0" encoding="utf-8"?>\n'
                        b"<response><error>0</error></response>", "text/xml", {})
        else:
            self._reply(404, b"not here", "text/plain", {})

    def _reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str],
               with_body: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)
        if not self.path.startswith("/_"):
            with self.server.tally.lock:
                self.server.tally.last = time.time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hosts", nargs="+", help="loopback addresses to serve on")
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    if not all(h.startswith("127.") for h in args.hosts):
        sys.exit("receivers: loopback addresses (127.0.0.0/8) only")
    tally = Tally()
    servers = [Receiver(host, args.latency, tally) for host in args.hosts]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
