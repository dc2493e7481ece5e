"""The WordPress source over XML-RPC (``api = "xmlrpc"``), for sites whose REST API is off.

Built on python-wordpress-xmlrpc, wrapped twice: its requests go through wpnotify's HTTP seam
(a Transport, so the guard, timeouts and caps apply), and its result handling is fixed for
Python 3.10+ (``collections.Iterable`` is gone; the stock ``process_result`` fails on every
list). It returns the same post records as the REST source and behaves the same way, with two
differences: XML-RPC has no "modified after" filter, so changes are read newest first until
the cursor is passed; and posts come with their raw content, not the rendered HTML. A third:
the editor's notification statuses and its Send again (bridge 1.2) are REST routes only, so
this source tells no statuses (``record_status_many`` sends nothing) and reads no requests.
"""

from __future__ import annotations

import collections.abc
import threading
import xmlrpc.client
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NoReturn
from xml.parsers.expat import ExpatError

from wordpress_xmlrpc import AuthenticatedMethod, Client
from wordpress_xmlrpc.exceptions import (
    InvalidCredentialsError,
    ServerConnectionError,
    UnsupportedXmlrpcMethodError,
    XmlrpcDisabledError,
)
from wordpress_xmlrpc.methods import options, posts

from wpnotify import rpc
from wpnotify.answer import Answer, kind, listing
from wpnotify.errors import PostGone, SendError, SourceError
from wpnotify.http import Http
from wpnotify.settings import SiteSettings
from wpnotify.sources.base import OVERLAP, WATCHED_STATUSES, record_each
from wpnotify.sources.records import (
    Changes,
    Deleted,
    Post,
    ResendRequest,
    SiteInfo,
    bridge_status,
    deleted_list,
)
from wpnotify.times import http_date, whole_second, wp_text

REPLY_CAP = 64 * 1024 * 1024
METHOD_NOT_FOUND = -32601  # the XML-RPC servers' fault for an unknown method
BRIDGE_METHODS = "wpnotify."
BOM = b"\xef\xbb\xbf"


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
                              headers={"Content-Type": "text/xml; charset=utf-8"},
                              trusted=True)
        self.answered.date = resp.header("Date")
        problem = reply_problem(resp.status, resp.media_type, resp.body, resp.truncated)
        if problem:
            raise SourceError(f"{self.url} {problem}")
        return self._parse(resp.body)

    def getparser(self) -> tuple[xmlrpc.client.ExpatParser, xmlrpc.client.Unmarshaller]:
        """The XML-RPC reader with the DTD refused by expat itself, whatever encoding expat
        detects (a search of the bytes missed UTF-16 without a byte order mark)."""
        return rpc.getparser(self._use_datetime, self._use_builtin_types)

    def _parse(self, body: bytes) -> Any:
        """The reply's values, or its fault (with a number and one line of text); anything
        the XML-RPC reader trips on becomes a SourceError naming it."""
        parser, unmarshaller = self.getparser()
        try:
            parser.feed(body)
            parser.close()
            return unmarshaller.close()
        except rpc.DtdRefused:
            raise SourceError(f"{self.url} answered XML with a DTD, which is never parsed "
                              "(entities could expand without end); not WordPress's "
                              "XML-RPC?") from None
        except xmlrpc.client.Fault as fault:
            code, text = fault.faultCode, fault.faultString
            if not isinstance(code, int) or isinstance(code, bool) or not isinstance(text, str):
                raise SourceError(f"{self.url} sent an XML-RPC fault without a number and a "
                                  "message; not WordPress's XML-RPC?") from None
            raise xmlrpc.client.Fault(code, " ".join(text.split())[:300]) from None
        except LookupError as exc:
            if "encoding" not in str(exc):  # IndexError, KeyError: a malformed struct
                raise SourceError(f"{self.url} sent a malformed XML-RPC reply ({_short(exc)})"
                                  "; not WordPress's XML-RPC?") from None
            raise SourceError(f"{self.url} answered XML in an encoding Python does not know "
                              f"({_short(exc)}); check the site's blog_charset option "
                              "(WordPress declares it in every XML-RPC reply)") from None
        except (ExpatError, ValueError, TypeError, OverflowError,
                xmlrpc.client.ResponseError) as exc:
            raise SourceError(f"{self.url} sent a reply that is not well-formed XML-RPC "
                              f"({_short(exc) or type(exc).__name__}); not WordPress's "
                              "XML-RPC, or a plugin writing into it?") from None


def reply_problem(status: int, media_type: str, body: bytes, truncated: bool) -> str | None:
    """Why an answer cannot be an XML-RPC reply, as the rest of a sentence that starts with
    the URL; None when it may be one. Looked at before parsing, so that a PHP error page or
    warning is named as such rather than as an XML parser's complaint."""
    if truncated:
        return (f"answered more than {REPLY_CAP // 2**20} MiB, more than any XML-RPC reply "
                "of WordPress; check the url")
    head = body[:1024].removeprefix(BOM)
    if not head.startswith((b"<?xml", b"<methodResponse")) and b"<?xml" in body:
        return ("printed something before its XML-RPC reply (a PHP warning or notice, or "
                "blank lines from a plugin or theme file?); see the site's PHP error log and "
                "turn WP_DEBUG_DISPLAY off")
    lowered = head.lower()
    html = media_type in ("text/html", "application/xhtml+xml") or any(
        tag in lowered for tag in (b"<html", b"<!doctype html", b"<body", b"<br"))
    if html and not head.startswith((b"<?xml", b"<methodResponse")):
        return (f"answered HTML instead of XML-RPC (HTTP {status}; a PHP error or a security "
                "plugin?)")
    if status == 404:
        return "answered HTTP 404: no XML-RPC there; check the url"
    if status != 200:
        return (f"answered HTTP {status} instead of an XML-RPC reply; see the site's PHP "
                "error log")
    if not body or body.isspace():  # no stripped copy of up to 64 MiB
        return ("answered an empty page instead of XML-RPC (a PHP fatal error? see the site's "
                "PHP error log)")
    if not head.lstrip().startswith(b"<"):
        return (f"answered {media_type or 'something'} that is not XML-RPC; check the url")
    return None


class XmlrpcSource:
    """Reads one site over XML-RPC; the same interface as ``rest.RestSource``."""

    def __init__(self, http: Http, site: SiteSettings, per_page: int = 100) -> None:
        self.http = http
        self.site = site
        self.per_page = per_page
        self.url = f"{site.url}/xmlrpc.php"
        self._client: Client | None = None
        self._transport = SeamTransport(http, self.url)
        self._info: SiteInfo | None = None

    def _call(self, method: Any) -> Any:
        client = self._connected()
        return self._guarded(method.method_name, lambda: client.call(method))

    def _connected(self) -> Client:
        """The library's client; making it asks the site which methods it offers."""
        if self._client is None:
            client = self._guarded("mt.supportedMethods", lambda: Client(
                self.url, self.site.username, self.site.secret(), transport=self._transport))
            client.supported_methods = self._methods(client.supported_methods)
            self._client = client
        return self._client

    def _methods(self, found: Any) -> frozenset[str]:
        """The site's list of methods (the library checks each call against it)."""
        if not isinstance(found, list) or not all(isinstance(m, str) for m in found):
            raise SourceError(f"{self.url} answered mt.supportedMethods with {kind(found)} "
                              "instead of a list of method names; not WordPress's XML-RPC?")
        return frozenset(found)

    def _guarded(self, name: str, work: Callable[[], Any]) -> Any:
        """Runs one exchange with the site (method ``name``); what can go wrong becomes a
        SourceError, except that a bridge method the site lacks raises
        UnsupportedXmlrpcMethodError, which means "no bridge" to the callers."""
        try:
            return work()
        except UnsupportedXmlrpcMethodError:
            self._missing(name)
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
            if fault.faultCode == METHOD_NOT_FOUND:
                self._missing(name)
            if fault.faultCode == 404 and name.startswith(BRIDGE_METHODS):
                raise PostGone(f"{self.url} has no post there any more") from None
            raise SourceError(f"{self.url} answered fault {fault.faultCode}: "
                              f"{fault.faultString}") from None

    def _missing(self, name: str) -> NoReturn:
        if name.startswith(BRIDGE_METHODS):
            raise UnsupportedXmlrpcMethodError(name) from None
        raise SourceError(f"{self.url} has no {name} (XML-RPC disabled or restricted? a "
                          "security plugin may allow pingbacks only; or use api = \"rest\")"
                          ) from None

    def info(self) -> SiteInfo:
        if self._info is None:
            found = Answer(self.url, "the site's options",
                           self._call(Options(["blog_title", "home_url"])))
            title, home = found.part("blog_title"), found.part("home_url")
            self._info = SiteInfo(name=title.text("value") if title else "",
                                  home=(home.text("value") if home else "") or self.site.url)
        return self._info

    def _page(self, post_type: str, status: str, offset: int, orderby: str) -> list[Post]:
        """One page, newest first; ``orderby`` ends in ID, since MySQL orders ties (posts
        saved in the same second) arbitrarily from one page to the next."""
        found = self._call(RawPosts({"post_type": post_type, "post_status": status,
                                     "number": self.per_page, "offset": offset,
                                     "orderby": orderby, "order": "DESC"}))
        read_at = self._read_at()
        items = listing(self.url, "the post list", [] if found is None else found)
        return [self._post(item, read_at) for item in items]

    def _newest_first(self, status: str, orderby: str) -> Iterator[Post]:
        for post_type in self.site.post_types:
            offset = 0
            while True:
                page = self._page(post_type, status, offset, orderby)
                yield from page
                if len(page) < self.per_page:
                    break
                offset += len(page)

    def newest_modified(self) -> datetime | None:
        for post in self._newest_first("publish", "post_modified ID"):
            return post.modified_gmt
        return None

    def scheduled(self) -> Iterator[Post]:
        return self._newest_first("future", "post_date ID")

    def changed(self, since: datetime, seen: frozenset[tuple[int, datetime]] = frozenset()
                ) -> Changes:
        """Posts modified after ``since`` (less OVERLAP) and not in ``seen``, newest first.
        XML-RPC answers name no deletions, so the changes leave that question open."""
        return Changes(self._changed(since, seen))

    def _changed(self, since: datetime, seen: frozenset[tuple[int, datetime]]
                 ) -> Iterator[Post]:
        """XML-RPC cannot filter by time, so pages are read until one ends before the window.
        Offset paging newest first only repeats items when posts change meanwhile; repeats
        are dropped. A zero modified date counts as older than any window."""
        floor = whole_second(since) - OVERLAP
        done = set(seen)
        for post_type in self.site.post_types:
            offset = 0
            while True:
                page = self._page(post_type, WATCHED_STATUSES, offset, "post_modified ID")
                for post in page:
                    modified = post.modified_gmt
                    if modified is not None and modified > floor \
                            and (post.id, modified) not in done:
                        done.add((post.id, modified))
                        yield post
                last = page[-1].modified_gmt if page else None
                if len(page) < self.per_page or last is None or last <= floor:
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
        low, high = whole_second(since), whole_second(until) if until else None
        for post_type in self.site.post_types:
            offset = 0
            while True:
                page = self._page(post_type, "publish", offset, "post_date ID")
                yield [p for p in page if p.date_gmt and p.date_gmt >= low
                       and (high is None or p.date_gmt < high)], 0
                if len(page) < self.per_page or page[-1].date_gmt is None \
                        or page[-1].date_gmt < low:
                    break
                offset += len(page)

    def record_pinged(self, post_id: int, urls: list[str]) -> None:
        try:
            self._call(AddPinged(post_id, urls))
        except UnsupportedXmlrpcMethodError:
            raise SourceError(f"{self.url} has no {AddPinged.method_name}: the wpnotify "
                              "bridge is not installed (see README \"The bridge\")") from None

    def record_pinged_many(self, posts: Mapping[int, list[str]]) -> None:
        """One call per post: XML-RPC sites are the rare case, and their bridge calls are
        made after the sends, never between them."""
        record_each(self, posts)

    def record_status_many(self, posts: Mapping[int, list[dict[str, Any]]],
                           resend_seen: int) -> list[int]:
        """Nothing is sent, and nothing is refused: the bridge takes status rows over REST
        only (its XML-RPC methods are the pinged lists and deletions), so an XML-RPC site's
        editor shows no statuses and no Send again. The marks are done with all the same:
        kept, they would only grow."""
        return []

    def resend_requests(self, since: int) -> list[ResendRequest]:
        """None: Send again needs the REST source (see record_status_many). Never asked:
        XML-RPC changes name no request (``Changes.newest_resend`` stays None)."""
        return []

    def deletions(self, since: datetime) -> list[Deleted]:
        """Posts deleted for good after ``since`` (bridge only; one call per poll)."""
        try:
            items = self._call(GetDeleted(wp_text(since)))
            return deleted_list(self.url, items, self._read_at())
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
        return info, bridge_status(self.url, status)

    def bridge(self) -> bool:
        """Whether the site runs the bridge, as the site itself says: the methods it offers,
        read again (one request), so that a bridge installed or removed since this source
        began is seen, here and by the bridge calls that follow. Never judged by whether a
        post's lists were read (drafts, trashed and scheduled posts have none)."""
        known = self._client is not None  # else making the client has just asked
        client = self._connected()
        if known:
            client.supported_methods = self._methods(
                self._guarded("mt.supportedMethods", client.server.mt.supportedMethods))
        return BridgeStatus.method_name in client.supported_methods

    def _pings(self, post_id: int) -> Answer | None:
        """The bridge's lists of a post; None without the bridge."""
        try:
            found = self._call(GetPings(post_id))
        except UnsupportedXmlrpcMethodError:
            return None
        return Answer(self.url, "the bridge's lists", found)

    def _read_at(self) -> datetime | None:
        """WordPress's clock at the answer this thread just read (see Post.read_at)."""
        return http_date(getattr(self._transport.answered, "date", None))

    def _post(self, raw: Any, read_at: datetime | None = None) -> Post:
        """One post of wp.getPosts or wp.getPost, its shape checked (see wpnotify.answer)."""
        item = Answer(self.url, "a post", raw)
        post_id, status = item.id("post_id"), item.text("post_status")
        date_gmt = _gmt(item, "post_date_gmt")
        if status == "publish" and date_gmt and date_gmt > whole_second(datetime.now(UTC)):
            status = "future"  # XML-RPC reports scheduled posts as published
        pings = self._pings(post_id) if status == "publish" else None
        return Post(
            id=post_id,
            type=item.text("post_type", "post"),
            status=status,
            link=item.text("link"),
            title_html=item.text("post_title"),
            content_html=item.text("post_content"),
            excerpt_html=item.text("post_excerpt"),
            protected=bool(item.text("post_password")),
            modified_gmt=_gmt(item, "post_modified_gmt"),
            date_gmt=date_gmt,
            to_ping=(pings.texts("to_ping") or ()) if pings else None,
            pinged=(pings.texts("pinged") or ()) if pings else None,
            read_at=read_at,
        )


def _gmt(item: Answer, key: str) -> datetime | None:
    """An XML-RPC DateTime (UTC), or None for WordPress's zero date (a draft's)."""
    value = item.value(key, (xmlrpc.client.DateTime, str), "a time", required=False)
    text = value.value if isinstance(value, xmlrpc.client.DateTime) else value or ""
    if not isinstance(text, str):
        item.fail(f"whose {key} is not a time")
    if not text or text.startswith("0000"):
        return None
    for shape in ("%Y%m%dT%H:%M:%S", "%Y%m%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, shape).replace(tzinfo=UTC)
        except ValueError:
            pass
    item.fail(f"whose {key} is not a time like 20261126T12:39:34")


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
