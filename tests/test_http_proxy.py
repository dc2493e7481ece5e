"""`[http] proxy`: every request goes through a CONNECT tunnel of the operator's proxy, after
wpnotify's own address guard has passed the target; a proxy that refuses, lies, trickles or
floods ends in one bounded, clear SendError. Loopback only: the proxy here tunnels to 127.x
and nowhere else."""

from __future__ import annotations

import base64
import contextlib
import http.server
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from wpnotify import connections
from wpnotify.connections import Proxy, _authority
from wpnotify.errors import ConfigError, SendError
from wpnotify.http import Http, proxy_of
from wpnotify.settings import HttpSettings, load_settings

LOOPBACK = ("127.0.0.0/8",)  # the test receivers' addresses, allowed one by one


def _head(conn: socket.socket, cap: int = 64 * 1024) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < cap:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


class ConnectProxy:
    """A small threaded CONNECT proxy on 127.0.0.1:0. ``answer`` decides what it does with a
    client: by default it tunnels to the (loopback) target it was asked for."""

    def __init__(self, answer: Callable[[ConnectProxy, socket.socket], None] | None = None
                 ) -> None:
        self.answer = answer or ConnectProxy.tunnel
        self.connections = 0
        self.heads: list[bytes] = []
        self.upstream = b""  # what clients sent inside their tunnels
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def lines(self) -> list[str]:
        return [head.split(b"\r\n", 1)[0].decode() for head in self.heads]

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the client went away: nothing to do
            self.answer(self, conn)

    def read_connect(self, conn: socket.socket) -> tuple[str, int]:
        head = _head(conn)
        self.heads.append(head)
        target = head.split(b" ")[1].decode()
        host, _, port = target.rpartition(":")
        return host.strip("[]"), int(port)

    def tunnel(self, conn: socket.socket) -> None:
        host, port = self.read_connect(conn)
        host = "127.0.0.1" if host == "localhost" else host  # its own lookup
        # This proxy enforces what README asks of a real one, here inverted: loopback only.
        assert host.startswith("127."), f"the test proxy was asked for {host}"
        with socket.create_connection((host, port), 5) as upstream:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            threading.Thread(target=self._pipe, args=(upstream, conn, False),
                             daemon=True).start()
            self._pipe(conn, upstream, True)

    def _pipe(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if record:
                    self.upstream += chunk
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):  # already shut
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def replying(raw: bytes) -> Callable[[ConnectProxy, socket.socket], None]:
    """A proxy that answers every CONNECT with ``raw`` and closes."""
    def answer(proxy: ConnectProxy, conn: socket.socket) -> None:
        proxy.read_connect(conn)
        conn.sendall(raw)
    return answer


@pytest.fixture()
def proxy() -> Iterator[ConnectProxy]:
    server = ConnectProxy()
    yield server
    server.close()


def client(proxy_url: str, resolve: Callable[..., list[Any]] = socket.getaddrinfo, *,
           trusted: tuple[str, ...] = (), networks: tuple[str, ...] = LOOPBACK,
           **more: Any) -> Http:
    return Http(HttpSettings(proxy=proxy_url, allowed_networks=networks, **more), resolve,
                trusted_origins=trusted)


@pytest.fixture()
def site(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/page").respond_with_data("hello", content_type="text/plain")
    return httpserver


# --- Through the proxy ----------------------------------------------------------------------

def test_an_http_request_goes_through_a_connect_tunnel(proxy: ConnectProxy,
                                                       site: HTTPServer) -> None:
    response = client(proxy.url).get(site.url_for("/page"))
    assert (response.status, response.body) == (200, b"hello")
    assert proxy.lines == [f"CONNECT 127.0.0.1:{site.port} HTTP/1.1"]
    assert f"Host: 127.0.0.1:{site.port}".encode() in proxy.heads[0]
    assert b"GET /page HTTP/1.1" in proxy.upstream  # origin-form inside the tunnel


def test_a_kept_alive_tunnel_is_reused_for_its_target_only(proxy: ConnectProxy) -> None:
    one, two = kept_alive(b"one"), kept_alive(b"two")
    first, second = (f"http://127.0.0.1:{s.server_address[1]}/" for s in (one, two))
    try:
        http = client(proxy.url)
        bodies = [http.get(url).body for url in (first, first, second, first, second)]
    finally:
        for server in (one, two):
            server.shutdown()
            server.server_close()
    assert bodies == [b"one", b"one", b"two", b"one", b"two"]
    assert proxy.lines == [f"CONNECT 127.0.0.1:{s.server_address[1]} HTTP/1.1"
                           for s in (one, two)]


def test_credentials_go_to_the_proxy_and_stay_out_of_reprs(proxy: ConnectProxy,
                                                           site: HTTPServer,
                                                           tmp_path: Path) -> None:
    secret = tmp_path / "proxy.password"
    secret.write_text("s3cret-pw\n")
    settings = HttpSettings(proxy=proxy.url, allowed_networks=LOOPBACK,
                            proxy_username="fleet", proxy_password_file=secret)
    Http(settings).get(site.url_for("/page"))
    token = base64.b64encode(b"fleet:s3cret-pw").decode()
    assert f"Proxy-Authorization: Basic {token}".encode() in proxy.heads[0]
    assert b"Proxy-Authorization" not in proxy.upstream  # never to the target
    for shown in (repr(settings), str(settings), repr(proxy_of(settings))):
        assert "s3cret" not in shown and token not in shown


# --- HTTPS: TLS to the target inside the tunnel ---------------------------------------------

class Hello(http.server.BaseHTTPRequestHandler):
    """Answers every GET with the server's ``body``, keeping the connection open."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802  # the name http.server calls
        body: bytes = self.server.body  # type: ignore[attr-defined]  # set by kept_alive
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def kept_alive(body: bytes, tls: ssl.SSLContext | None = None
               ) -> http.server.ThreadingHTTPServer:
    """An HTTP/1.1 server on 127.0.0.1:0 that keeps connections alive (werkzeug's closes)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    server.body = body  # type: ignore[attr-defined]  # read by Hello
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.fixture()
def tls_site(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
             ) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 whose certificate (for that address only) the client
    trusts."""
    cert, key = certificate
    trusting = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(connections, "tls_context", lambda: trusting)

    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(cert, key)
    server = kept_alive(b"secure", serving)
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_https_is_tls_to_the_target_inside_the_tunnel(proxy: ConnectProxy,
                                                      tls_site: str) -> None:
    response = client(proxy.url).get(tls_site + "/x")
    assert (response.status, response.body) == (200, b"secure")
    assert proxy.lines == [f"CONNECT {tls_site.removeprefix('https://')} HTTP/1.1"]
    assert proxy.upstream[:1] == b"\x16"  # a TLS handshake record: the proxy saw no request
    assert b"GET /x" not in proxy.upstream


def test_the_certificate_is_checked_against_the_target_name(proxy: ConnectProxy,
                                                            tls_site: str) -> None:
    """The tunnel is to localhost; the certificate names only 127.0.0.1."""
    url = tls_site.replace("127.0.0.1", "localhost") + "/x"
    only_v4 = lambda host, *rest: socket.getaddrinfo(  # noqa: E731  # a one-line resolver
        "127.0.0.1" if host == "localhost" else host, *rest)
    with pytest.raises(SendError) as caught:
        client(proxy.url, only_v4).get(url)
    assert caught.value.code == "tls" and not caught.value.permanent
    assert proxy.lines == [f"CONNECT localhost:{url.split(':')[2].split('/')[0]} HTTP/1.1"]


# --- The guard runs first, on wpnotify's own lookup -----------------------------------------

def fake_dns(names: dict[str, str]) -> Callable[..., list[Any]]:
    def resolve(host: str, port: int, *args: Any) -> list[Any]:
        if host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port))]
        return socket.getaddrinfo(host, port, *args)
    return resolve


@pytest.mark.parametrize("url", ["http://10.0.0.1/", "https://169.254.169.254/latest/",
                                 "http://metadata.example/", "https://intranet.example:8443/",
                                 "http://[fe80::1]/"])
def test_a_refused_target_never_reaches_the_proxy(proxy: ConnectProxy, url: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    dns = fake_dns({"metadata.example": "169.254.169.254", "intranet.example": "10.1.2.3"})
    attempts: list[Any] = []
    real = socket.create_connection
    monkeypatch.setattr(socket, "create_connection",
                        lambda address, *a, **k: attempts.append(address) or real(address, *a, **k))
    with pytest.raises(SendError) as caught:
        client(proxy.url, dns).get(url)
    assert caught.value.code == "refused-address" and caught.value.skip
    assert attempts == [] and proxy.connections == 0


def test_a_redirect_hop_meets_the_guard_before_the_proxy(proxy: ConnectProxy,
                                                         httpserver: HTTPServer) -> None:
    httpserver.expect_request("/go").respond_with_data(
        "", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    with pytest.raises(SendError) as caught:
        client(proxy.url).get(httpserver.url_for("/go"))
    assert caught.value.code == "refused-address"
    assert proxy.lines == [f"CONNECT 127.0.0.1:{httpserver.port} HTTP/1.1"]


def test_a_site_on_a_private_address_is_read_directly(proxy: ConnectProxy,
                                                      site: HTTPServer) -> None:
    """Its exemption holds, and the proxy (told to refuse private targets) is not asked."""
    origin = site.url_for("/").rstrip("/")
    http = client(proxy.url, trusted=(origin,), networks=())
    assert http.get(site.url_for("/page"), trusted=True).body == b"hello"
    assert proxy.connections == 0
    with pytest.raises(SendError) as caught:  # a receiver's request to it: guarded
        http.get(site.url_for("/page"))
    assert caught.value.code == "refused-address" and proxy.connections == 0


def test_a_site_the_guard_allows_anyway_is_read_through_the_proxy(proxy: ConnectProxy,
                                                                  site: HTTPServer) -> None:
    origin = site.url_for("/").rstrip("/")
    client(proxy.url, trusted=(origin,)).get(site.url_for("/page"), trusted=True)
    assert proxy.lines == [f"CONNECT 127.0.0.1:{site.port} HTTP/1.1"]


# --- A proxy that refuses, lies, trickles or floods -----------------------------------------

@pytest.mark.parametrize(("raw", "code", "permanent", "words"), [
    (b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
     "proxy-auth", False, "407 Proxy Authentication Required (set or fix [http] "
     "proxy_username and proxy_password_file)"),
    (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", "proxy", False,
     "refused the tunnel: 502 Bad Gateway"),
    (b"HTTP/1.0 503 \x1b[31mdown\r\n\r\n", "proxy", False, "503 ?[31mdown"),
    (b"HTTP/1.1 403 Forbidden\r\n\r\n", "proxy-refused", True, "403 Forbidden"),
    (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "proxy", False, "did not answer CONNECT with HTTP"),
    (b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 200 OK\r\n", "proxy", False, "sent data before"),
    (b"HTTP/1.1 200 Conn", "proxy", False, "closed the connection without answering"),
    (b"", "proxy", False, "closed the connection without answering"),
])
def test_a_failed_tunnel_is_one_clear_error(site: HTTPServer, raw: bytes, code: str,
                                            permanent: bool, words: str) -> None:
    bad = ConnectProxy(replying(raw))
    try:
        with pytest.raises(SendError) as caught:
            client(bad.url).get(site.url_for("/page"))
    finally:
        bad.close()
    error = caught.value
    assert (error.code, error.permanent) == (code, permanent)
    assert error.message.startswith(f"cannot reach 127.0.0.1:{site.port} through the proxy: "
                                    f"the proxy 127.0.0.1:{bad.port} ")
    assert words in error.message and "\n" not in error.message and "\x1b" not in error.message
    assert site.log == []  # the target was never reached


def test_a_proxy_that_trickles_its_answer_is_cut_off_at_connect_timeout(
        site: HTTPServer) -> None:
    def trickle(proxy: ConnectProxy, conn: socket.socket) -> None:
        proxy.read_connect(conn)
        for byte in b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 1000:
            conn.sendall(bytes([byte]))
            time.sleep(0.02)
    slow = ConnectProxy(trickle)
    started = time.monotonic()
    try:
        with pytest.raises(SendError) as caught:
            client(slow.url, connect_timeout=0.5, timeout=10).get(site.url_for("/page"))
    finally:
        slow.close()
    assert time.monotonic() - started < 2
    assert caught.value.code == "proxy" and "did not answer CONNECT in time" in str(caught.value)


def test_the_total_deadline_still_ends_a_trickle_inside_the_tunnel(site: HTTPServer) -> None:
    def drip(proxy: ConnectProxy, conn: socket.socket) -> None:
        proxy.read_connect(conn)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        _head(conn)
        for byte in b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 1000:
            conn.sendall(bytes([byte]))
            time.sleep(0.02)
    slow = ConnectProxy(drip)
    started = time.monotonic()
    try:
        with pytest.raises(SendError) as caught:
            client(slow.url, connect_timeout=0.5, timeout=1).get(site.url_for("/page"))
    finally:
        slow.close()
    assert time.monotonic() - started < 2.5
    assert caught.value.code == "timeout"


def test_a_header_flood_from_the_proxy_is_capped(site: HTTPServer) -> None:
    sent: list[int] = []

    def flood(proxy: ConnectProxy, conn: socket.socket) -> None:
        proxy.read_connect(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        line = b"X-Flood: " + b"a" * 90 + b"\r\n"
        for _ in range(1000):  # 100 KB of headers, no end
            conn.sendall(line)
            sent.append(len(line))
    noisy = ConnectProxy(flood)
    try:
        with pytest.raises(SendError) as caught:
            client(noisy.url).get(site.url_for("/page"))
    finally:
        noisy.close()
    assert caught.value.code == "proxy" and "more than 16 KiB of headers" in str(caught.value)


def test_a_proxy_that_is_down_is_a_retryable_unreachable(site: HTTPServer) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(SendError) as caught:
        client(f"http://127.0.0.1:{port}").get(site.url_for("/page"))
    error = caught.value
    assert (error.code, error.permanent, error.unreachable) == ("proxy", False, True)
    assert f"cannot connect to the proxy 127.0.0.1:{port}: Connection refused" in error.message


def test_an_ipv6_target_is_bracketed_in_connect() -> None:
    assert _authority("::1", 443) == "[::1]:443"
    assert _authority("example.org", 80) == "example.org:80"
    assert str(Proxy("fd00::3", 3128, "Basic c2VjcmV0")) == "[fd00::3]:3128"
    assert "c2VjcmV0" not in repr(Proxy("fd00::3", 3128, "Basic c2VjcmV0"))


# --- Settings ----------------------------------------------------------------------------

SITE = ('[[sites]]\nname = "blog"\nurl = "https://blog.example"\nusername = "u"\n'
        'password = "p"\n')


@pytest.mark.parametrize(("value", "words"), [
    ("https://proxy.internal:3128", "only http:// proxies are supported"),
    ("socks5://proxy.internal:1080", "https:// and socks proxies are not"),
    ("http://proxy.internal", "give the proxy's port"),
    ("http://proxy.internal:3128/path", "without path, query or fragment"),
    ("http://proxy.internal:3128?x=1", "without path, query or fragment"),
    ("proxy.internal:3128", "must be http://host:port"),
    ("http://proxy.internal:99999", "a bad port"),
    ("http://fleet:hunter2@proxy.internal:3128", "use [http] proxy_username and "
     "proxy_password_file"),
])
def test_a_bad_proxy_setting_is_one_line_naming_the_fix(tmp_path: Path, value: str,
                                                        words: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[http]\nproxy = "{value}"\n' + SITE)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    message = str(caught.value)
    assert "http.proxy: " in message and words in message
    assert "\n" not in message and "hunter2" not in message


def test_proxy_credentials_are_both_or_neither_and_need_a_proxy(tmp_path: Path) -> None:
    (tmp_path / "proxy.password").write_text("pw\n")
    config = tmp_path / "config.toml"
    cases = {
        'proxy = "http://p.internal:3128"\nproxy_username = "u"\n':
            "set both proxy_username and proxy_password_file",
        'proxy_username = "u"\nproxy_password_file = "proxy.password"\n':
            "need [http] proxy",
        'proxy = "http://p.internal:3128"\nproxy_username = "u"\n'
        'proxy_password_file = "missing"\n': "proxy_password_file",
        'proxy = "http://p.internal:3128"\nproxy_username = "a:b"\n'
        'proxy_password_file = "proxy.password"\n': "must not contain ':'",
    }
    for http_table, words in cases.items():
        config.write_text("[http]\n" + http_table + SITE)
        with pytest.raises(ConfigError) as caught:
            load_settings(config, environ={})
        assert words in str(caught.value) and "\n" not in str(caught.value)
    config.write_text('[http]\nproxy = "http://p.internal:3128/"\nproxy_username = "u"\n'
                      'proxy_password_file = "proxy.password"\n' + SITE)
    settings = load_settings(config, environ={})  # the file relative to the config's folder
    assert settings.http.proxy == "http://p.internal:3128"
    assert settings.http.proxy_password() == "pw"
    config.write_text(SITE)
    overridden = load_settings(config, environ={"WPNOTIFY_HTTP__PROXY": "http://q.internal:8080"})
    assert proxy_of(overridden.http) == Proxy("q.internal", 8080)
