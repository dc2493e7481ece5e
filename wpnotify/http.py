"""The one HTTP seam. Every request wpnotify makes goes through ``Http``, which owns the
connection pools, the User-Agent, timeouts, body caps, the redirect policy and the
private-address guard. It is built on urllib3 directly: requests' conveniences (cookies, proxies
from the environment, .netrc) are all things wpnotify must not do, and they cost about 1 ms of
CPU per request (bench/run.py).

The guard runs at connect time, on the address actually connected: the name is resolved once,
every answer is checked, and the socket is opened to a checked address while the Host header, TLS
SNI and certificate check keep the name (no DNS-rebinding window). Redirects are followed here,
hop by hop, so every hop meets the same guard and credentials never follow a redirect to another
host.
"""

from __future__ import annotations

import base64
import contextlib
import heapq
import ipaddress
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

from wpnotify.errors import SendError
from wpnotify.settings import HttpSettings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# PROTOCOLS.md §6. `is_global` alone misses several of these on Python 3.11 (cpython#113171).
_REFUSED = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
    "::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "2001::/32", "2001:db8::/32",
    "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8", "100::/64",
))
REDIRECTS = frozenset({301, 302, 303, 307, 308})


def is_public(ip: Address) -> bool:
    """True when ``ip`` is a globally routable unicast address that wpnotify may contact."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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
        return (self.allow_private or is_public(ip)
                or any(ip in net for net in self.allowed if net.version == ip.version))

    def addresses(self, host: str, port: int) -> list[str]:
        """Every address of ``host``, all checked; one refused address refuses the host."""
        infos = self._resolve(host, port, 0, socket.SOCK_STREAM)
        found = list(dict.fromkeys(info[4][0] for info in infos))
        for address in found:
            if not self.allows(ipaddress.ip_address(address.split("%", 1)[0])):
                raise AddressRefused(host, address)
        return found


class _GuardedConnectionMixin:
    guard: AddressGuard
    _dns_host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        try:
            addresses = self.guard.addresses(self._dns_host, self.port)
        except socket.gaierror as exc:
            raise NewConnectionError(self, f"cannot resolve {self._dns_host}: {exc}") from exc  # type: ignore[arg-type]  # urllib3 wants its own connection type
        error: OSError | None = None
        for address in addresses:
            try:
                return urllib3.util.connection.create_connection(
                    (address, self.port), self.timeout,
                    source_address=self.source_address, socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"connect to {self._dns_host} timed out") from exc
            except OSError as exc:
                error = exc
        raise NewConnectionError(self, f"cannot connect to {self._dns_host}: {error}")  # type: ignore[arg-type]  # as above


def _pool_manager(guard: AddressGuard, hosts: int, per_host: int) -> urllib3.PoolManager:
    """Kept-alive connections, up to ``per_host`` to each of the last ``hosts`` hosts, every
    one opened through the guard."""
    attrs = {"guard": guard}
    http_conn = type("GuardedHTTPConnection", (_GuardedConnectionMixin, HTTPConnection), attrs)
    https_conn = type("GuardedHTTPSConnection", (_GuardedConnectionMixin, HTTPSConnection),
                      attrs)
    manager = urllib3.PoolManager(num_pools=hosts, maxsize=per_host, block=False, retries=False)
    manager.pool_classes_by_scheme = {
        "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
        "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
    }
    return manager


@dataclass(frozen=True)
class Response:
    """What came back: final URL, status, headers and the (possibly capped) body."""

    url: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    truncated: bool = False

    def header(self, name: str) -> str | None:
        """The first header of that name (case-insensitive), or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def media_type(self) -> str:
        """The Content-Type without parameters, lower-cased ("" when absent)."""
        return (self.header("Content-Type") or "").split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        value = self.header("Content-Type") or ""
        if "charset" not in value.lower():
            return None  # the common case, without email's header parser
        message = Message()
        message["content-type"] = value
        return message.get_param("charset")  # type: ignore[return-value]  # a str or None here

    def text(self) -> str:
        """The body as text: the declared charset when Python knows it, else UTF-8, lenient."""
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


HeaderCheck = Callable[[int, Mapping[str, str]], bool]
# Sent with every request, as requests did before wpnotify used urllib3 directly.
BASE_HEADERS = {"Accept": "*/*", "Accept-Encoding": "gzip, deflate"}


class _Watchdog:
    """One thread that runs each registered callback when its deadline passes, unless it was
    cancelled first: a total deadline per request without a timer thread per request."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._live: set[int] = set()
        self._count = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, callback: Callable[[], None]) -> int:
        token = next(self._count)
        with self._wake:
            earliest = not self._heap or deadline < self._heap[0][0]
            heapq.heappush(self._heap, (deadline, token, callback))
            self._live.add(token)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wpnotify-deadlines",
                                                daemon=True)
                self._thread.start()
            if earliest:  # else the thread wakes up early enough already
                self._wake.notify()
        return token

    def cancel(self, token: int) -> None:
        with self._wake:
            self._live.discard(token)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][1] not in self._live:
                    heapq.heappop(self._heap)  # cancelled: drop it
                if not self._heap:
                    self._wake.wait()
                    continue
                deadline, token, callback = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                heapq.heappop(self._heap)
                self._live.discard(token)
            callback()


class Http:
    """The HTTP client every part of wpnotify shares, safe to use from several threads: each
    request takes a kept-alive connection of its own from the pool."""

    def __init__(self, settings: HttpSettings,
                 resolve: Callable[..., list[Any]] = socket.getaddrinfo) -> None:
        self.settings = settings
        guard = AddressGuard(settings.allow_private_addresses, settings.allowed_networks, resolve)
        self.pools = _pool_manager(guard, hosts=max(64, 2 * settings.concurrency),
                                   per_host=settings.per_host_concurrency + 2)
        self.headers = {**BASE_HEADERS, "User-Agent": settings.user_agent}
        self._watchdog = _Watchdog()

    def close(self) -> None:
        self.pools.clear()

    def get(self, url: str, *, headers: Mapping[str, str] | None = None,
            auth: tuple[str, str] | None = None, max_bytes: int | None = None,
            read_body: HeaderCheck | None = None) -> Response:
        """GET with redirects followed here (each hop guarded). ``read_body(status, headers)``
        may decline the body, e.g. for media types, so it is never downloaded."""
        return self._request("GET", url, headers=headers, auth=auth, max_bytes=max_bytes,
                             follow=True, read_body=read_body)

    def post(self, url: str, *, data: Mapping[str, str] | bytes | None = None,
             headers: Mapping[str, str] | None = None, auth: tuple[str, str] | None = None,
             max_bytes: int = 64 * 1024, json_body: Any = None) -> Response:
        """POST without following redirects: clients turn a redirected POST into a GET."""
        return self._request("POST", url, headers=headers, auth=auth, max_bytes=max_bytes,
                             follow=False, data=data, json_body=json_body)

    def _request(self, method: str, url: str, *, headers: Mapping[str, str] | None,
                 auth: tuple[str, str] | None, max_bytes: int | None, follow: bool,
                 read_body: HeaderCheck | None = None, data: Any = None,
                 json_body: Any = None) -> Response:
        cap = max_bytes or self.settings.max_body_bytes
        deadline = time.monotonic() + self.settings.timeout
        origin = _origin(url)
        for _hop in range(self.settings.max_redirects + 1):
            _check_url(url)
            send_auth = auth if _origin(url) == origin else None
            resp = self._send(method, url, headers, send_auth, data, json_body, deadline)
            location = resp.headers.get("Location")
            if follow and resp.status in REDIRECTS and location:
                _discard(resp)
                url = urljoin(url, location.strip())
                if resp.status == 303:
                    method, data, json_body = "GET", None, None
                continue
            return self._finish(resp, url, cap, deadline, read_body)
        raise SendError(f"more than {self.settings.max_redirects} redirects from {url}",
                        code="too-many-redirects", permanent=True)

    def _send(self, method: str, url: str, headers: Mapping[str, str] | None,
              auth: tuple[str, str] | None, data: Any, json_body: Any,
              deadline: float) -> urllib3.BaseHTTPResponse:
        remaining = max(deadline - time.monotonic(), 0.1)
        sent = {**self.headers, **(headers or {})}
        body: bytes | None = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent.setdefault("Content-Type", "application/json")
        elif isinstance(data, Mapping):
            body = urlencode(data, doseq=True).encode()
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif data is not None:
            body = bytes(data)
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            sent["Authorization"] = f"Basic {token}"
        try:
            return self.pools.urlopen(
                method, url, body=body, headers=sent, redirect=False, retries=False,
                preload_content=False, decode_content=True,
                timeout=urllib3.Timeout(connect=min(self.settings.connect_timeout, remaining),
                                        read=remaining))
        except AddressRefused as exc:
            raise SendError(str(exc), code="refused-address", permanent=True, skip=True) from None
        except NewConnectionError as exc:  # before its base class: refused, no route, no name
            raise SendError(f"cannot connect to {_host(url)}: {_reason(exc)}", code="connect",
                            permanent=False, unreachable=True) from None
        except ConnectTimeoutError:
            raise SendError(f"connecting to {_host(url)} timed out", code="connect-timeout",
                            permanent=False, unreachable=True) from None
        except ReadTimeoutError:
            raise SendError(f"{_host(url)} did not answer in time", code="timeout",
                            permanent=False) from None
        except SSLError as exc:
            raise SendError(f"TLS error with {_host(url)}: {_reason(exc)}", code="tls",
                            permanent=False) from None
        except (HTTPError, OSError) as exc:
            raise SendError(f"cannot connect to {_host(url)}: {_reason(exc)}", code="connect",
                            permanent=False) from None

    def _finish(self, resp: urllib3.BaseHTTPResponse, url: str, cap: int, deadline: float,
                read_body: HeaderCheck | None) -> Response:
        headers = tuple(resp.headers.items())
        if read_body is not None and not read_body(resp.status, resp.headers):
            _discard(resp)
            return Response(url, resp.status, headers, b"")
        # A total deadline: the read timeout is per socket read, so a server that trickles
        # bytes would never time out. The watchdog aborts the response when time is up.
        ended = threading.Lock()  # taken by whichever ends the request first: reader or watchdog

        def expire() -> None:
            if ended.acquire(blocking=False):  # never abort a connection back in the pool
                _abort(resp)

        watch = self._watchdog.watch(deadline, expire)
        chunks: list[bytes] = []
        size = 0
        truncated = False
        failure: BaseException | None = None
        try:
            for chunk in resp.stream(64 * 1024):  # decoded bytes: gzip bombs hit the cap
                chunks.append(chunk)
                size += len(chunk)
                if size > cap:
                    truncated = True
                    break
        except (HTTPError, OSError, AttributeError, ValueError) as exc:
            # AttributeError/ValueError: urllib3 reading from a response the watchdog closed.
            failure = exc
        finally:
            expired = not ended.acquire(blocking=False)
            self._watchdog.cancel(watch)
            if truncated or failure is not None or expired:
                _discard(resp)  # the rest is unread: this connection cannot be reused
            else:
                resp.release_conn()  # kept alive for the next request to this host
        if expired:
            raise SendError(f"{_host(url)} took longer than {self.settings.timeout:g} s",
                            code="timeout", permanent=False)
        if failure is not None:
            raise SendError(f"reading from {_host(url)} failed: {_reason(failure)}",
                            code="connect", permanent=False)
        return Response(url, resp.status, headers, b"".join(chunks)[:cap], truncated)


def _discard(resp: urllib3.BaseHTTPResponse) -> None:
    """Closes a response whose body is not read to the end, with its connection."""
    with contextlib.suppress(Exception):  # already closed, or the socket is gone
        resp.close()
    with contextlib.suppress(Exception):
        resp.release_conn()


def _abort(resp: urllib3.BaseHTTPResponse) -> None:
    """Wakes a read blocked on this response's socket (close() alone does not, on Linux)."""
    connection = getattr(resp, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed by the other side
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        resp.close()


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SendError(f"not an http(s) URL: {url[:200]}", code="bad-url", permanent=True,
                        skip=True)
    if parts.username or parts.password:
        raise SendError(f"URL with user info refused: {_host(url)}", code="bad-url",
                        permanent=True, skip=True)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


def _host(url: str) -> str:
    return urlsplit(url).netloc or url[:100]


def _reason(exc: BaseException) -> str:
    """The innermost cause, short: 'Connection refused', not three nested reprs."""
    while exc.__context__ is not None and exc.__cause__ is None and exc.args == ():
        exc = exc.__context__
    inner = exc
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, BaseException):
            inner = arg
    reason = getattr(inner, "reason", None)
    text = str(reason if reason is not None else inner)
    if "Errno 111" in text or "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "no such host"
    return text.split(": ", 1)[-1][:200]


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped at 24 h."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), 86400.0)
