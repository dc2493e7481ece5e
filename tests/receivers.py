"""Local receivers for tests: a pingback receiver that counts and deduplicates, as real ones
do, and a hostile server with one misbehaviour per path. Loopback only."""

from __future__ import annotations

import threading
import time
import xmlrpc.client
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class PingbackReceiver(ThreadingHTTPServer):
    """GET /t/<anything>: a page advertising /rpc. POST /rpc: pingback.ping, answered after
    ``delay`` seconds; a repeat of a (source, target) pair gets fault 48, as WordPress does."""

    daemon_threads = True

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _PingbackHandler)
        self.delay = delay
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _PingbackHandler(BaseHTTPRequestHandler):
    server: PingbackReceiver

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self._reply(200, b"<html><head><title>t</title></head><body>page</body></html>",
                    "text/html", {"X-Pingback": self.server.url("/rpc")})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        (source, target), _ = xmlrpc.client.loads(body)
        time.sleep(self.server.delay)
        with self.server.lock:
            self.server.calls[target] += 1
            first = self.server.calls[target] == 1
        reply = (xmlrpc.client.dumps(("registered",), methodresponse=True) if first else
                 xmlrpc.client.dumps(xmlrpc.client.Fault(48, "already registered"),
                                     methodresponse=True))
        self._reply(200, reply.encode(), "text/xml", {})

    def _reply(self, status: int, body: bytes, content_type: str,
               headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
