"""The WordPress source over XML-RPC (``api = "xmlrpc"``), for sites whose REST API is off.

Built on python-wordpress-xmlrpc, wrapped twice: its requests go through wpnotify's HTTP seam
(a Transport, so the guard, timeouts and caps apply), and its result handling is fixed for
Python 3.10+ (``collections.Iterable`` is gone; the stock ``process_result`` fails on every
list). It returns the same post records as the REST source and behaves the same way, with two
differences: XML-RPC has no "modified after" filter, so changes are read newest first until
the cursor is passed; and posts come with their raw content, not the rendered HTML.
"""

from __future__ import annotations

import collections.abc
import threading
import xmlrpc.client
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from wordpress_xmlrpc import AuthenticatedMethod, Client
from wordpress_xmlrpc.exceptions import (
    InvalidCredentialsError,
    ServerConnectionError,
    UnsupportedXmlrpcMethodError,
    XmlrpcDisabledError,
)
from wordpress_xmlrpc.methods import options, posts

from wpnotify import rpc
from wpnotify.errors import SendError, SourceError
from wpnotify.http import Http
from wpnotify.settings import SiteSettings
from wpnotify.wordpress import (
    OVERLAP,
    WATCHED_STATUSES,
    Deleted,
    Post,
    SiteInfo,
    deleted_list,
    server_time,
    wp_format,
    wp_time,
)

REPLY_CAP = 64 * 1024 * 1024


class _Results:
    """``process_result`` as python-wordpress-xmlrpc meant it, on current Python."""

    results_class: Any = None

    def process_result(self, raw_result: Any) -> Any:
        if self.results_class and raw_result:
            if isinstance(raw_result, dict):
                return self.results_class(raw_result)
            if isinstance(raw_result, collections.abc.Iterable):
                return [self.results_class(item) for item in raw_result]
        return raw_result


class RawPosts(_Results, posts.GetPosts):  # type: ignore[misc]  # untyped library base
    """wp.getPosts, as plain structs (drafts' zero dates break the library's date fields)."""

    results_class = None


class RawPost(_Results, posts.GetPost):  # type: ignore[misc]  # untyped library base
    results_class = None


class Options(_Results, options.GetOptions):  # type: ignore[misc]  # untyped library base
    results_class = None


class GetPings(_Results, AuthenticatedMethod):  # type: ignore[misc]  # untyped library base
    """The bridge's wpnotify.getPings(blog_id, username, password, post_id)."""

    method_name = "wpnotify.getPings"
    method_args = ("post_id",)


class AddPinged(_Results, AuthenticatedMethod):  # type: ignore[misc]  # untyped library base
    method_name = "wpnotify.addPinged"
    method_args = ("post_id", "urls")


class GetDeleted(_Results, AuthenticatedMethod):  # type: ignore[misc]  # untyped library base
    method_name = "wpnotify.getDeleted"
    method_args = ("since",)


class BridgeStatus(_Results, AuthenticatedMethod):  # type: ignore[misc]  # untyped library base
    method_name = "wpnotify.status"


class SeamTransport(xmlrpc.client.Transport):
    """Sends XML-RPC through wpnotify's HTTP seam instead of http.client."""

    def __init__(self, http: Http, url: str) -> None:
        super().__init__()
        self.http = http
        self.url = url
        self.answered = threading.local()  # .date: the Date of this thread's last answer

    def request(self, host: Any, handler: Any, request_body: Any,
                verbose: bool = False) -> Any:
        resp = self.http.post(self.url, data=bytes(request_body), max_bytes=REPLY_CAP,
                              headers={"Content-Type": "text/xml; charset=utf-8"})
        self.answered.date = resp.header("Date")
        if resp.status != 200 or resp.truncated:
            raise xmlrpc.client.ProtocolError(self.url, resp.status,
                                              "not an XML-RPC answer", {})
        if rpc.has_dtd(resp.body):
            raise xmlrpc.client.ProtocolError(self.url, resp.status, "XML with a DTD", {})
        parser, unmarshaller = self.getparser()
        parser.feed(resp.body)
        parser.close()
        return unmarshaller.close()


class XmlrpcSource:
    """Reads one site over XML-RPC; the same interface as ``wordpress.RestSource``."""

    def __init__(self, http: Http, site: SiteSettings, per_page: int = 100) -> None:
        self.http = http
        self.site = site
        self.per_page = per_page
        self.url = f"{site.url}/xmlrpc.php"
        self._client: Client | None = None
        self._transport = SeamTransport(http, self.url)
        self._info: SiteInfo | None = None

    def _call(self, method: Any) -> Any:
        return self._guarded(lambda: self._connected().call(method))

    def _connected(self) -> Client:
        """The library's client; making it asks the site which methods it offers."""
        if self._client is None:
            self._client = Client(self.url, self.site.username, self.site.secret(),
                                  transport=self._transport)
        return self._client

    def _guarded(self, work: Callable[[], Any]) -> Any:
        """Runs one exchange with the site; what can go wrong becomes a SourceError."""
        try:
            return work()
        except InvalidCredentialsError as exc:
            raise SourceError(f"{self.url} refused the credentials of "
                              f"{self.site.username!r} ({exc}); check username and "
                              "Application Password") from None
        except XmlrpcDisabledError:
            raise SourceError(f"{self.url}: XML-RPC is switched off on the site") from None
        except SendError as exc:
            raise SourceError(f"cannot reach {self.url}: {exc.message}") from None
        except (ServerConnectionError, xmlrpc.client.ProtocolError) as exc:
            raise SourceError(f"{self.url} does not look like WordPress's XML-RPC "
                              f"({_short(exc)}); check the url") from None
        except xmlrpc.client.Fault as fault:
            raise SourceError(f"{self.url} answered fault {fault.faultCode}: "
                              f"{fault.faultString}") from None
        except (ValueError, xmlrpc.client.ResponseError) as exc:  # garbled XML
            raise SourceError(f"{self.url} sent a garbled XML-RPC answer ({_short(exc)})"
                              ) from None

    def info(self) -> SiteInfo:
        if self._info is None:
            found = self._call(Options(["blog_title", "home_url"]))
            self._info = SiteInfo(name=str(found["blog_title"]["value"]),
                                  home=str(found["home_url"]["value"]))
        return self._info

    def _page(self, post_type: str, status: str, offset: int, orderby: str) -> list[Post]:
        """One page, newest first; ``orderby`` ends in ID, since MySQL orders ties (posts
        saved in the same second) arbitrarily from one page to the next."""
        items = self._call(RawPosts({"post_type": post_type, "post_status": status,
                                     "number": self.per_page, "offset": offset,
                                     "orderby": orderby, "order": "DESC"}))
        read_at = self._read_at()
        return [self._post(item, read_at) for item in items or []]

    def _newest_first(self, status: str, orderby: str) -> Iterator[Post]:
        for post_type in self.site.post_types:
            offset = 0
            while True:
                page = self._page(post_type, status, offset, orderby)
                yield from page
                if len(page) < self.per_page:
                    break
                offset += len(page)

    def newest_modified(self) -> str | None:
        for post in self._newest_first("publish", "post_modified ID"):
            return post.modified_gmt
        return None

    def scheduled(self) -> Iterator[Post]:
        return self._newest_first("future", "post_date ID")

    def changed(self, since: str, seen: frozenset[tuple[int, str]] = frozenset()
                ) -> Iterator[Post]:
        """Posts modified after ``since`` (less OVERLAP) and not in ``seen``, newest first:
        XML-RPC cannot filter by time, so pages are read until one ends before the window.
        Offset paging newest first only repeats items when posts change meanwhile; repeats
        are dropped."""
        floor = wp_format(wp_time(since) - OVERLAP)
        done = set(seen)
        for post_type in self.site.post_types:
            offset = 0
            while True:
                page = self._page(post_type, WATCHED_STATUSES, offset, "post_modified ID")
                for post in page:
                    if post.modified_gmt > floor and (post.id, post.modified_gmt) not in done:
                        done.add((post.id, post.modified_gmt))
                        yield post
                if len(page) < self.per_page or page[-1].modified_gmt <= floor:
                    break
                offset += len(page)

    def posts(self, ids: list[int]) -> list[Post]:
        found = []
        for post_id in ids:
            try:
                item = self._call(RawPost(post_id))
                found.append(self._post(item, self._read_at()))
            except SourceError as exc:
                if "fault 404" not in str(exc):
                    raise
        return [p for p in found if p.type in self.site.post_types]

    def archive(self, since: datetime, until: datetime | None
                ) -> Iterator[tuple[list[Post], int]]:
        """Published posts dated from ``since`` up to ``until``, a page at a time (newest
        first; the total is not known over XML-RPC, so it is given as 0)."""
        low, high = wp_format(since), wp_format(until) if until else None
        for post_type in self.site.post_types:
            offset = 0
            while True:
                page = self._page(post_type, "publish", offset, "post_date ID")
                yield [p for p in page if p.date_gmt and p.date_gmt >= low
                       and (high is None or p.date_gmt < high)], 0
                if len(page) < self.per_page or (page[-1].date_gmt or "") < low:
                    break
                offset += len(page)

    def record_pinged(self, post_id: int, urls: list[str]) -> None:
        self._call(AddPinged(post_id, urls))

    def record_pinged_many(self, posts: Mapping[int, list[str]]) -> None:
        """One call per post: XML-RPC sites are the rare case, and their bridge calls are
        made after the sends, never between them."""
        for post_id, urls in posts.items():
            self.record_pinged(post_id, urls)

    def deletions(self, since: str) -> list[Deleted]:
        """Posts deleted for good after ``since`` (bridge only; one call per poll)."""
        try:
            items = self._call(GetDeleted(since))
            return deleted_list(items, self._read_at())
        except UnsupportedXmlrpcMethodError:
            return []

    def check(self) -> tuple[SiteInfo, dict[str, Any] | None]:
        info = self.info()
        for post_type in self.site.post_types:
            self._page(post_type, "publish", 0, "post_date ID")
        try:
            status = self._call(BridgeStatus())
        except UnsupportedXmlrpcMethodError:
            return info, None
        return info, status if isinstance(status, dict) else None

    def bridge(self) -> bool:
        """Whether the site runs the bridge, as the site itself says: the methods it offers,
        read again (one request), so that a bridge installed or removed since this source
        began is seen, here and by the bridge calls that follow. Never judged by whether a
        post's lists were read (drafts, trashed and scheduled posts have none)."""
        def methods() -> Any:
            known = self._client is not None  # else making the client has just asked
            client = self._connected()
            if known:
                client.supported_methods = client.server.mt.supportedMethods()
            return client.supported_methods

        return BridgeStatus.method_name in self._guarded(methods)

    def _pings(self, post_id: int) -> dict[str, Any] | None:
        try:
            found = self._call(GetPings(post_id))
        except UnsupportedXmlrpcMethodError:
            return None
        return found if isinstance(found, dict) else None

    def _read_at(self) -> str | None:
        """WordPress's clock at the answer this thread just read (see Post.read_at)."""
        return server_time(getattr(self._transport.answered, "date", None))

    def _post(self, item: dict[str, Any], read_at: str | None = None) -> Post:
        status = str(item.get("post_status", ""))
        date_gmt = _gmt(item.get("post_date_gmt"))
        if status == "publish" and date_gmt and date_gmt > wp_format(datetime.now(UTC)):
            status = "future"  # XML-RPC reports scheduled posts as published
        pings = self._pings(int(item["post_id"])) if status == "publish" else None
        return Post(
            id=int(item["post_id"]),
            type=str(item.get("post_type", "post")),
            status=status,
            link=str(item.get("link", "")),
            title_html=str(item.get("post_title", "")),
            content_html=str(item.get("post_content", "")),
            excerpt_html=str(item.get("post_excerpt", "")),
            protected=bool(item.get("post_password")),
            modified_gmt=_gmt(item.get("post_modified_gmt")) or "",
            date_gmt=date_gmt,
            to_ping=tuple(pings.get("to_ping") or ()) if pings is not None else None,
            pinged=tuple(pings.get("pinged") or ()) if pings is not None else None,
            read_at=read_at,
        )


def _gmt(value: Any) -> str | None:
    """An XML-RPC DateTime as "YYYY-MM-DDTHH:MM:SS" (UTC), or None for WordPress's zero date."""
    text = str(value or "")
    if not text or text.startswith("0000"):
        return None
    try:
        moment = datetime.strptime(text, "%Y%m%dT%H:%M:%S")
    except ValueError:
        try:
            moment = datetime.strptime(text.rstrip("Z"), "%Y%m%dT%H:%M:%S")
        except ValueError:
            return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
