"""The HTTP seam: the private-address guard (proved without connecting anywhere), redirects,
caps and deadlines against local servers."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response as WResponse

from wpnotify.connections import (
    AddressGuard,
    AddressRefused,
    GuardedConnection,
    Pool,
    is_public,
)
from wpnotify.errors import SendError
from wpnotify.http import Http, retry_after
from wpnotify.settings import HttpSettings

REFUSED = ["0.0.0.0", "10.1.2.3", "100.64.0.1", "127.0.0.1", "127.255.0.9", "169.254.169.254",
           "172.16.5.4", "172.31.255.255", "192.0.0.8", "192.0.2.1", "192.88.99.1",
           "192.168.1.1", "198.18.0.1", "198.51.100.7", "203.0.113.9", "224.0.0.1",
           "239.255.255.250", "240.0.0.1", "255.255.255.255", "::", "::1", "::ffff:127.0.0.1",
           "::ffff:10.0.0.1", "64:ff9b::7f00:1", "64:ff9b:1::1", "2001::1", "2001:db8::1",
           "2002:7f00:1::1", "fc00::1", "fd12:3456::1", "fe80::1", "fec0::1", "ff02::1",
           "100::1",
           # NAT64 judged by the IPv4 address inside: 10.0.0.1, 169.254.169.254, 100.64.0.1;
           # the local-use prefix (RFC 8215) refused whatever it embeds
           "64:ff9b::a00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::6440:1", "64:ff9b::ffff:ffff",
           "64:ff9b::", "64:ff9b:1::5db8:d822", "64:ff9b:1:ffff::1"]
ALLOWED = ["93.184.216.34", "1.1.1.1", "8.8.8.8", "2606:4700:4700::1111",
           "::ffff:93.184.216.34",
           # NAT64 (RFC 6052) of public IPv4 addresses: on an IPv6-only host behind DNS64,
           # every IPv4-only receiver has such an address (issue 12, item 18a)
           "64:ff9b::5db8:d822", "64:ff9b::101:101", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED)
def test_private_and_reserved_addresses_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_unicast_addresses_are_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.fixture()
def no_connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Fails the test if any TCP connection is attempted."""
    attempts: list[Any] = []

    def refuse(address: Any, *args: Any, **kwargs: Any) -> None:
        attempts.append(address)
        raise AssertionError(f"a connection to {address} was attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://localhost:8080/", "http://10.0.0.1/x",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://2130706433/", "http://0x7f.1/", "http://127.1/", "http://017700000001/",
    "http://100.64.0.1/", "http://[fe80::1]/", "http://[64:ff9b::7f00:1]/",
    "http://192.168.0.1:8080/", "http://0.0.0.0/", "https://10.0.0.1/",
])
def test_guard_refuses_before_connecting(url: str, no_connections: list[Any]) -> None:
    http = Http(HttpSettings())
    with pytest.raises(SendError) as caught:
        http.get(url)
    assert caught.value.code == "refused-address" and caught.value.skip
    assert no_connections == []


def test_one_private_answer_among_public_ones_refuses_the_host(
        no_connections: list[Any]) -> None:
    """DNS rebinding by several answers: every address is checked, not just the first."""
    def resolve(host: str, port: int, *args: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port))]

    http = Http(HttpSettings(), resolve=resolve)
    with pytest.raises(SendError) as caught:
        http.get("http://rebind.example/")
    assert "10.0.0.5" in caught.value.message
    assert no_connections == []


def test_allowed_networks_open_only_themselves() -> None:
    guard = AddressGuard(False, ("10.1.2.0/24",))
    assert guard.allows(ipaddress.ip_address("10.1.2.3"))
    assert not guard.allows(ipaddress.ip_address("10.1.3.3"))
    assert not guard.allows(ipaddress.ip_address("127.0.0.1"))


def local(**overrides: Any) -> Http:
    """A client that may reach 127.0.0.1 only (the test servers), nothing else private."""
    return Http(HttpSettings(allowed_networks=("127.0.0.1/32",), **overrides))


def test_every_redirect_hop_meets_the_guard(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hop").respond_with_data(
        "", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    with pytest.raises(SendError) as caught:
        local().get(httpserver.url_for("/hop"))
    assert caught.value.code == "refused-address"


def test_redirects_are_followed_and_capped(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=301,
                                                      headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("done", content_type="text/plain")
    httpserver.expect_request("/loop").respond_with_data("", status=302,
                                                         headers={"Location": "/loop"})
    resp = local().get(httpserver.url_for("/a"))
    assert (resp.status, resp.body, resp.url) == (200, b"done", httpserver.url_for("/b"))
    with pytest.raises(SendError) as caught:
        local().get(httpserver.url_for("/loop"))
    assert caught.value.code == "too-many-redirects" and caught.value.permanent


def test_credentials_do_not_follow_a_redirect_to_another_origin(
        httpserver: HTTPServer) -> None:
    other = HTTPServer(host="127.0.0.1", port=0)
    other.start()
    try:
        seen: list[str | None] = []

        def record(request: Any) -> WResponse:
            seen.append(request.headers.get("Authorization"))
            return WResponse("elsewhere")

        other.expect_request("/x").respond_with_handler(record)
        httpserver.expect_request("/start").respond_with_data(
            "", status=302, headers={"Location": other.url_for("/x")})
        resp = local().get(httpserver.url_for("/start"), auth=("admin", "s3cret pass"))
        assert resp.body == b"elsewhere"
        assert seen == [None]
    finally:
        other.stop()


def test_posts_never_follow_redirects(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/ping", method="POST").respond_with_data(
        "", status=307, headers={"Location": "/elsewhere"})
    resp = local().post(httpserver.url_for("/ping"), data={"a": "b"})
    assert resp.status == 307


def test_bodies_stop_at_the_cap(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * (3 * 1024 * 1024))
    resp = local(max_body_bytes=100_000).get(httpserver.url_for("/big"))
    assert resp.truncated and len(resp.body) == 100_000


def test_no_cookies_are_kept_and_the_user_agent_is_ours(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/set").respond_with_data("", headers={"Set-Cookie": "s=1; Path=/"})
    seen: list[tuple[str | None, str | None]] = []
    httpserver.expect_request("/check").respond_with_handler(
        lambda r: (seen.append((r.headers.get("Cookie"), r.headers.get("User-Agent"))),
                   WResponse("ok"))[1])
    http = local(user_agent="wpnotify-test/1")
    http.get(httpserver.url_for("/set"))
    http.get(httpserver.url_for("/check"))
    assert seen == [(None, "wpnotify-test/1")]


@pytest.fixture()
def trickle_server() -> Iterator[str]:
    """Answers headers at once, then one byte every 0.2 s for 20 s."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                             b"Content-Length: 100\r\n\r\n")
                for _ in range(100):
                    if stop.wait(0.2):
                        break
                    try:
                        conn.sendall(b"x")
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/"
    stop.set()
    thread.join(5)
    server.close()


def test_a_trickling_server_hits_the_total_deadline(trickle_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(SendError) as caught:
        local(timeout=1.0).get(trickle_server)
    assert caught.value.code == "timeout" and not caught.value.permanent
    assert time.monotonic() - started < 5


def test_connection_refused_is_transient() -> None:
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SendError) as caught:
        local().get(f"http://127.0.0.1:{port}/")
    assert caught.value.code == "connect" and not caught.value.permanent
    assert caught.value.unreachable  # the host, not one page: its other notifications wait


def test_a_connection_cut_mid_answer_is_not_the_host_being_down() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def cut() -> None:
        conn, _ = server.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        conn.close()

    thread = threading.Thread(target=cut, daemon=True)
    thread.start()
    with pytest.raises(SendError) as caught:
        local().get(f"http://127.0.0.1:{server.getsockname()[1]}/")
    thread.join(5)
    server.close()
    assert caught.value.code == "connect" and not caught.value.unreachable


def test_connections_are_kept_alive_and_reused() -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    ports: list[int] = []

    class KeepAlive(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            ports.append(self.client_address[1])
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAlive)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        http = local()
        bodies = [http.get(f"http://127.0.0.1:{server.server_address[1]}/k").body
                  for _ in range(5)]
    finally:
        server.shutdown()
        server.server_close()
    assert bodies == [b"ok"] * 5
    assert len(ports) == 5 and len(set(ports)) == 1  # one connection for all five


@pytest.mark.parametrize("value,expected", [("120", 120.0), (None, None), ("soon", None),
                                            ("999999", 86400.0),
                                            ("Thu, 01 Jan 2099 00:00:00 GMT", 86400.0),
                                            ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0)])
def test_retry_after(value: str | None, expected: float | None) -> None:
    assert retry_after(value) == expected


def test_non_http_urls_are_refused() -> None:
    for url in ("ftp://example.org/", "file:///etc/passwd", "http://user:pw@example.org/"):
        with pytest.raises(SendError) as caught:
            Http(HttpSettings()).get(url)
        assert caught.value.code == "bad-url"


@pytest.fixture()
def tls_server(tmp_path: Any) -> Iterator[tuple[str, str]]:
    """An HTTPS server on 127.0.0.1 with a fresh self-signed certificate for that address."""
    import http.server
    import ssl
    import subprocess

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)

    class Hello(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/", str(cert)
    server.shutdown()
    server.server_close()


def test_tls_certificates_are_checked(tls_server: tuple[str, str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    from wpnotify import connections

    url, cert = tls_server
    with pytest.raises(SendError) as caught:
        local().get(url)
    assert caught.value.code == "tls" and "CERTIFICATE_VERIFY_FAILED" in caught.value.message
    trusting = ssl.create_default_context(cafile=cert)
    monkeypatch.setattr(connections, "tls_context", lambda: trusting)
    http = local()
    assert [http.get(url).body for _ in range(2)] == [b"hello", b"hello"]


def test_non_ascii_paths_are_percent_encoded_and_encoded_ones_kept() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    lines: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            lines.append(conn.recv(4096).split(b"\r\n", 1)[0])
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = server.getsockname()[1]
    assert local().get(f"http://127.0.0.1:{port}/caf\u00e9/x%2Fy?q=\u00fc").body == b"ok"
    thread.join(5)
    server.close()
    assert lines == [b"GET /caf%C3%A9/x%2Fy?q=%C3%BC HTTP/1.1"]


def test_a_kept_alive_connection_the_server_closed_is_replaced() -> None:
    """A server that closes each connection after one answer, without saying so: the second
    request finds its pooled connection dead and goes again on a new one."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    served: list[int] = []

    def serve() -> None:
        try:
            for _ in range(3):  # a third connection would be one too many
                conn, _ = server.accept()
                with conn:
                    conn.recv(4096)
                    served.append(1)  # before the answer: the client may be done at once
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            pass  # the listening socket closed by the test, while waiting for that third

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    http = local()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/"
    assert http.get(url).body == b"ok"
    time.sleep(0.2)  # the server has closed the first connection by now
    assert http.get(url).body == b"ok"
    server.close()
    assert len(served) == 2


def test_the_pool_never_hands_out_an_idle_connection_the_server_has_closed() -> None:
    """Checked before reuse (no request is written to a dead socket and sent again): a peer
    that closed, or sent bytes nobody asked for, makes an idle connection unusable."""
    pool = Pool(AddressGuard(False, ()), hosts=4, per_host=4)
    key = ("http", "example.org", 80)
    pairs = [socket.socketpair() for _ in range(3)]
    connections = []
    for ours, _ in pairs:
        connection = GuardedConnection("example.org", 80, pool.guard, 1.0)
        connection.sock = ours
        connections.append(connection)
    live, closed, chatty = connections
    pairs[1][1].close()                      # the server closed it while it was idle
    pairs[2][1].sendall(b"HTTP/1.1 408 Request Timeout\r\n\r\n")  # unasked-for bytes
    for connection in (live, closed, chatty):
        pool.give_back(key, connection)
    assert pool.take(key, 1.0) is live and live.reused
    assert closed.sock is None and chatty.sock is None  # closed, never used
    fresh = pool.take(key, 1.0)
    assert fresh not in connections and fresh.sock is None  # nothing idle left: a new one
    pairs[0][1].close()
    live.close()


def test_an_internationalised_host_is_resolved_in_its_ascii_form() -> None:
    asked: list[str] = []

    def resolve(host: str, port: int, *args: Any) -> list[Any]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", port))]

    http = Http(HttpSettings(), resolve=resolve)
    with pytest.raises(SendError) as caught:
        http.get("http://b\u00fccher.example/")
    assert asked == ["xn--bcher-kva.example"]
    assert caught.value.code == "refused-address"  # 192.0.2.1 is a documentation address


def loopback_resolver(host: str, port: int, *args: Any) -> list[Any]:
    """Every name is 127.0.0.1, and 127.0.0.N is itself: no DNS, no other address."""
    address = host if host.startswith("127.") else "127.0.0.1"
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]


def test_the_configured_site_is_trusted_on_loopback(httpserver: HTTPServer) -> None:
    """The site's exact origin connects with no allowed_networks (issue 12, item 16), by
    name or by address, whatever the case of its name."""
    httpserver.expect_request("/wp-json/").respond_with_data("site")
    port = httpserver.port
    for site in (f"http://127.0.0.1:{port}", f"http://LocalHost:{port}/blog/"):
        http = Http(HttpSettings(), loopback_resolver, trusted_origins=[site])
        host = "127.0.0.1" if "127" in site else "localhost"
        assert http.get(f"http://{host}:{port}/wp-json/", trusted=True).body == b"site"


def test_trust_replaces_the_trusted_origins(httpserver: HTTPServer) -> None:
    """A site added while the daemon runs is trusted as a configured one; a removed one no
    longer, not even over a connection kept alive from when it was (issue 15)."""
    httpserver.expect_request("/wp-json/").respond_with_data("site")
    url = httpserver.url_for("/wp-json/")
    http = Http(HttpSettings())
    with pytest.raises(SendError) as caught:
        http.get(url, trusted=True)
    assert caught.value.code == "refused-address"
    http.trust([httpserver.url_for("/")])
    assert http.get(url, trusted=True).body == b"site"  # its connection is kept idle
    http.trust([])
    with pytest.raises(SendError) as caught:
        http.get(url, trusted=True)
    assert caught.value.code == "refused-address"
    assert len(httpserver.log) == 1


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8081/",      # the same host on another port
    "https://127.0.0.1:8080/",     # another scheme
    "http://127.0.0.2:8080/",      # another loopback host
    "http://other.example:8080/",  # another name for the same address
    "http://10.0.0.1:8080/",       # another private address
])
def test_only_the_exact_origin_is_trusted(url: str, no_connections: list[Any]) -> None:
    http = Http(HttpSettings(), loopback_resolver, trusted_origins=["http://127.0.0.1:8080/"])
    with pytest.raises(SendError) as caught:
        http.get(url, trusted=True)
    assert caught.value.code == "refused-address"
    assert no_connections == []


def test_a_redirect_from_the_trusted_site_to_another_private_origin_is_refused(
        httpserver: HTTPServer) -> None:
    with socket.socket() as other:  # a private origin nobody trusts: never connected to
        other.bind(("127.0.0.1", 0))
        elsewhere = f"http://127.0.0.1:{other.getsockname()[1]}/internal"
    httpserver.expect_request("/hop").respond_with_data("", status=302,
                                                        headers={"Location": elsewhere})
    http = Http(HttpSettings(), trusted_origins=[httpserver.url_for("/")])
    with pytest.raises(SendError) as caught:
        http.get(httpserver.url_for("/hop"), trusted=True)
    assert caught.value.code == "refused-address"


def test_a_receivers_request_to_the_trusted_origin_is_refused(
        httpserver: HTTPServer) -> None:
    """Trust is for the site's own source: a link, an endpoint or a pingback POST to the
    site's origin from the sending side meets the guard like any other private address
    (else a receiver could point wpnotify at the site's private pages)."""
    httpserver.expect_request("/wp-admin/").respond_with_data("private")
    http = Http(HttpSettings(), trusted_origins=[httpserver.url_for("/")])
    for request in (lambda: http.get(httpserver.url_for("/wp-admin/")),
                    lambda: http.post(httpserver.url_for("/wp-admin/"), data={"a": "b"})):
        with pytest.raises(SendError) as caught:
            request()
        assert caught.value.code == "refused-address"
    assert httpserver.log == []


def test_a_receivers_redirect_into_the_trusted_origin_is_refused(
        httpserver: HTTPServer) -> None:
    """A receiver (allowed by allowed_networks here) answering 302 to the site's origin."""
    site = HTTPServer(host="127.0.0.2", port=0)
    site.expect_request("/wp-admin/").respond_with_data("private")
    site.start()
    try:
        httpserver.expect_request("/page").respond_with_data(
            "", status=302, headers={"Location": site.url_for("/wp-admin/")})
        http = Http(HttpSettings(allowed_networks=("127.0.0.1/32",)),
                    trusted_origins=[site.url_for("/")])
        with pytest.raises(SendError) as caught:
            http.get(httpserver.url_for("/page"))
        assert caught.value.code == "refused-address"
        assert site.log == []
    finally:
        site.stop()


def test_a_trusted_connection_is_never_lent_to_a_receivers_request(
        httpserver: HTTPServer) -> None:
    """The pool keeps the site's kept-alive connections apart from the guarded ones."""
    httpserver.expect_request("/wp-json/").respond_with_data("site")
    http = Http(HttpSettings(), trusted_origins=[httpserver.url_for("/")])
    assert http.get(httpserver.url_for("/wp-json/"), trusted=True).body == b"site"
    with pytest.raises(SendError) as caught:
        http.get(httpserver.url_for("/wp-json/"))
    assert caught.value.code == "refused-address"
    assert len(httpserver.log) == 1


def test_trusted_origins_come_from_the_configured_sites() -> None:
    from wpnotify.service import client
    from wpnotify.settings import Settings, SiteSettings

    settings = Settings(sites=(
        SiteSettings(name="a", url="http://localhost", username="u", password="p"),
        SiteSettings(name="b", url="https://blog.example:8443/wp/", username="u",
                     password="p")))
    http = client(settings)  # what every command uses
    assert http.pool.trusted == {("http", "localhost", 80), ("https", "blog.example", 8443)}


def test_the_guard_judges_a_nat64_address_by_the_ipv4_inside(no_connections: list[Any]) -> None:
    """Decided without connecting: a DNS64 answer for a public host passes, one for a
    private host is refused, and allowed_networks apply to the address inside."""
    def dns64(host: str, port: int, *args: Any) -> list[Any]:
        inside = {"public.example": "5db8:d822", "private.example": "a01:203"}[host]
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (f"64:ff9b::{inside}", port, 0, 0))]

    guard = AddressGuard(False, (), dns64)
    assert guard.addresses("public.example", 80) == ["64:ff9b::5db8:d822"]
    with pytest.raises(AddressRefused):
        guard.addresses("private.example", 80)
    assert AddressGuard(False, ("10.1.2.0/24",), dns64).addresses("private.example", 80) == \
        ["64:ff9b::a01:203"]
