"""Connections for the HTTP seam: the private-address guard, and kept-alive connections
opened only to addresses it allowed.

The guard runs at connect time, on the address actually connected: the name is resolved once,
every answer is checked, and the socket is opened to a checked address while the Host header, TLS
SNI and certificate check keep the name (no DNS-rebinding window).

Connections are the standard library's ``http.client`` ones (it parses status lines, headers,
chunked bodies), pooled here per (scheme, host, port): about a third of the CPU per request of
urllib3's layers over the same code (bench/run.py; the sender is CPU-bound on small machines).
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import re
import select
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# PROTOCOLS.md §6. `is_global` alone misses several of these on Python 3.11 (cpython#113171).
_REFUSED = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "64:ff9b:1::/48", "2001::/32", "2001:db8::/32",
    "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "100::/64",
))
REDIRECTS = frozenset({301, 302, 303, 307, 308})


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix


def embedded(ip: Address) -> Address:
    """The IPv4 address an IPv4-mapped (``::ffff:a.b.c.d``) or NAT64 (``64:ff9b::a.b.c.d``)
    address reaches, else ``ip`` itself. Behind DNS64 every IPv4-only host has a NAT64
    address, so it is judged by the IPv4 address inside; the local-use prefix
    64:ff9b:1::/48 (RFC 8215) can lead anywhere and stays refused."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_public(ip: Address) -> bool:
    """True when ``ip`` is a globally routable unicast address that wpnotify may contact."""
    ip = embedded(ip)
    if not ip.is_global or ip.is_multicast:
        return False
    return not any(ip in net for net in _REFUSED if net.version == ip.version)


class AddressRefused(Exception):
    """Raised inside the connection when a destination is not allowed; becomes a SendError."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"refused to connect to {host} ({address}): a private or reserved "
                         "address (allow it with [http] allowed_networks)")


class AddressGuard:
    """Resolves a host once and returns the addresses a connection may use."""

    def __init__(self, allow_private: bool, allowed_networks: tuple[str, ...] = (),
                 resolve: Callable[..., list[Any]] = socket.getaddrinfo) -> None:
        self.allow_private = allow_private
        self.allowed = tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks)
        self._resolve = resolve

    def allows(self, ip: Address) -> bool:
        inner = embedded(ip)
        return (self.allow_private or is_public(ip)
                or any(address in net for net in self.allowed for address in {ip, inner}
                       if net.version == address.version))

    def addresses(self, host: str, port: int, trusted: bool = False) -> list[str]:
        """Every address of ``host``, all checked; one refused address refuses the host.
        ``trusted``: the connection is to a configured site's own origin, which may be
        private or loopback (WordPress itself always lets a site reach its own host)."""
        found = self.resolve(host, port)
        for address in found:
            if not trusted and not self.allows(ipaddress.ip_address(address.split("%", 1)[0])):
                raise AddressRefused(host, address)
        return found

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address of ``host``, unchecked (for the operator's own proxy)."""
        infos: list[Any] = self._resolve(host, port, 0, socket.SOCK_STREAM)
        return list(dict.fromkeys(info[4][0] for info in infos))

    def all_allowed(self, addresses: list[str]) -> bool:
        """True when every address would pass without a site's exemption."""
        return all(self.allows(ipaddress.ip_address(a.split("%", 1)[0])) for a in addresses)


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy that every connection is tunnelled through with CONNECT.
    ``authorization``: the Proxy-Authorization header's value (a secret: kept out of repr)."""

    host: str
    port: int
    authorization: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{_authority(self.host, self.port)}"


class ProxyFailed(Exception):
    """The proxy did not open the tunnel: ``status`` is its answer's (None: no valid answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


PROXY_REPLY_CAP = 16 * 1024  # the proxy's status line and headers, at most
_PROXY_STATUS = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: ([^\r\n]*))?\r?\n")


def _authority(host: str, port: int) -> str:
    """host:port as a request target writes it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Unreachable(Exception):
    """No connection to the host could be made (no such name, refused, no route)."""


class ConnectTimeout(Exception):
    """The TCP (or TLS) connection was not made in time."""


class GuardedConnection(http.client.HTTPConnection):
    """An HTTP connection that opens its socket only to an address the guard allowed; with a
    ``proxy``, through a CONNECT tunnel to the same host name once the guard allowed it."""

    def __init__(self, host: str, port: int, guard: AddressGuard,
                 connect_timeout: float, trusted: bool = False,
                 proxy: Proxy | None = None) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self.guard = guard
        self.connect_timeout = connect_timeout
        self.trusted = trusted  # to a configured site's origin: private addresses allowed
        self.reused = False  # served a request before: the server may have closed it since
        self.proxy = proxy

    def dropped(self) -> bool:
        """True when an idle connection cannot carry a request: the server closed it (or sent
        what nobody asked for). One poll(2), no waiting."""
        if self.sock is None:
            return True
        try:
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def connect(self) -> None:
        """The guard runs first, on wpnotify's own resolution, proxy or not: a refused target
        never reaches the proxy. A configured site's origin that only its exemption lets
        through (a private or loopback address) is connected directly, never through the
        proxy, which is told to refuse such addresses (README, "Sending through an egress
        proxy")."""
        until = time.monotonic() + self.connect_timeout  # proxy and CONNECT answer included
        addresses = _resolved(self.host, lambda: self.guard.addresses(
            self.host, self.port, self.trusted))
        proxy = self.proxy
        if proxy is None or (self.trusted and not self.guard.all_allowed(addresses)):
            self.sock = _open(addresses, self.port, self.host, until)
            return
        shown = f"the proxy {proxy}"
        try:
            proxied = _resolved(shown, lambda: self.guard.resolve(proxy.host, proxy.port))
            self.sock = _open(proxied, proxy.port, shown, until)
        except ConnectTimeout as exc:
            raise ProxyFailed(str(exc)) from None
        except Unreachable as exc:
            text = str(exc)
            raise ProxyFailed(text if shown in text else f"cannot connect to {shown}: {text}"
                              ) from None
        try:
            _tunnel(self.sock, _authority(self.host, self.port), proxy, until)
        except OSError as exc:  # reset, or shut down by the request's deadline
            raise ProxyFailed(f"the proxy {proxy} broke the connection: "
                              f"{exc.strerror or exc}") from None


def _resolved(name: str, resolve: Callable[[], list[str]]) -> list[str]:
    try:
        return resolve()
    except socket.gaierror as exc:
        raise Unreachable(f"cannot resolve {name}: {exc.strerror or exc}") from None


def _open(addresses: list[str], port: int, name: str, until: float) -> socket.socket:
    """A TCP connection to the first of ``addresses`` that answers before ``until``."""
    error: OSError | None = None
    for address in addresses:
        left = until - time.monotonic()
        if left <= 0:
            raise ConnectTimeout(f"connecting to {name} timed out")
        try:
            sock = socket.create_connection((address, port), left)
        except TimeoutError:
            raise ConnectTimeout(f"connecting to {name} timed out") from None
        except OSError as exc:
            error = exc
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise Unreachable(str(error.strerror if error and error.strerror else error))


def _tunnel(sock: socket.socket, target: str, proxy: Proxy, until: float) -> None:
    """Asks the proxy for a tunnel to ``target`` (host:port) and reads its answer: at most
    PROXY_REPLY_CAP bytes, all before ``until`` (a proxy that trickles is cut off too)."""
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if proxy.authorization is not None:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    reply = bytearray()
    while (end := reply.find(b"\r\n\r\n", max(len(reply) - 4096 - 3, 0))) < 0:
        if len(reply) > PROXY_REPLY_CAP:
            raise ProxyFailed(f"the proxy {proxy} answered CONNECT with more than "
                              f"{PROXY_REPLY_CAP // 1024} KiB of headers")
        left = until - time.monotonic()
        if left <= 0:
            raise ProxyFailed(f"the proxy {proxy} did not answer CONNECT in time")
        sock.settimeout(left)
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            raise ProxyFailed(f"the proxy {proxy} did not answer CONNECT in time") from None
        if not chunk:
            raise ProxyFailed(f"the proxy {proxy} closed the connection without answering "
                              "CONNECT")
        reply += chunk
    _proxy_answer(bytes(reply), end, proxy)


def _proxy_answer(reply: bytes, end: int, proxy: Proxy) -> None:
    """Checks the proxy's answer to CONNECT: a 2xx status and nothing after its headers (the
    target cannot have spoken yet: the client speaks first, in HTTP and in TLS)."""
    found = _PROXY_STATUS.match(reply)
    if found is None:
        raise ProxyFailed(f"the proxy {proxy} did not answer CONNECT with HTTP")
    status = int(found.group(1))
    reason = re.sub(r"[^\x20-\x7e]", "?", (found.group(2) or b"").decode("latin-1"))[:100]
    if not 200 <= status < 300:
        raise ProxyFailed(f"the proxy {proxy} refused the tunnel: {status} {reason}".rstrip(),
                          status)
    if len(reply) > end + 4:
        raise ProxyFailed(f"the proxy {proxy} sent data before the tunnel was used")


class GuardedTLSConnection(GuardedConnection):
    """The same over TLS: certificate and name checked against the host name."""

    default_port = http.client.HTTPS_PORT

    def connect(self) -> None:
        super().connect()
        try:
            self.sock = tls_context().wrap_socket(self.sock, server_hostname=self.host)
        except TimeoutError:
            raise ConnectTimeout(f"TLS handshake with {self.host} timed out") from None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The system's CA certificates, loaded once, when the first TLS connection needs them."""
    return ssl.create_default_context()


Key = tuple[str, str, int]


class Pool:
    """Idle kept-alive connections, at most ``per_host`` for each of the last ``hosts`` hosts;
    shared by threads, each connection used by one request at a time."""

    def __init__(self, guard: AddressGuard, hosts: int, per_host: int,
                 trusted: frozenset[Key] = frozenset(), proxy: Proxy | None = None) -> None:
        """``proxy``: every new connection is a tunnel through it, one per connection, kept
        by its target's key like a direct one (tunnels to different targets never mix)."""
        self.guard = guard
        self.proxy = proxy
        self.hosts = hosts
        self.per_host = per_host
        self.trusted = trusted  # the configured sites' origins: see AddressGuard.addresses
        # Connections to a trusted origin are kept apart: one made by a site's source (and
        # allowed onto a private address) is never handed to a receiver's request.
        self._idle: OrderedDict[tuple[Key, bool], list[GuardedConnection]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: Key, connect_timeout: float, trusted: bool = False
             ) -> GuardedConnection:
        """An idle connection to ``key`` that is still open, else a new, unconnected one.
        Idle connections the server has closed meanwhile are closed here, unused: a request
        never goes out on one that is known to be dead. ``trusted``: a site's source asks,
        so a configured site's origin may be private (any other key is guarded as ever)."""
        trusted = trusted and key in self.trusted
        slot = (key, trusted)
        while True:
            with self._lock:
                idle = self._idle.get(slot)
                if not idle:
                    break
                self._idle.move_to_end(slot)
                connection = idle.pop()
            if connection.dropped():
                connection.close()
                continue
            connection.reused = True
            return connection
        scheme, host, port = key
        kind = GuardedTLSConnection if scheme == "https" else GuardedConnection
        return kind(host, port, self.guard, connect_timeout, trusted=trusted, proxy=self.proxy)

    def give_back(self, key: Key, connection: GuardedConnection) -> None:
        """Keeps a connection whose last answer was read to its end, for the next request."""
        dropped: list[GuardedConnection] = []
        slot = (key, connection.trusted)
        with self._lock:
            idle = self._idle.setdefault(slot, [])
            self._idle.move_to_end(slot)
            if connection.trusted and key not in self.trusted:
                dropped.append(connection)  # its origin's trust was withdrawn meanwhile
            elif len(idle) < self.per_host:
                idle.append(connection)
            else:
                dropped.append(connection)
            while len(self._idle) > self.hosts:
                dropped += self._idle.popitem(last=False)[1]
        for extra in dropped:
            extra.close()

    def trust(self, trusted: frozenset[Key]) -> None:
        """Replaces the trusted origins (sites added or removed while a daemon runs). The
        idle connections made for an origin no longer trusted are closed: none of them is
        handed out again as one that may reach a private address."""
        with self._lock:
            gone = self.trusted - trusted
            self.trusted = trusted  # one reference swap: ``take`` reads one set or the other
            idle = [c for key in gone for c in self._idle.pop((key, True), [])]
        for connection in idle:
            connection.close()

    def forget(self, key: Key) -> None:
        """Closes the idle connections of one host."""
        with self._lock:
            idle = self._idle.pop((key, False), []) + self._idle.pop((key, True), [])
        for connection in idle:
            connection.close()

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, OrderedDict()
        for connections in idle.values():
            for connection in connections:
                connection.close()
