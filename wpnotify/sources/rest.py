"""The WordPress source over the REST API, with an Application Password.

It returns plain post records and never decides what to send. Requests use the ``?rest_route=``
form, which works with and without pretty permalinks. Received pings and their moderation
(issue 16) are in ``comments``. The bridge plugin, when installed, adds a
``wpnotify`` field (the post's ``to_ping`` and ``pinged`` lists), a route to record pings, and
to every answer the time of the newest deletion (``X-Wpnotify-Deleted``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import structlog

from wpnotify.answer import MAX_ID_DIGITS, Answer, listing, stamp
from wpnotify.errors import BridgeTooOld, PostGone, SendError, SourceError
from wpnotify.http import Http, Response
from wpnotify.settings import SiteSettings
from wpnotify.sources.base import OVERLAP, WATCHED_STATUSES, record_each
from wpnotify.sources.comments import CommentRoutes
from wpnotify.sources.records import (
    Changes,
    Deleted,
    Heard,
    Post,
    ResendRequest,
    SiteInfo,
    bridge_status,
    deleted_list,
    resend_list,
)
from wpnotify.times import http_date, whole_second, wp_text, wp_time

log = structlog.get_logger("wpnotify.wordpress")

FIELDS = ("id,type,status,link,title,content,excerpt,password,modified_gmt,date_gmt,wpnotify")
REST_BASES = {"post": "posts", "page": "pages"}
FIRST_PAGE = 20  # posts in a backfill's first page
CREDENTIAL_CODES = frozenset({"incorrect_password", "invalid_username", "invalid_email",
                              "rest_not_logged_in", "rest_forbidden_context",
                              "rest_cannot_view", "rest_forbidden"})
STATUS_ANSWER_BYTES = 1024 * 1024  # the bridge's answer to a status push: a count and ids
RESEND_BYTES = 4 * 1024 * 1024  # its list of Send again requests: 1,000 at most, ~2 KB each
RESEND_CAP = 500  # requests taken per poll; the rest at the next one (the header says so)


class RestSource(CommentRoutes):
    """Reads one site. ``per_page`` is WordPress's maximum, 100, unless a test lowers it.
    The comment routes (received pings, moderation: ``pings``, ``post_links``,
    ``comment_status``, ``set_comment_status``, ``can_moderate``) come from
    ``comments.CommentRoutes``; they are REST only, so not in the ``Source`` protocol."""

    def __init__(self, http: Http, site: SiteSettings, per_page: int = 100) -> None:
        self.http = http
        self.site = site
        self.per_page = per_page
        self._info: SiteInfo | None = None
        self._bases: dict[str, str] = dict(REST_BASES)

    # --- requests ------------------------------------------------------------------------

    def _url(self, route: str, params: dict[str, Any] | None = None) -> str:
        query = urlencode({"rest_route": route, **(params or {})}, safe="/,:")
        return f"{self.site.url}/?{query}"

    def _call(self, route: str, params: dict[str, Any] | None = None, *,
              post: dict[str, Any] | None = None) -> Any:
        return self._decode(self._request(route, params, post=post))

    def _request(self, route: str, params: dict[str, Any] | None = None, *,
                 post: dict[str, Any] | None = None, max_bytes: int | None = None
                 ) -> Response:
        url = self._url(route, params)
        auth = (self.site.username, self.site.secret())
        try:
            if post is None:
                resp = self.http.get(url, auth=auth, max_bytes=max_bytes or 64 * 1024 * 1024,
                                     trusted=True)
            else:
                resp = self.http.post(url, json_body=post, auth=auth,
                                      max_bytes=max_bytes or 1024 * 1024, trusted=True)
        except SendError as exc:
            raise SourceError(f"cannot reach {self.site.url}: {exc.message}") from None
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

    def _list(self, post_type: str, params: dict[str, Any], heard: Heard | None = None
              ) -> list[Post]:
        resp = self._request(f"/wp/v2/{self._base(post_type)}",
                             {"context": "edit", "_fields": FIELDS, "per_page": self.per_page,
                              **params})
        items = listing(self.site.url, "the post list", self._decode(resp))
        if heard is not None:
            heard(deletion_mark(resp), resend_mark(resp))
        read_at = http_date(resp.header("Date"))
        return [_post(self.site.url, item, read_at) for item in items]

    # --- posts ---------------------------------------------------------------------------

    def newest_modified(self) -> datetime | None:
        """The newest ``modified_gmt`` among published posts: where a first poll starts.
        (Not scheduled ones: WordPress gives a new future post its future date as modified.)"""
        newest: datetime | None = None
        for post_type in self.site.post_types:
            items = self._call(f"/wp/v2/{self._base(post_type)}", {
                "context": "edit", "_fields": "id,modified_gmt", "per_page": 1,
                "status": "publish", "orderby": "modified", "order": "desc"})
            for item in listing(self.site.url, "the post list", items):
                found = Answer(self.site.url, "a post", item).stamp("modified_gmt")
                newest = found if newest is None else max(newest, found)
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

    def changed(self, since: datetime, seen: frozenset[tuple[int, datetime]] = frozenset()
                ) -> Changes:
        """Published and scheduled posts modified after ``since``, oldest change first, except
        those whose (id, modified_gmt) is in ``seen``; with the newest deletion the bridge
        named in these answers.

        Two steps, so that an idle poll costs one small request: the IDs and times of what
        changed, then the full posts for those not seen yet, 100 per request.
        """
        return Changes.reading(lambda heard: self._changed(since, seen, heard))

    def _changed(self, since: datetime, seen: frozenset[tuple[int, datetime]],
                 heard: Heard) -> Iterator[Post]:
        for post_type in self.site.post_types:
            fresh = [key for key in self._modified(post_type, since, heard) if key not in seen]
            for start in range(0, len(fresh), self.per_page):
                chunk = fresh[start:start + self.per_page]
                found = {post.id: post for post in self._list(post_type, {
                    "include": ",".join(str(i) for i, _ in chunk),
                    "status": WATCHED_STATUSES}, heard)}
                for post_id, _ in chunk:
                    if post_id in found:  # else deleted meanwhile
                        yield found.pop(post_id)

    def _modified(self, post_type: str, since: datetime, heard: Heard
                  ) -> list[tuple[int, datetime]]:
        """(id, modified_gmt) of the posts modified after ``since`` (less OVERLAP).

        Paging is by key, not by page number: each further request starts at the last time
        seen, so posts edited while we page cannot shift out of view; items already returned
        are dropped. A full page within one second (a bulk edit) is walked by ID instead,
        since MySQL orders ties arbitrarily.
        """
        after = whole_second(since) - OVERLAP
        keys: dict[tuple[int, datetime], None] = {}
        while True:
            page = self._keys(post_type, {"modified_after": _param(after),
                                          "orderby": "modified", "order": "asc"}, heard)
            keys.update(dict.fromkeys(page))
            if len(page) < self.per_page:
                return list(keys)
            last = page[-1][1]
            if last - timedelta(seconds=1) > after:
                after = last - timedelta(seconds=1)
                continue
            number = 1
            while True:  # every post of that one second, by ID
                tied = self._keys(post_type, {
                    "orderby": "id", "order": "asc", "page": number,
                    "modified_after": _param(last - timedelta(seconds=1)),
                    "modified_before": _param(last + timedelta(seconds=1))}, heard)
                keys.update(dict.fromkeys(tied))
                if len(tied) < self.per_page:
                    break
                number += 1
            after = last

    def _keys(self, post_type: str, params: dict[str, Any], heard: Heard
              ) -> list[tuple[int, datetime]]:
        resp = self._request(f"/wp/v2/{self._base(post_type)}", {
            "context": "edit", "_fields": "id,modified_gmt", "per_page": self.per_page,
            "status": WATCHED_STATUSES, **params})
        items = self._decode(resp)
        heard(deletion_mark(resp), resend_mark(resp))
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
        """Whether the site runs the bridge, as its status route says. (Posts read say it
        too, with no request: see ``Post.bridge``.) Never judged by whether a post's lists
        were read: a post without them is no sign of a missing bridge."""
        return self._status() is not None

    def deletions(self, since: datetime) -> list[Deleted]:
        """Posts deleted for good after ``since`` (bridge only). Worth asking only when the
        poll's reading named a newer one (``Changes.may_have_deleted``)."""
        resp = self._request("/wpnotify/v1/deleted", {"since": wp_text(since)})
        return deleted_list(self.site.url, self._decode(resp),
                            http_date(resp.header("Date")))

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

    # --- the editor's status rows and its Send again requests (bridge 1.2) -----------------

    def record_status_many(self, posts: Mapping[int, list[dict[str, Any]]],
                           resend_seen: int) -> list[int]:
        """Replaces these posts' status rows in WordPress (route 1; the caller sends at most
        50 posts a request, the bridge takes 100), with the newest Send again request taken;
        returns the posts it refused (deleted, or not the user's to edit)."""
        body = {"posts": {str(k): list(v) for k, v in posts.items()},
                "resend_seen": resend_seen}
        resp = self._bridge_request("/wpnotify/v1/statuses", post=body,
                                    max_bytes=STATUS_ANSWER_BYTES)
        answer = Answer(self.site.url, "an answer to the status rows", resp)
        answer.value("recorded", int, "a number", required=True)
        refused = answer.value("refused", list, "a list", required=True)
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in refused):
            answer.fail("whose refused holds something else than post IDs")
        return list(refused)

    def resend_requests(self, since: int) -> list[ResendRequest]:
        """The Send again requests after ``since`` (route 4), oldest first, RESEND_CAP at
        most: a poll takes those, and the next poll the rest (the header still names a newer
        one)."""
        items = self._bridge_request("/wpnotify/v1/resend", {"since": since},
                                     max_bytes=RESEND_BYTES)
        found = resend_list(self.site.url, items, since)
        return found[:RESEND_CAP]

    def _bridge_request(self, route: str, params: dict[str, Any] | None = None, *,
                        post: dict[str, Any] | None = None, max_bytes: int) -> Any:
        """A bridge 1.2 route: its answer decoded, or one SourceError that says what went
        wrong (an older bridge, an answer cut off at ``max_bytes``)."""
        resp = self._request(route, params, post=post, max_bytes=max_bytes)
        if resp.truncated:
            raise SourceError(f"{self.site.url} answered {route} with more than "
                              f"{max_bytes // 1024} KB, more than the wpnotify bridge sends "
                              "(a plugin changing WordPress's answers?)")
        try:
            return self._decode(resp)
        except SourceError as exc:
            if "no such REST route" not in str(exc):
                raise
            raise BridgeTooOld(f"{self.site.url} has no {route} route: its wpnotify bridge is "
                              "older than 1.2, so the editor cannot show notification statuses "
                              "or take Send again; update wordpress/wpnotify-bridge.php (and "
                              "its folder) from this wpnotify") from None


def _count(header: str | None, fallback: int) -> int:
    """X-WP-Total, the number of posts to page through (only shown to the user)."""
    header = (header or "").strip()
    return int(header) if header.isascii() and header.isdigit() and len(header) < 10 \
        else fallback


def deletion_mark(resp: Response) -> datetime | None:
    """The newest deletion the bridge names in an answer (``X-Wpnotify-Deleted``); None
    when there is none, or when it is not a WordPress time (then nothing is asked for)."""
    text = resp.header("X-Wpnotify-Deleted")
    return wp_time(text) if text and stamp(text) else None


def resend_mark(resp: Response) -> int | None:
    """The newest Send again request the bridge names in an answer (``X-Wpnotify-Resend``);
    None when there is none, or when it is no request number (then nothing is asked for)."""
    text = (resp.header("X-Wpnotify-Resend") or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS):
        return None
    return int(text)


def _param(moment: datetime) -> str:
    """A time as a REST query parameter: WordPress's form with its zone, which it reads as
    UTC instead of the site's local time."""
    return wp_text(moment) + "+00:00"


def _post(site: str, raw: Any, read_at: datetime | None = None) -> Post:
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
        modified_gmt=item.optional_stamp("modified_gmt"),  # null: WordPress's zero date
        date_gmt=item.optional_stamp("date_gmt"),
        to_ping=(pings.texts("to_ping") or ()) if pings else None,
        pinged=(pings.texts("pinged") or ()) if pings else None,
        read_at=read_at,
        bridge="wpnotify" in item.fields,  # the bridge's field, null or not
    )
