"""The WordPress source, over the REST API with an Application Password.

It returns plain post records and never decides what to send. Requests use the ``?rest_route=``
form, which works with and without pretty permalinks. The bridge plugin, when installed, adds a
``wpnotify`` field (the post's ``to_ping`` and ``pinged`` lists) and a route to record pings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import structlog

from wpnotify.answer import Answer, listing
from wpnotify.errors import PostGone, SendError, SourceError
from wpnotify.http import Http, Response
from wpnotify.settings import SiteSettings

log = structlog.get_logger("wpnotify.wordpress")

FIELDS = ("id,type,status,link,title,content,excerpt,password,modified_gmt,date_gmt,wpnotify")
# Published and scheduled posts, and the statuses a published post can leave for (so that
# Webmention receivers can be told it is gone).
WATCHED_STATUSES = "publish,future,draft,pending,private,trash"
REST_BASES = {"post": "posts", "page": "pages"}
FIRST_PAGE = 20  # posts in a backfill's first page
# How far before the cursor each poll asks. WordPress compares whole seconds, strictly, and in
# the site's local time, where the hour after a daylight-saving change repeats; an hour and a
# second covers both. Posts read again are queued again idempotently, so this costs bytes only.
OVERLAP = timedelta(hours=1, seconds=1)
CREDENTIAL_CODES = frozenset({"incorrect_password", "invalid_username", "invalid_email",
                              "rest_not_logged_in", "rest_forbidden_context",
                              "rest_cannot_view", "rest_forbidden"})


@dataclass(frozen=True)
class Post:
    """One post as wpnotify needs it. ``to_ping``/``pinged`` are None without the bridge."""

    id: int
    type: str
    status: str
    link: str
    title_html: str
    content_html: str
    excerpt_html: str  # the rendered manual excerpt; "" when the post has none
    protected: bool
    modified_gmt: str  # as WordPress writes it: "2026-11-26T12:39:34", UTC
    date_gmt: str | None
    to_ping: tuple[str, ...] | None
    pinged: tuple[str, ...] | None
    # WordPress's clock when this copy was read (its HTTP Date), like modified_gmt; None when
    # it did not say (see settled).
    read_at: str | None = None

    @property
    def settled(self) -> bool:
        """True when the second of ``modified_gmt`` had ended when this copy was read, so a
        later change must carry a later modified time; a poll may then skip this post while
        its modified time stays the same."""
        return settled(self.modified_gmt, self.read_at)


@dataclass(frozen=True)
class Deleted:
    """A post deleted for good, as the bridge remembers it."""

    id: int
    type: str
    link: str
    deleted_gmt: str
    read_at: str | None = None  # as Post.read_at

    @property
    def settled(self) -> bool:
        """True when no later deletion can carry the same ``deleted_gmt``."""
        return settled(self.deleted_gmt, self.read_at)


def settled(stamp: str, read_at: str | None) -> bool:
    """WordPress keeps times to the second: whatever happens later in the second of
    ``stamp`` gets the same time. True when that second had ended at ``read_at`` (WordPress's
    clock when it answered), so nothing more can come with that time."""
    return read_at is not None and read_at > stamp


@dataclass(frozen=True)
class SiteInfo:
    name: str
    home: str


def wp_time(text: str) -> datetime:
    """A REST ``*_gmt`` value as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def wp_format(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def server_time(date: str | None) -> str | None:
    """An HTTP Date header as a ``*_gmt`` value; None when missing or unreadable."""
    if not date:
        return None
    try:
        moment = parsedate_to_datetime(date)
        return wp_format(moment) if moment.tzinfo is not None else None
    except (TypeError, ValueError, IndexError, OverflowError):  # a year 9999 -2359, say
        return None


class RestSource:
    """Reads one site. ``per_page`` is WordPress's maximum, 100, unless a test lowers it."""

    def __init__(self, http: Http, site: SiteSettings, per_page: int = 100) -> None:
        self.http = http
        self.site = site
        self.per_page = per_page
        self._info: SiteInfo | None = None
        self._bases: dict[str, str] = dict(REST_BASES)
        self.newest_deletion: str | None = None  # the bridge's X-Wpnotify-Deleted header
        # Whether the posts read since bridge() last answered carried the bridge's field.
        self._bridge_seen: bool | None = None

    # --- requests ------------------------------------------------------------------------

    def _url(self, route: str, params: dict[str, Any] | None = None) -> str:
        query = urlencode({"rest_route": route, **(params or {})}, safe="/,:")
        return f"{self.site.url}/?{query}"

    def _call(self, route: str, params: dict[str, Any] | None = None, *,
              post: dict[str, Any] | None = None) -> Any:
        return self._decode(self._request(route, params, post=post))

    def _request(self, route: str, params: dict[str, Any] | None = None, *,
                 post: dict[str, Any] | None = None) -> Response:
        url = self._url(route, params)
        auth = (self.site.username, self.site.secret())
        try:
            if post is None:
                resp = self.http.get(url, auth=auth, max_bytes=64 * 1024 * 1024,
                                     trusted=True)
            else:
                resp = self.http.post(url, json_body=post, auth=auth,
                                      max_bytes=1024 * 1024, trusted=True)
        except SendError as exc:
            raise SourceError(f"cannot reach {self.site.url}: {exc.message}") from None
        stamp = resp.header("X-Wpnotify-Deleted")
        if stamp and stamp > (self.newest_deletion or ""):
            self.newest_deletion = stamp
        return resp

    def _decode(self, resp: Response) -> Any:
        moved = urlsplit(resp.url)
        if (moved.scheme, moved.netloc) != (urlsplit(self.site.url).scheme,
                                            urlsplit(self.site.url).netloc):
            home = f"{moved.scheme}://{moved.netloc}"
            raise SourceError(f"{self.site.url} redirects to {home}; set the site's url to "
                              f'"{home}" (credentials are never sent along a redirect)')
        body = self._json(resp)
        if resp.status >= 400 and isinstance(body, dict) and "code" in body:
            code = body["code"] if isinstance(body["code"], str) else "?"
            message = body.get("message")
            message = " ".join(message.split())[:300] if isinstance(message, str) else ""
            if code in CREDENTIAL_CODES or resp.status in (401, 403):
                raise SourceError(
                    f"{self.site.url} refused the credentials of {self.site.username!r} "
                    f"({code}: {message}); check username and Application Password, and that "
                    "the user may edit posts")
            if code == "rest_post_invalid_id":
                raise PostGone(f"{self.site.url} has no post there any more ({message})")
            if code == "rest_no_route":
                raise SourceError(f"{self.site.url} has no such REST route ({message}); "
                                  "is the post type right?")
            raise SourceError(f"{self.site.url} answered {resp.status} ({code}: {message})")
        if resp.status >= 500:
            raise SourceError(f"{self.site.url} answered {resp.status}; the site is failing")
        if resp.status != 200 or body is None or resp.truncated:
            raise SourceError(
                f"{self.site.url} does not look like WordPress: no REST API answer "
                f"(HTTP {resp.status}, {resp.media_type or 'no content type'}); check the url")
        return body

    def _json(self, resp: Response) -> Any:
        """The decoded body; None when it is no JSON. Python's decoder recurses once per
        level and stops at the recursion limit, after reading at most that many characters
        of nesting, so a hostile depth costs little time and is refused here."""
        try:
            return json.loads(resp.body)
        except RecursionError:
            raise SourceError(f"{self.site.url} returned JSON nested too deeply to be a "
                              "WordPress answer; check the url (a proxy or plugin in the way?)"
                              ) from None
        except ValueError:
            return None

    # --- site ----------------------------------------------------------------------------

    def info(self) -> SiteInfo:
        """The blog's name and home URL (fetched once per source)."""
        if self._info is None:
            found = self._call("/", {"_fields": "name,home,namespaces"})
            root = Answer(self.site.url, "a REST index", found) if isinstance(found, dict) \
                else None
            if root is None or "wp/v2" not in (root.texts("namespaces") or ()):
                raise SourceError(f"{self.site.url} does not look like WordPress: the REST "
                                  "index has no wp/v2 namespace")
            self._info = SiteInfo(name=root.text("name"),
                                  home=root.text("home") or self.site.url)
        return self._info

    def _base(self, post_type: str) -> str:
        if post_type not in self._bases:
            found = Answer(self.site.url, f"the post type {post_type!r}",
                           self._call(f"/wp/v2/types/{post_type}", {"_fields": "rest_base"}))
            self._bases[post_type] = found.text("rest_base") or post_type
        return self._bases[post_type]

    def _list(self, post_type: str, params: dict[str, Any]) -> list[Post]:
        resp = self._request(f"/wp/v2/{self._base(post_type)}",
                             {"context": "edit", "_fields": FIELDS, "per_page": self.per_page,
                              **params})
        items = listing(self.site.url, "the post list", self._decode(resp))
        read_at = server_time(resp.header("Date"))
        self._note_bridge(items)
        return [_post(self.site.url, item, read_at) for item in items]

    def _note_bridge(self, items: list[Any]) -> None:
        """The bridge registers the ``wpnotify`` field: a post read with it asked for carries
        the field when the bridge runs (null where the post's lists are withheld)."""
        if items and isinstance(items[0], dict):
            self._bridge_seen = "wpnotify" in items[0]

    # --- posts ---------------------------------------------------------------------------

    def newest_modified(self) -> str | None:
        """The newest ``modified_gmt`` among published posts: where a first poll starts.
        (Not scheduled ones: WordPress gives a new future post its future date as modified.)"""
        newest: str | None = None
        for post_type in self.site.post_types:
            items = self._call(f"/wp/v2/{self._base(post_type)}", {
                "context": "edit", "_fields": "id,modified_gmt", "per_page": 1,
                "status": "publish", "orderby": "modified", "order": "desc"})
            for item in listing(self.site.url, "the post list", items):
                newest = max(newest or "",
                             Answer(self.site.url, "a post", item).stamp("modified_gmt"))
        return newest

    def scheduled(self) -> Iterator[Post]:
        """Every post waiting to be published (status ``future``)."""
        for post_type in self.site.post_types:
            page = 1
            while True:
                posts = self._list(post_type, {"status": "future", "page": page,
                                               "orderby": "id", "order": "asc"})
                yield from posts
                if len(posts) < self.per_page:
                    break
                page += 1

    def changed(self, since: str, seen: frozenset[tuple[int, str]] = frozenset()
                ) -> Iterator[Post]:
        """Published and scheduled posts modified after ``since``, oldest change first, except
        those whose (id, modified_gmt) is in ``seen``.

        Two steps, so that an idle poll costs one small request: the IDs and times of what
        changed, then the full posts for those not seen yet, 100 per request.
        """
        for post_type in self.site.post_types:
            fresh = [key for key in self._modified(post_type, since) if key not in seen]
            for start in range(0, len(fresh), self.per_page):
                chunk = fresh[start:start + self.per_page]
                found = {post.id: post for post in self._list(post_type, {
                    "include": ",".join(str(i) for i, _ in chunk),
                    "status": WATCHED_STATUSES})}
                for post_id, _ in chunk:
                    if post_id in found:  # else deleted meanwhile
                        yield found.pop(post_id)

    def _modified(self, post_type: str, since: str) -> list[tuple[int, str]]:
        """(id, modified_gmt) of the posts modified after ``since`` (less OVERLAP).

        Paging is by key, not by page number: each further request starts at the last time
        seen, so posts edited while we page cannot shift out of view; items already returned
        are dropped. A full page within one second (a bulk edit) is walked by ID instead,
        since MySQL orders ties arbitrarily.
        """
        after = wp_time(since) - OVERLAP
        keys: dict[tuple[int, str], None] = {}
        while True:
            page = self._keys(post_type, {"modified_after": _param(after),
                                          "orderby": "modified", "order": "asc"})
            keys.update(dict.fromkeys(page))
            if len(page) < self.per_page:
                return list(keys)
            last = wp_time(page[-1][1])
            if last - timedelta(seconds=1) > after:
                after = last - timedelta(seconds=1)
                continue
            number = 1
            while True:  # every post of that one second, by ID
                tied = self._keys(post_type, {
                    "orderby": "id", "order": "asc", "page": number,
                    "modified_after": _param(last - timedelta(seconds=1)),
                    "modified_before": _param(last + timedelta(seconds=1))})
                keys.update(dict.fromkeys(tied))
                if len(tied) < self.per_page:
                    break
                number += 1
            after = last

    def _keys(self, post_type: str, params: dict[str, Any]) -> list[tuple[int, str]]:
        items = self._call(f"/wp/v2/{self._base(post_type)}", {
            "context": "edit", "_fields": "id,modified_gmt", "per_page": self.per_page,
            "status": WATCHED_STATUSES, **params})
        answers = [Answer(self.site.url, "a post", item)
                   for item in listing(self.site.url, "the post list", items)]
        return [(post.id(), post.stamp("modified_gmt")) for post in answers]

    def archive(self, since: datetime, until: datetime | None
                ) -> Iterator[tuple[list[Post], int]]:
        """Published posts dated from ``since`` up to ``until``, a page at a time, with the
        total count; ordered by ID, so posts published meanwhile land at the end. The first
        page is small, so that sending starts while the next, full ones are read."""
        for post_type in self.site.post_types:
            offset, size = 0, min(FIRST_PAGE, self.per_page)
            while True:
                params: dict[str, Any] = {
                    "context": "edit", "_fields": FIELDS, "per_page": size, "offset": offset,
                    "status": "publish", "orderby": "id", "order": "asc",
                    "after": _param(since - timedelta(seconds=1))}
                if until is not None:
                    params["before"] = _param(until)
                resp = self._request(f"/wp/v2/{self._base(post_type)}", params)
                items = listing(self.site.url, "the post list", self._decode(resp))
                total = _count(resp.header("X-WP-Total"), len(items))
                self._note_bridge(items)
                yield [_post(self.site.url, item) for item in items], total
                if len(items) < size:
                    break
                offset, size = offset + len(items), self.per_page

    def posts(self, ids: list[int]) -> list[Post]:
        """These posts, whatever their status now (trashed and deleted ones are missing)."""
        found: list[Post] = []
        for post_type in self.site.post_types:
            for start in range(0, len(ids), self.per_page):
                chunk = ",".join(str(i) for i in ids[start:start + self.per_page])
                found += self._list(post_type, {"include": chunk, "status": "any"})
        return found

    def check(self) -> tuple[SiteInfo, dict[str, Any] | None]:
        """Reaches the site, proves the credentials may read posts for editing, and asks the
        bridge for its status (None when it is not installed)."""
        info = self.info()
        for post_type in self.site.post_types:
            self._call(f"/wp/v2/{self._base(post_type)}",
                       {"context": "edit", "_fields": "id", "per_page": 1})
        return info, self._status()

    def _status(self) -> dict[str, Any] | None:
        """The bridge's status route; None when the site has no such route (no bridge)."""
        try:
            status = self._call("/wpnotify/v1/status")
        except SourceError as exc:
            if "no such REST route" in str(exc):
                return None
            raise
        return bridge_status(self.site.url, status)

    def bridge(self) -> bool:
        """Whether the site runs the bridge, as the bridge itself says: by the field it adds
        to every post read since this was last asked (there even where a post's lists are
        withheld), else by its status route. Never judged by whether a post's lists were
        read: a post without them is no sign of a missing bridge."""
        seen, self._bridge_seen = self._bridge_seen, None
        return seen if seen is not None else self._status() is not None

    def deletions(self, since: str) -> list[Deleted]:
        """Posts deleted for good after ``since`` (bridge only). Asked only when a response of
        this poll announced a newer deletion, so an idle poll costs no request."""
        if not self.newest_deletion or self.newest_deletion <= since:
            return []
        resp = self._request("/wpnotify/v1/deleted", {"since": since})
        return deleted_list(self.site.url, self._decode(resp),
                            server_time(resp.header("Date")))

    def record_pinged(self, post_id: int, urls: list[str]) -> None:
        """Tells WordPress (through the bridge) that these URLs were notified."""
        self._call(f"/wpnotify/v1/posts/{post_id}/pinged", post={"urls": urls})

    def record_pinged_many(self, posts: Mapping[int, list[str]]) -> None:
        """The same for many posts in one request (a bridge before 1.1: one per post)."""
        try:
            answer = self._call("/wpnotify/v1/pinged",
                                post={"posts": {str(k): list(v) for k, v in posts.items()}})
        except SourceError as exc:
            if "no such REST route" not in str(exc):
                raise
            record_each(self, posts)
            return
        refused = answer.get("refused") if isinstance(answer, dict) else None
        if isinstance(refused, list) and refused:
            # Deleted for good since, or not the user's to edit: nothing would record them
            # later either, so they leave the outbox, but not without a word.
            log.warning("wordpress.pinged_refused", site=self.site.name,
                        posts=[p for p in refused[:20] if isinstance(p, int)],
                        detail="deleted posts, or posts the user may not edit")


def record_each(source: Source, posts: Mapping[int, list[str]]) -> None:
    """One request per post; a post deleted for good meanwhile has nothing left to record,
    so it neither fails the others nor stays in the outbox for ever."""
    for post_id, urls in posts.items():
        try:
            source.record_pinged(post_id, urls)
        except PostGone:
            continue  # deleted for good: its Webmentions are handled as a deletion


def deleted_list(site: str, items: Any, read_at: str | None = None) -> list[Deleted]:
    """The bridge's list of deletions, checked (see wpnotify.answer)."""
    found = [Answer(site, "a deleted post", item)
             for item in listing(site, "the list of deleted posts", items or [])]
    return [Deleted(i.id(), i.text("type", "post"), i.text("link"), i.stamp("deleted_gmt"),
                    read_at) for i in found]


def bridge_status(site: str, status: Any) -> dict[str, Any]:
    """The bridge's status (version, whether core's sending is off): its plain values only,
    as they are shown to the user."""
    fields = Answer(site, "the bridge's status", status).fields
    return {key: value for key, value in fields.items()
            if isinstance(value, str | bool | int | float)}


def _count(header: str | None, fallback: int) -> int:
    """X-WP-Total, the number of posts to page through (only shown to the user)."""
    header = (header or "").strip()
    return int(header) if header.isascii() and header.isdigit() and len(header) < 10 \
        else fallback


def _param(moment: datetime) -> str:
    return wp_format(moment) + "+00:00"


def _post(site: str, raw: Any, read_at: str | None = None) -> Post:
    """One REST post, its shape checked (see wpnotify.answer)."""
    item = Answer(site, "a post", raw)
    title, content, excerpt = item.part("title"), item.part("content"), item.part("excerpt")
    pings = item.part("wpnotify")  # the bridge's lists; null where they are withheld
    return Post(
        id=item.id(),
        type=item.text("type", "post"),
        status=item.text("status"),
        link=item.text("link"),
        title_html=title.text("rendered") if title else "",
        content_html=content.text("rendered") if content else "",
        excerpt_html=excerpt.text("rendered") if excerpt and excerpt.text("raw") else "",
        protected=bool(item.text("password")) or bool(content and content.flag("protected")),
        modified_gmt=item.optional_stamp("modified_gmt") or "",  # null: WordPress's zero date
        date_gmt=item.optional_stamp("date_gmt"),
        to_ping=(pings.texts("to_ping") or ()) if pings else None,
        pinged=(pings.texts("pinged") or ()) if pings else None,
        read_at=read_at,
    )


class Source(Protocol):
    """What the service needs of a site, over REST (``RestSource``) or XML-RPC
    (``xmlrpcsource.XmlrpcSource``)."""

    def info(self) -> SiteInfo: ...
    def newest_modified(self) -> str | None: ...
    def scheduled(self) -> Iterator[Post]: ...
    def changed(self, since: str, seen: frozenset[tuple[int, str]] = frozenset()
                ) -> Iterator[Post]: ...
    def posts(self, ids: list[int]) -> list[Post]: ...
    def archive(self, since: datetime, until: datetime | None
                ) -> Iterator[tuple[list[Post], int]]: ...
    def deletions(self, since: str) -> list[Deleted]: ...
    def record_pinged(self, post_id: int, urls: list[str]) -> None: ...
    def record_pinged_many(self, posts: Mapping[int, list[str]]) -> None: ...
    def check(self) -> tuple[SiteInfo, dict[str, Any] | None]: ...
    def bridge(self) -> bool: ...


def make_source(http: Http, site: SiteSettings, per_page: int = 100) -> Source:
    """The source for a site's ``api``."""
    if site.api == "xmlrpc":
        from wpnotify.xmlrpcsource import XmlrpcSource  # it imports this module

        return XmlrpcSource(http, site, per_page)
    return RestSource(http, site, per_page)
