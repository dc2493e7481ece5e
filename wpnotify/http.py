"""The one HTTP seam. Every request wpnotify makes goes through ``Http``, which owns the
connections, the User-Agent, timeouts, body caps, the redirect policy and the private-address
guard (``connections``). No cookies, no proxies or credentials from the environment: only the
configured ``[http] proxy``, tunnelled through with CONNECT after the guard has run.

Redirects are followed here, hop by hop, so every hop meets the same guard and credentials never
follow a redirect to another host. Bodies are read up to a cap, decompressed up to the same cap
(a gzip bomb stops there), and within a total deadline that also ends a server that trickles.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import heapq
import http.client
import itertools
import json
import re
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, quote, urlencode, urljoin, urlsplit

from wpnotify.connections import (
    AddressGuard,
    AddressRefused,
    ConnectTimeout,
    GuardedConnection,
    Key,
    Pool,
    Proxy,
    ProxyFailed,
    Unreachable,
)
from wpnotify.errors import SendError
from wpnotify.settings import HttpSettings
from wpnotify.urls import redact

REDIRECTS = frozenset({301, 302, 303, 307, 308})
READ_CHUNK = 64 * 1024
URL_SAFE = "!#$%&'()*+,/:;=?@[]~"  # kept as they are in a request target (as requests does)
# A kept-alive connection the server closed meanwhile fails like this before any answer.
STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


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
        """The Content-Type's charset parameter, read in one forward pass (the email
        package's parameter parser is quadratic on a hostile 64 KiB header)."""
        found = _CHARSET.search(self.header("Content-Type") or "")
        if found is None:
            return None
        return (found.group(1) if found.group(1) is not None else found.group(2)).strip()

    def text(self) -> str:
        """The body as text: the declared charset when it is one Python decodes text with,
        else UTF-8; lenient either way (a byte that does not decode becomes U+FFFD)."""
        return decode_text(self.body, self.charset)


def decode_text(body: bytes, charset: str | None) -> str:
    """``body`` decoded as ``charset`` when that names a text encoding, else as UTF-8, never
    raising: ``charset=idna`` or ``undefined`` (codecs, but not charsets, which raise on any
    input or take quadratic time) and unknown names fall back to UTF-8."""
    codec = "utf-8"
    if charset:
        with contextlib.suppress(LookupError):  # an unknown name: UTF-8
            codec = codecs.lookup(charset).name
        if codec in NOT_CHARSETS:
            codec = "utf-8"
    try:
        return body.decode(codec, errors="replace")
    except (LookupError, UnicodeError, ValueError, TypeError):  # a codec for bytes only
        return body.decode("utf-8", errors="replace")


# Python codecs that are no character set of a web page.
NOT_CHARSETS = frozenset({"idna", "punycode", "undefined", "unicode-escape",
                          "raw-unicode-escape"})
_CHARSET = re.compile(r"""(?:^|;)[\t ]*charset[\t ]*=[\t ]*(?:"([^"]*)"|([^;]*))""",
                      re.I | re.A)


HeaderCheck = Callable[[int, Mapping[str, str]], bool]
# Sent with every request (what the requests library sent, which wpnotify used at first).
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
                 resolve: Callable[..., list[Any]] = socket.getaddrinfo, *,
                 trusted_origins: Iterable[str | Key] = ()) -> None:
        """``trusted_origins``: the configured sites (URLs, or (scheme, host, port) keys),
        whose exact origin (scheme, host and port; not their other ports, other hosts or where
        they redirect) may be on a private or loopback address, for requests marked
        ``trusted`` (the sites' own sources): a daemon on the WordPress host with
        ``url = "http://localhost"`` is the common case; WordPress lets a site reach itself."""
        self.settings = settings
        guard = AddressGuard(settings.allow_private_addresses, settings.allowed_networks, resolve)
        self.pool = Pool(guard, hosts=max(64, 2 * settings.concurrency),
                         per_host=settings.per_host_concurrency + 2,
                         trusted=frozenset(_origin_keys(trusted_origins)),
                         proxy=proxy_of(settings))
        self.headers = {**BASE_HEADERS, "User-Agent": settings.user_agent}
        self._watchdog = _Watchdog()

    def trust(self, origins: Iterable[str | Key]) -> None:
        """Replaces the trusted origins (see ``__init__``): a site added while the daemon
        runs is trusted as the configured ones are, a removed one no longer. Thread-safe: a
        request asks once, at its connection, and gets the old set or the new one."""
        self.pool.trust(frozenset(_origin_keys(origins)))

    def close(self) -> None:
        self.pool.clear()

    def addresses(self, host: str) -> list[str]:
        """Every address ``host`` resolves to through the seam's resolver, unchecked and
        without connecting: inbound verification compares a sender's IP with them. Raises
        OSError (socket.gaierror) when the name does not resolve."""
        return self.pool.guard.resolve(host, 0)

    def get(self, url: str, *, headers: Mapping[str, str] | None = None,
            auth: tuple[str, str] | None = None, max_bytes: int | None = None,
            read_body: HeaderCheck | None = None, trusted: bool = False) -> Response:
        """GET with redirects followed here (each hop guarded). ``read_body(status, headers)``
        may decline the body, e.g. for media types, so it is never downloaded. ``trusted``:
        a request of the site's own source (see _request)."""
        return self._request("GET", url, headers=headers, auth=auth, max_bytes=max_bytes,
                             follow=True, read_body=read_body, trusted=trusted)

    def post(self, url: str, *, data: Mapping[str, str] | bytes | None = None,
             headers: Mapping[str, str] | None = None, auth: tuple[str, str] | None = None,
             max_bytes: int = 64 * 1024, json_body: Any = None,
             trusted: bool = False) -> Response:
        """POST without following redirects: clients turn a redirected POST into a GET."""
        return self._request("POST", url, headers=headers, auth=auth, max_bytes=max_bytes,
                             follow=False, data=data, json_body=json_body, trusted=trusted)

    def _request(self, method: str, url: str, *, headers: Mapping[str, str] | None,
                 auth: tuple[str, str] | None, max_bytes: int | None, follow: bool,
                 read_body: HeaderCheck | None = None, data: Any = None,
                 json_body: Any = None, trusted: bool = False) -> Response:
        """``trusted``: the request is the watched site's own source reading it (or its
        bridge), so a configured site's origin may be on a private or loopback address; only
        on the first hop's origin, never after a redirect elsewhere. A receiver's request is
        never trusted: a link, an endpoint or a redirect into the site's origin meets the
        guard like any other address."""
        cap = max_bytes or self.settings.max_body_bytes
        deadline = time.monotonic() + self.settings.timeout
        origin: Key | None = None
        for _hop in range(self.settings.max_redirects + 1):
            parts, here = _target(url)  # parsed once per hop
            origin = origin or here
            send_auth = auth if here == origin else None
            # The deadline is armed before the connection is made: a receiver that drips its
            # status line and headers, or answers 100 Continue forever, is cut off too.
            watch = _Deadline(self._watchdog, deadline)
            try:
                exchange = self._send(method, url, parts, here, headers, send_auth, data,
                                      json_body, watch, trusted and here == origin)
                location = exchange.response.getheader("Location")
                if not (follow and exchange.response.status in REDIRECTS and location):
                    return self._finish(exchange, url, cap, watch, read_body)
                exchange.discard()
                if watch.end():
                    raise self._timeout(url)
            finally:
                watch.end()
            url = redirect_target(url, location)
            if exchange.response.status == 303:
                method, data, json_body = "GET", None, None
        raise SendError(f"more than {self.settings.max_redirects} redirects from "
                        f"{redact(url)[:200]}", code="too-many-redirects", permanent=True)

    def _timeout(self, url: str) -> SendError:
        return SendError(f"{_host(url)} took longer than {self.settings.timeout:g} s",
                         code="timeout", permanent=False)

    def _send(self, method: str, url: str, parts: SplitResult, key: Key,
              headers: Mapping[str, str] | None, auth: tuple[str, str] | None, data: Any,
              json_body: Any, watch: _Deadline, trusted: bool) -> _Exchange:
        # Non-ASCII in the path or query is sent percent-encoded (UTF-8), as browsers do;
        # what is already percent-encoded stays as it is.
        target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                       safe=URL_SAFE)
        body, sent = self._body(headers, auth, data, json_body)
        connection = self.pool.take(key, self.settings.connect_timeout, trusted=trusted)
        try:
            return self._exchange(connection, key, method, target, body, sent, watch, url)
        except STALE:
            connection.close()
            if watch.expired:
                raise self._timeout(url) from None
            if not connection.reused:
                raise SendError(f"{_host(url)} closed the connection without answering",
                                code="connect", permanent=False) from None
        # The server closed a kept-alive connection just as it was reused (the pool drops
        # those closed before; the others of this host likely go too): once more on a new
        # one. Had it read the request, a receiver would take the second as a duplicate,
        # which counts as sent.
        self.pool.forget(key)
        connection = self.pool.take(key, self.settings.connect_timeout, trusted=trusted)
        try:
            return self._exchange(connection, key, method, target, body, sent, watch, url)
        except STALE:
            connection.close()
            if watch.expired:
                raise self._timeout(url) from None
            raise SendError(f"{_host(url)} closed the connection without answering",
                            code="connect", permanent=False) from None

    def _body(self, headers: Mapping[str, str] | None, auth: tuple[str, str] | None,
              data: Any, json_body: Any) -> tuple[bytes | None, dict[str, str]]:
        """The request's body and headers: JSON, a form, or raw bytes; Basic auth."""
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
        return body, sent

    def _connect(self, connection: GuardedConnection, watch: _Deadline, url: str) -> None:
        """Connects a new connection (a kept-alive one only gets the hop's time left); every
        failure becomes the SendError that says whether to retry."""
        remaining = max(watch.deadline - time.monotonic(), 0.1)
        try:
            if connection.sock is None:
                connection.connect_timeout = min(self.settings.connect_timeout, remaining)
                connection.connect()
            assert connection.sock is not None
            connection.sock.settimeout(remaining)
        except AddressRefused as exc:
            connection.close()
            raise SendError(str(exc), code="refused-address", permanent=True, skip=True) from None
        except Unreachable as exc:
            connection.close()
            raise SendError(f"cannot connect to {_host(url)}: {_short(str(exc))}",
                            code="connect", permanent=False, unreachable=True) from None
        except ConnectTimeout:
            connection.close()
            raise SendError(f"connecting to {_host(url)} timed out", code="connect-timeout",
                            permanent=False, unreachable=True) from None
        except ProxyFailed as exc:
            connection.close()
            if watch.expired:
                raise self._timeout(url) from None
            raise _proxy_error(exc, url) from None
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            connection.close()
            if watch.expired:
                raise self._timeout(url) from None
            if isinstance(exc, ssl.SSLError | ssl.CertificateError):
                raise SendError(f"TLS error with {_host(url)}: {_reason(exc)}", code="tls",
                                permanent=False) from None
            raise SendError(f"cannot connect to {_host(url)}: {_reason(exc)}", code="connect",
                            permanent=False, unreachable=True) from None

    def _exchange(self, connection: GuardedConnection, key: Key, method: str, target: str,
                  body: bytes | None, headers: dict[str, str], watch: _Deadline,
                  url: str) -> _Exchange:
        watch.attach(connection)
        self._connect(connection, watch, url)
        try:
            connection.request(method, target, body=body, headers=headers)
            return _Exchange(self.pool, key, connection, connection.getresponse())
        except STALE:
            raise
        except (http.client.HTTPException, OSError, ValueError, AttributeError) as exc:
            # ValueError/AttributeError: http.client on a socket the deadline shut down.
            connection.close()
            raise self._failed(url, exc, watch) from None

    def _failed(self, url: str, exc: BaseException, watch: _Deadline) -> SendError:
        """The error for an exchange that broke before the answer's body."""
        if watch.expired:
            return self._timeout(url)
        if isinstance(exc, TimeoutError):
            return SendError(f"{_host(url)} did not answer in time", code="timeout",
                             permanent=False)
        if isinstance(exc, ssl.SSLError | ssl.CertificateError):
            return SendError(f"TLS error with {_host(url)}: {_reason(exc)}", code="tls",
                             permanent=False)
        return SendError(f"cannot connect to {_host(url)}: {_reason(exc)}", code="connect",
                         permanent=False)

    def _finish(self, exchange: _Exchange, url: str, cap: int, watch: _Deadline,
                read_body: HeaderCheck | None) -> Response:
        resp = exchange.response
        headers = tuple(resp.msg.items())
        if read_body is not None and not read_body(resp.status, resp.msg):  # type: ignore[arg-type]  # HTTPMessage: a case-insensitive mapping
            exchange.discard()
            return Response(url, resp.status, headers, b"")
        body = b""
        truncated = False
        failure: BaseException | None = None
        try:
            body, truncated = _read(resp, cap)
        except (http.client.HTTPException, OSError, ValueError, AttributeError,
                zlib.error) as exc:
            # ValueError/AttributeError: http.client reading from a response the watchdog
            # closed; zlib.error: a body that is not what its Content-Encoding says.
            failure = exc
        finally:
            # Ended before the connection may go back to the pool: an expiry can no longer
            # touch it once it serves another request.
            expired = watch.end()
            if truncated or failure is not None or expired:
                exchange.discard()  # the rest is unread: this connection cannot be reused
            else:
                exchange.release()
        if expired:
            raise self._timeout(url)
        if failure is not None:
            raise SendError(f"reading from {_host(url)} failed: {_reason(failure)}",
                            code="connect", permanent=False)
        return Response(url, resp.status, headers, body, truncated)


class _Deadline:
    """The total deadline of one request hop, from before the connection is made to the last
    byte of the body. The socket timeout is per read, so a server that trickles bytes (its
    status line, headers, 100 Continue after 100 Continue, or body) would never time out:
    when time is up the watchdog shuts the current connection's socket, which wakes any read
    blocked on it. ``end()`` is called before a connection goes back to the pool, so an
    expiry never touches a connection that serves another request."""

    def __init__(self, watchdog: _Watchdog, deadline: float) -> None:
        self.deadline = deadline
        self.expired = False
        self._watchdog = watchdog
        self._lock = threading.Lock()
        self._ended = False
        self._connection: GuardedConnection | None = None
        self._token = watchdog.watch(deadline, self._expire)

    def attach(self, connection: GuardedConnection) -> None:
        """The connection this hop now uses (a stale pooled one may be replaced)."""
        with self._lock:
            self._connection = connection
            expired = self.expired
        if expired:
            _abort(connection)

    def end(self) -> bool:
        """Stops the watch (idempotent); True when the deadline had already passed."""
        with self._lock:
            first = not self._ended
            self._ended = True
            expired = self.expired
        if first:
            self._watchdog.cancel(self._token)
        return expired

    def _expire(self) -> None:
        with self._lock:
            if self._ended:
                return
            self.expired = True
            connection = self._connection
        if connection is not None:
            _abort(connection)


def _abort(connection: GuardedConnection) -> None:
    """Wakes a read blocked on this connection's socket (close() alone does not, on Linux)."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed, by either side
            sock.shutdown(socket.SHUT_RDWR)


@dataclass
class _Exchange:
    """A request in flight: its connection goes back to the pool only if the answer was read
    to its end and the server keeps it open."""

    pool: Pool
    key: Key
    connection: GuardedConnection
    response: http.client.HTTPResponse

    def release(self) -> None:
        if self.response.will_close or not self.response.isclosed():
            self.connection.close()
        else:
            self.pool.give_back(self.key, self.connection)

    def discard(self) -> None:
        with contextlib.suppress(Exception):  # already closed, or the socket is gone
            self.response.close()
        self.connection.close()


def _read(resp: http.client.HTTPResponse, cap: int) -> tuple[bytes, bool]:
    """The body, decoded (gzip, deflate), at most ``cap`` bytes; True when there was more."""
    coding = (resp.getheader("Content-Encoding") or "").strip().lower()
    decoder = (zlib.decompressobj(zlib.MAX_WBITS | 32) if coding in ("gzip", "x-gzip")
               else zlib.decompressobj() if coding == "deflate" else None)
    chunks: list[bytes] = []
    size = 0
    while True:
        raw = resp.read1(READ_CHUNK)
        if not raw:
            if resp.length:  # the connection ended before Content-Length said it would
                raise http.client.IncompleteRead(b"", resp.length)
            resp.close()  # read to its end (http.client does not mark it so by itself)
            break
        data = raw
        if decoder is not None:
            data = decoder.decompress(raw, cap + 1 - size)
            if decoder.unconsumed_tail:  # more output than the cap allows
                chunks.append(data)
                return b"".join(chunks)[:cap], True
        chunks.append(data)
        size += len(data)
        if size > cap:
            return b"".join(chunks)[:cap], True
    if decoder is not None:
        tail = decoder.flush()
        chunks.append(tail)
        size += len(tail)
    return b"".join(chunks)[:cap], size > cap


def proxy_of(settings: HttpSettings) -> Proxy | None:
    """The ``[http] proxy`` to tunnel through (None: connect directly), with its Basic
    credentials when the settings give them."""
    if not settings.proxy:
        return None
    parts = urlsplit(settings.proxy)
    assert parts.hostname is not None and parts.port is not None  # settings checked both
    authorization = None
    if settings.proxy_username:
        pair = f"{settings.proxy_username}:{settings.proxy_password()}".encode()
        authorization = "Basic " + base64.b64encode(pair).decode("ascii")
    host = parts.hostname.encode("idna").decode("ascii")
    return Proxy(host, parts.port, authorization)


def _proxy_error(exc: ProxyFailed, url: str) -> SendError:
    """What a failed tunnel means for the notification. 407 (credentials) and every other
    failure of the proxy itself wait for a retry: fixing the proxy settings or the proxy
    lets them go out. A 403 is the proxy's policy on this target (a private address after its
    own lookup, a port it does not open), as final as wpnotify's own guard."""
    message = f"cannot reach {_host(url)} through the proxy: {exc}"
    if exc.status == 407:
        return SendError(message + " (set or fix [http] proxy_username and "
                         "proxy_password_file)", code="proxy-auth", permanent=False,
                         unreachable=True)
    if exc.status == 403:
        return SendError(message, code="proxy-refused", permanent=True)
    return SendError(message, code="proxy", permanent=False, unreachable=True)


def _short(text: str) -> str:
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "no such host"
    return text[:200]


def _origin_keys(origins: Iterable[str | Key]) -> Iterator[Key]:
    for origin in origins:
        if not isinstance(origin, str):
            scheme, host, port = origin
            yield scheme.lower(), host.encode("idna").decode("ascii").lower(), port
            continue
        try:
            yield _target(origin)[1]
        except SendError:
            continue  # a URL wpnotify would never request needs no trust


def redirect_target(url: str, location: str) -> str:
    """Where a redirect from ``url`` points; a SendError (``bad-redirect``, permanent: the
    receiver's fault) when that is no URL the seam could request, such as ``http://[``."""
    try:
        target: str | None = urljoin(url, location.strip())
    except ValueError:
        target = None
    problem = url_problem(target) if target is not None else (
        f"not a valid URL: {redact(location.strip())[:200]}")
    if problem is not None:
        raise SendError(f"{_host(url)} redirected to a URL that cannot be followed: {problem}",
                        code="bad-redirect", permanent=True)
    return target  # type: ignore[return-value]  # not None when there is no problem


def url_problem(url: str) -> str | None:
    """Why the seam would refuse ``url`` before any connection (not plain http(s) with a
    host, a port that is no number from 1 to 65535, a host name that is no valid name, user
    info), as one line for the history; None when it is fine. Never raises."""
    try:
        _target(url)
    except SendError as exc:
        return exc.message
    return None


def _target(url: str) -> tuple[SplitResult, Key]:
    """The URL, parsed, and what a connection to it is kept by: (scheme, host in its ASCII
    form, port). A SendError (bad-url, skip) unless it is plain http(s) with a host."""
    shown = redact(url)[:200]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # "[your link here]" as a host, or a port like 8O80
        what = "bad port" if "port" in str(exc).lower() else "malformed host"
        raise SendError(f"not a valid URL ({what}): {shown}", code="bad-url",
                        permanent=True, skip=True) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SendError(f"not an http(s) URL: {shown}", code="bad-url", permanent=True,
                        skip=True)
    if "@" in parts.netloc:
        raise SendError(f"URL with user info refused: {shown}", code="bad-url",
                        permanent=True, skip=True)
    if port == 0:
        raise SendError(f"not a valid URL (bad port): {shown}", code="bad-url",
                        permanent=True, skip=True)
    try:  # an internationalised name is sent (and resolved) in its ASCII form
        host = parts.hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise SendError(f"not a valid URL (bad host name): {shown}", code="bad-url",
                        permanent=True, skip=True) from None
    if not _HOST.fullmatch(host):  # a space (NFKC of U+00A0), a control: http.client raises
        raise SendError(f"not a valid URL (bad host name): {shown}", code="bad-url",
                        permanent=True, skip=True)
    return parts, (parts.scheme, host, port or (443 if parts.scheme == "https" else 80))


# A host as a connection takes it: a name in its ASCII form, an IPv4 or IPv6 address (with
# a zone); nothing else reaches http.client, which raises InvalidURL on spaces and controls.
_HOST = re.compile(r"[a-z0-9._:%-]+")


_AUTHORITY = re.compile(r"[\x00-\x20]*(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//([^/?#]*)")


def _host(url: str) -> str:
    """The host (and port) a message names: never the user info."""
    found = _AUTHORITY.match(redact(url))
    return found.group(1) if found is not None and found.group(1) else redact(url)[:100]


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
    if value.isascii() and value.isdigit():  # "²".isdigit() is True too
        seconds = float(value)
    else:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
            if when.tzinfo is None:
                return None
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, IndexError, OverflowError):  # no date at all
            return None
    return min(max(seconds, 0.0), 86400.0)
