"""One attempt at one notification: the protocol its kind calls for, on the sender's worker
threads. It touches the network only; the sender claims before and records after.

A link's target is fetched once per cycle, whatever protocols it is asked about and however
many posts link to it: ``Discoveries`` keeps what each page advertises (or why it could not be
read) until the cycle ends, and a second worker that wants a page being fetched waits for it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from wpnotify import pingback, trackback, weblogupdates, webmention
from wpnotify.discovery import fetch_page, trackback_ping_url
from wpnotify.errors import SendError
from wpnotify.http import Http
from wpnotify.state import Notification


@functools.lru_cache(maxsize=4096)
def host_of(url: str) -> str:
    try:
        return urlsplit(url).netloc.lower()
    except ValueError:  # a malformed URL (the plan skips those) is its own host
        return url.lower()


def looks_like_wordpress(endpoint: str) -> bool:
    """WordPress's own endpoints: xmlrpc.php, <permalink>trackback/, wp-trackback.php."""
    # Cut at the query by hand: urlsplit raises on a malformed host ("http://[x]/"), and a
    # row queued before links were checked may hold one (it must not stop the sending).
    path = endpoint.split("#", 1)[0].split("?", 1)[0]
    return path.endswith(("/xmlrpc.php", "/trackback/", "/trackback", "/wp-trackback.php"))


@dataclass(frozen=True)
class Result:
    """How an attempt went: the kind actually sent, where to, and the reply or the error.
    ``busy``: nothing was sent: the endpoint is WordPress's, and the host was pinged already
    in this cycle by a notification picked before anyone knew it runs WordPress."""

    kind: str
    endpoint: str | None
    message: str | None
    error: SendError | None
    duration_ms: int
    busy: bool = False


class _Busy(Exception):
    pass


class Wants(NamedTuple):
    webmention: bool
    pingback: bool
    trackback: bool


@dataclass(frozen=True)
class Endpoints:
    """What a target page advertises, for the protocols asked about (None: not found)."""

    webmention: str | None = None
    pingback: str | None = None
    trackback: str | None = None


class _Entry:
    def __init__(self) -> None:
        self.ready = threading.Event()
        self.found: Endpoints | None = None
        self.error: SendError | None = None


class Discoveries:
    """Discovery results for one cycle, shared by the worker threads, at most ``limit`` kept
    (least recently used go first), so a backfill over a huge archive stays small."""

    def __init__(self, http: Http, limit: int = 10_000) -> None:
        self.http = http
        self.limit = limit
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, Wants], _Entry] = OrderedDict()
        self._wordpress: set[str] = set()

    def first_wordpress_ping(self, host: str) -> bool:
        """True once per cycle and WordPress host. A host is found to run WordPress only after
        discovery, when several workers may be on their way to it; its flood check refuses a
        second ping within 15 s, so only the first goes, and the sender sends the others one
        at a time, spaced (``cleared``)."""
        with self._lock:
            if host in self._wordpress:
                return False
            self._wordpress.add(host)
            return True

    def find(self, target: str, wants: Wants) -> Endpoints:
        """The endpoints ``target`` advertises; raises the SendError its fetch raised."""
        key = (target, wants)
        with self._lock:
            entry = self._entries.get(key)
            owner = entry is None
            if entry is None:
                entry = self._entries[key] = _Entry()
                if len(self._entries) > self.limit:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(key)
        if owner:
            try:
                entry.found = self._discover(target, wants)
            except SendError as exc:
                entry.error = exc
            except BaseException:
                with self._lock:
                    self._entries.pop(key, None)  # a bug: let the next one try afresh
                raise
            finally:
                entry.ready.set()
        else:
            entry.ready.wait()
        if (e := entry.error) is not None:  # a fresh one: each worker tags its own endpoint
            raise SendError(e.message, code=e.code, permanent=e.permanent, skip=e.skip,
                            endpoint=e.endpoint, retry_after=e.retry_after,
                            unreachable=e.unreachable)
        if entry.found is None:  # the owner hit a bug; it was logged there
            raise SendError("discovery failed in another worker", code="internal",
                            permanent=False)
        return entry.found

    def _discover(self, target: str, wants: Wants) -> Endpoints:
        page = fetch_page(self.http, target, webmention.wants_body)
        return Endpoints(
            webmention=webmention.endpoint_in(page) if wants.webmention else None,
            pingback=pingback.endpoint_in(page) if wants.pingback else None,
            trackback=trackback_ping_url(page.text(), page.url, target)
            if wants.trackback else None)


def attempt(http: Http, discoveries: Discoveries, n: Notification, *, cleared: bool = False,
            taken: frozenset[str] = frozenset()) -> Result:
    """Sends one claimed notification; never raises for the receiver's sake. ``cleared``: the
    sender picked it under WordPress's rules (one at a time, spaced); ``taken``: the other
    kinds that already have a row for this post and target (no fallback to those)."""
    started = time.monotonic()
    kind, endpoint, message, error = n.kind, None, None, None
    try:
        kind, endpoint, message = _send(http, _Context(discoveries, cleared, taken), n)
    except SendError as exc:
        error, endpoint = exc, exc.endpoint
    except _Busy:
        return Result(n.kind, None, None, None, 0, busy=True)
    return Result(kind, endpoint, message, error, round((time.monotonic() - started) * 1000))


@dataclass(frozen=True)
class _Context:
    discoveries: Discoveries
    cleared: bool
    taken: frozenset[str]


def _send(http: Http, context: _Context, n: Notification) -> tuple[str, str, str]:
    if n.kind in (webmention.KIND, pingback.KIND):
        return _send_link(http, context, n)
    if n.kind == trackback.KIND:
        ping = trackback.Ping(**n.payload)
        return _ping(context, n, n.kind, n.target,
                     lambda: trackback.send(http, n.target, ping))
    if n.kind == weblogupdates.KIND:
        update = weblogupdates.Update(**n.payload)
        return n.kind, n.target, weblogupdates.send(http, n.target, update)
    raise SendError(f"unknown notification kind {n.kind!r}", code="bad-kind", permanent=True)


def _send_link(http: Http, context: _Context, n: Notification) -> tuple[str, str, str]:
    """A link's notification. One GET of the target serves every discovery: Webmention (for a
    webmention row), then Pingback (a pingback row, or a webmention row that may fall back),
    then TrackBack RDF (with trackback_discovery). A row that goes out as another kind is
    recorded as that kind."""
    fallback = bool(n.payload.get("fallback"))
    wants = Wants(webmention=n.kind == webmention.KIND,
                  pingback=n.kind == pingback.KIND or fallback,
                  trackback="ping" in n.payload)
    found = context.discoveries.find(n.target, wants)
    if found.webmention is not None:
        return n.kind, found.webmention, webmention.send(http, found.webmention, n.source,
                                                         n.target)
    if (server := found.pingback) is not None:
        return _ping(context, n, pingback.KIND, server,
                     lambda: pingback.send(http, server, n.source, n.target))
    if (ping_url := found.trackback) is not None:
        ping = trackback.Ping(**n.payload["ping"])
        return _ping(context, n, trackback.KIND, ping_url,
                     lambda: trackback.send(http, ping_url, ping))
    names = {webmention.KIND: "Webmention", pingback.KIND: "Pingback"}
    offered = [names[n.kind]] + (["Pingback"] if fallback else []) + (
        ["TrackBack"] if wants.trackback else [])
    raise SendError(f"the target advertises no {' or '.join(dict.fromkeys(offered))} "
                    "endpoint", code="no-endpoint", permanent=True, skip=True)


def _ping(context: _Context, n: Notification, kind: str, endpoint: str,
          send: Callable[[], str]) -> tuple[str, str, str]:
    """Sends ``n`` as ``kind`` (the sender records a fallback with the outcome); to a WordPress
    endpoint only when cleared, or as the first ping to that host in this cycle."""
    if n.kind != kind and kind in context.taken:
        raise SendError(f"the target was already notified by {kind}", code="duplicate",
                        permanent=True, skip=True)
    if (looks_like_wordpress(endpoint) and not context.cleared
            and not context.discoveries.first_wordpress_ping(host_of(endpoint))):
        raise _Busy
    try:
        return kind, endpoint, send()
    except SendError as exc:
        raise exc.with_endpoint(endpoint) from None
