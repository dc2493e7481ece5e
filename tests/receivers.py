"""Local receivers for tests: a pingback receiver that counts and deduplicates, as real ones
do, and a hostile server with one misbehaviour per path. Loopback only."""

from __future__ import annotations

import socket
import threading
import time
import xmlrpc.client
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar


class LocalServer(ThreadingHTTPServer):
    """A threaded server on 127.0.0.1, on a free port, for ``handler``."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps test output quiet."""

    def log_message(self, *args: object) -> None:
        pass


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
        reply(self, status, body, content_type, headers)


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str,
          headers: dict[str, str], with_body: bool = True) -> None:
    """One whole answer, with its length (so that HTTP/1.1 clients may keep the connection);
    ``with_body`` False: a HEAD's, the length of the body it would have."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    if with_body:
        handler.wfile.write(body)


class Log:
    """What every receiver saw, shared, in order."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str, str]] = []  # (port, event, path)
        self.in_flight: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.total = 0
        self.peak_total = 0
        self.pings: list[tuple[str, str, float]] = []  # (port, target, monotonic time)

    def enter(self, port: str, path: str) -> None:
        with self.lock:
            self.in_flight[port] += 1
            self.total += 1
            self.peak[port] = max(self.peak[port], self.in_flight[port])
            self.peak_total = max(self.peak_total, self.total)
            self.events.append((port, "start", path))
            if path.startswith("ping "):
                self.pings.append((port, path[5:], time.monotonic()))

    def leave(self, port: str, path: str) -> None:
        with self.lock:
            self.in_flight[port] -= 1
            self.total -= 1
            self.events.append((port, "end", path))


class CountingReceiver(ThreadingHTTPServer):
    """Pages advertising /rpc; pingbacks answered after ``delay`` seconds; every request
    entered in a shared ``Log`` (in flight per port, peaks, pings in order)."""

    daemon_threads = True

    def __init__(self, log: Log, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _CountingHandler)
        self.log = log
        self.delay = delay
        self.port = str(self.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class _CountingHandler(BaseHTTPRequestHandler):
    server: CountingReceiver
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        reply(self, 200, body, content_type, headers)

    def do_GET(self) -> None:
        self.server.log.enter(self.server.port, self.path)
        time.sleep(self.server.delay)
        self.server.log.leave(self.server.port, self.path)
        self._reply(b"<html><body>a page</body></html>", "text/html",
                    {"X-Pingback": self.server.url("/rpc")})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        (_source, target), _ = xmlrpc.client.loads(body)
        self.server.log.enter(self.server.port, f"ping {target}")
        time.sleep(self.server.delay)
        self.server.log.leave(self.server.port, f"ping {target}")
        self._reply(xmlrpc.client.dumps(("ok",), methodresponse=True).encode(), "text/xml", {})


ServerT = TypeVar("ServerT", bound=ThreadingHTTPServer)


@contextmanager
def serving(server: ServerT, poll: float = 0.5) -> Iterator[ServerT]:
    """The server answering on a thread of its own; ``poll``: how soon it stops when asked."""
    thread = threading.Thread(target=server.serve_forever, args=(poll,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serving_all(servers: Sequence[ServerT], poll: float = 0.5) -> Iterator[list[ServerT]]:
    """Each of ``servers`` answering on a thread of its own (``serving``), all stopped on
    leaving."""
    with ExitStack() as stack:
        yield [stack.enter_context(serving(server, poll)) for server in servers]


BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]>'
        b"<methodResponse><params><param><value><string>&lol2;</string></value></param>"
        b"</params></methodResponse>")


NESTED = (b'<?xml version="1.0"?><methodResponse><params><param><value>'
          + b"<array><data><value>" * 1500 + b"</value></data></array>" * 1500
          + b"</value></param></params></methodResponse>")
STRUCT_FAULT = (b'<?xml version="1.0"?><methodResponse><fault><value><struct><member>'
                b"<name>faultCode</name><value><struct></struct></value></member><member>"
                b"<name>faultString</name><value><string>x</string></value></member>"
                b"</struct></value></fault></methodResponse>")


class HostileServer(ThreadingHTTPServer):
    """One misbehaviour per path; pages under /p/<name> advertise the endpoint /rpc/<name>."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HostileHandler)
        self.posts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _HostileHandler(_PingbackHandler):
    server: HostileServer  # type: ignore[assignment]  # a sibling server class

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        page = (f'<html><head><link rel="pingback" href="/rpc/{name}"></head>'
                "<body>hostile</body></html>").encode()
        if name == "stall":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"<html>")
            self.wfile.flush()
            time.sleep(30)
        elif name == "reset":
            import socket
            import struct

            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif name == "huge":  # 200 MB of HTML, the endpoint at its very end
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            chunk = b"<p>" + b"x" * 65536 + b"</p>\n"
            try:
                for _ in range(200 * 1024 * 1024 // len(chunk)):
                    self.wfile.write(chunk)
                self.wfile.write(page)
            except OSError:
                pass  # the client hung up at its cap, as it should
            self.close_connection = True
        elif name == "loop":
            self._reply(302, b"", "text/html", {"Location": self.path})
        elif name in ("drip", "continue"):  # headers a byte at a time; 100 Continue forever
            self._drip(name)
        elif name == "quadratic":  # 1 MiB that html.parser takes hours over, then the link
            self._reply(200, b"<p>" + b"<a " * (1000 * 1024 // 3) + b">" + page, "text/html",
                        {})
        elif name == "badlocation":
            self._reply(302, b"", "text/html", {"Location": "http://[your link here]"})
        elif name == "charset":  # says Latin-1, sends UTF-8
            self._reply(200, page.replace(b"hostile", "h\u00f4stile".encode()),
                        "text/html; charset=iso-8859-1", {})
        elif name == "badcharset":
            self._reply(200, page, "text/html; charset=no-such-charset", {})
        else:
            self._reply(200, page, "text/html", {})

    def _drip(self, name: str) -> None:
        """Keeps the client waiting for 20 s with bytes that never end the headers."""
        head = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 400
        try:
            for index in range(400):
                time.sleep(0.05)
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n" if name == "continue"
                                 else head[index:index + 1])
                self.wfile.flush()
        except OSError:
            pass  # the client gave up, as it should
        self.close_connection = True

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        name = self.path.rsplit("/", 1)[-1]
        with self.server.lock:
            self.server.posts[name] += 1
            count = self.server.posts[name]
        ok = xmlrpc.client.dumps(("registered",), methodresponse=True).encode()
        if name == "flaky" and count == 1:
            self._reply(503, b"try later", "text/plain", {})
        elif name == "ratelimited" and count == 1:
            self._reply(429, b"slow down", "text/plain", {"Retry-After": "2"})
        elif name == "garbage":
            self._reply(200, b"<html><body>Thanks!</body></html>", "text/html", {})
        elif name == "bomb":
            self._reply(200, BOMB, "text/xml", {})
        elif name == "tb-garbage":
            self._reply(200, b"OK, got it", "text/plain", {})
        elif name == "deep":
            self._reply(200, NESTED, "text/xml", {})
        elif name == "utf16bomb":
            self._reply(200, BOMB.decode().replace('"1.0"?>', '"1.0" encoding="utf-16"?>')
                        .encode("utf-16"), "text/xml", {})
        elif name == "structfault":
            self._reply(200, STRUCT_FAULT, "text/xml", {})
        elif name == "superscript":
            self._reply(503, b"busy", "text/plain", {"Retry-After": "\u00b2"})
        else:
            self._reply(200, ok, "text/xml", {})


class UpdateService:
    """A weblogUpdates server on 127.0.0.1 that records every call. ``extended=False`` knows
    only weblogUpdates.ping; ``refuse`` makes it answer flerror true with that message."""

    def __init__(self, extended: bool = True, refuse: str | None = None) -> None:
        from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

        class Quiet(SimpleXMLRPCRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.server = SimpleXMLRPCServer(("127.0.0.1", 0), Quiet, logRequests=False,
                                         allow_none=True)
        self.refuse = refuse

        def reply(method: str) -> Any:
            def handler(*args: str) -> dict[str, Any]:
                self.calls.append((method, args))
                if self.refuse:
                    return {"flerror": True, "message": self.refuse}
                return {"flerror": False, "message": "Thanks for the ping."}
            return handler

        if extended:
            self.server.register_function(reply("weblogUpdates.extendedPing"),
                                          "weblogUpdates.extendedPing")
        self.server.register_function(reply("weblogUpdates.ping"), "weblogUpdates.ping")
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/RPC2"

    def __enter__(self) -> UpdateService:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class WebmentionReceiver(ThreadingHTTPServer):
    """Pages under /page/<name> offer both Webmention (/webmention) and Pingback (/rpc). The
    Webmention endpoint verifies as real receivers do: it fetches the source and accepts only
    if it links to the target (400 otherwise)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _WebmentionHandler)
        self.verified: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str]] = []
        self.pingbacks: list[tuple[str, str]] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _WebmentionHandler(_PingbackHandler):
    server: WebmentionReceiver  # type: ignore[assignment]  # a sibling server class

    def do_GET(self) -> None:
        self._reply(200, b'<html><head><link rel="webmention" href="/webmention"></head>'
                         b"<body>a page that takes both</body></html>", "text/html",
                    {"X-Pingback": self.server.url("/rpc")})

    def do_POST(self) -> None:
        import html
        import urllib.parse
        import urllib.request

        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/rpc":
            (source, target), _ = xmlrpc.client.loads(body)
            self.server.pingbacks.append((source, target))
            self._reply(200, xmlrpc.client.dumps(("ok",), methodresponse=True).encode(),
                        "text/xml", {})
            return
        import urllib.error

        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        pair = (form.get("source", ""), form.get("target", ""))
        try:
            with urllib.request.urlopen(pair[0], timeout=10) as page:  # the source: loopback
                text = page.read().decode("utf-8", "replace")
        except urllib.error.HTTPError:
            text = None  # 404 or 410: the source is gone
        links = text is not None and (f'href="{html.escape(pair[1])}"' in text
                                      or f'href="{pair[1]}"' in text)
        known = pair in self.server.verified
        if links and not known:
            self.server.verified.append(pair)
        elif not links and known:  # an update or a delete: the mention goes
            self.server.verified.remove(pair)
            self.server.deleted.append(pair)
        elif not links:
            self._reply(400, b"source does not link to target", "text/plain", {})
            return
        self._reply(202, b"", "text/plain", {})


Script = Callable[[socket.socket, threading.Event], None]


@contextmanager
def raw_server(script: Script) -> Iterator[str]:
    """A server on 127.0.0.1 that reads each request and then runs ``script`` on the socket;
    it stops by itself when the test ends (``stop`` is set)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                script(conn, stop)
            except OSError:
                pass  # the client hung up, as it should

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    finally:
        stop.set()
        thread.join(5)
        server.close()


class SourcePages(ThreadingHTTPServer):
    """The pages that send pings to a WordPress site, on a fixed address (WordPress fetches a
    pingback's source only on ports 80, 443 and 8080): each path answers what the test set
    for it, and a test may change a page while serving (a page that stops linking, a source
    that comes back); every GET counted per path. Unknown paths answer 404."""

    daemon_threads = True

    def __init__(self, host: str, port: int = 8080) -> None:
        self.allow_reuse_address = True  # a fixed port, taken again by the next run at once
        super().__init__((host, port), _SourceHandler)
        self.pages: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}{path}"

    def page(self, path: str, title: str, body: str) -> str:
        """Serves an HTML page (``body`` is markup) at ``path``; returns its URL."""
        html_page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
                     f"</head><body><h1>{title}</h1>{body}</body></html>")
        return self.answer(path, 200, html_page.encode(), {"Content-Type": "text/html"})

    def answer(self, path: str, status: int, body: bytes = b"",
               headers: dict[str, str] | None = None) -> str:
        """Serves ``status`` with ``body`` and ``headers`` at ``path``; returns its URL."""
        with self.lock:
            self.pages[path] = (status, body, {"Content-Type": "text/plain", **(headers or {})})
        return self.url(path)


class _SourceHandler(BaseHTTPRequestHandler):
    server: SourcePages
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        status, body, content_type, headers = self._look_up()
        reply(self, status, body, content_type, headers)

    def do_HEAD(self) -> None:
        status, body, content_type, headers = self._look_up()
        reply(self, status, body, content_type, headers, with_body=False)

    def _look_up(self) -> tuple[int, bytes, str, dict[str, str]]:
        with self.server.lock:
            self.server.hits[self.path] += 1
            status, body, stored = self.server.pages.get(
                self.path, (404, b"not here", {"Content-Type": "text/plain"}))
        headers = dict(stored)
        return status, body, headers.pop("Content-Type"), headers
