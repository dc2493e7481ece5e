"""The comment routes of the REST source: received trackbacks and pingbacks, read and
moderated (issue 16's inbound verification). REST only: XML-RPC sites cannot have inbound on
(``wp.getComments`` filters by no comment type and orders by date, not by ID), so these are
not part of the ``Source`` protocol; ``rest.RestSource`` mixes them in.

Every route here needs ``moderate_comments`` (an Editor or Administrator): WordPress refuses
``context=edit`` without it (``rest_forbidden_context``), and only the edit context carries the
author's IP and the raw content. A status is only ever set to what the caller asks, never
trashed or deleted.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from wpnotify.answer import Answer, listing
from wpnotify.errors import SourceError
from wpnotify.http import Response
from wpnotify.sources.records import PingBatch, ReceivedPing, ping_list

if TYPE_CHECKING:
    from wpnotify.settings import SiteSettings

PING_FIELDS = "id,post,type,status,author_url,author_name,author_ip,content,date_gmt"
MODERATE_CODES = frozenset({"rest_forbidden_context", "rest_cannot_edit",
                            "rest_comment_invalid_status", "rest_forbidden_param"})
SETTABLE = frozenset({"spam", "approved"})  # never "trash", never a delete
MAX_STEP_BACKS = 5  # re-reads of a page after comments vanished while paging (see pings)
POST_BASES = ("post", "page")  # post_links asks these types as well as the configured ones


class CommentRoutes:
    """The comment half of ``RestSource`` (a mixin: it uses the source's requests)."""

    if TYPE_CHECKING:  # given by RestSource
        site: SiteSettings
        per_page: int

        def _request(self, route: str, params: dict[str, Any] | None = None, *,
                     post: dict[str, Any] | None = None, max_bytes: int | None = None
                     ) -> Response: ...

        def _decode(self, resp: Response) -> Any: ...

        def _base(self, post_type: str) -> str: ...

    # --- reading pings -------------------------------------------------------------------

    def pings(self, after: int | None) -> PingBatch:
        """``after`` None (first read): every ping held for moderation now (status=hold), and
        as ``newest`` the highest ping ID of any status, asked first, so that a ping arriving
        meanwhile is either listed or above the cursor. Else every ping (status=all: held
        and approved) with comment ID > ``after``, ``newest`` the highest of those. Spam and
        trash are never listed: something (Akismet, a person) already judged them.

        Read newest first by ID (a ping's ID grows with its arrival), a page at a time,
        until an ID <= ``after`` or the last page; returned oldest first, each once (a page
        may repeat one when pings arrive while paging, which shifts the list down).

        Paging is by offset, since the route offers no "ID below" filter. A comment that
        leaves the list while we page (deleted, or marked spam by a person) shifts the rest
        up, and the one at the next page's boundary would be skipped. So each page starts at
        the last one's lowest ID (one item of overlap); a page that does not reach back to
        it shows that something vanished, and is read again a page earlier (at most
        MAX_STEP_BACKS times a read; more than that many removals meanwhile, on a busy
        moderation queue, can still skip a ping).
        """
        newest = self._newest_ping() if after is None else None
        found: dict[int, ReceivedPing] = {}
        for page in self._ping_pages("hold" if after is None else "all", after):
            for ping in page:
                if after is None or ping.comment_id > after:
                    found.setdefault(ping.comment_id, ping)
        pings = [found[key] for key in sorted(found)]
        if pings and (newest is None or pings[-1].comment_id > newest):
            newest = pings[-1].comment_id
        return PingBatch(pings, newest)

    def _ping_pages(self, status: str, after: int | None) -> list[list[ReceivedPing]]:
        """The pages of the listing (see pings), newest first."""
        pages: list[list[ReceivedPing]] = []
        overlap = 1 if self.per_page > 1 else 0
        offset, lowest, step_backs = 0, None, 0
        while True:
            page = self._ping_page(status, offset)
            if overlap and lowest is not None and step_backs < MAX_STEP_BACKS and (
                    not page or page[0].comment_id < lowest):
                step_backs += 1  # something above vanished: read from a page earlier
                offset = max(0, offset - self.per_page)
                continue
            pages.append(page)
            if len(page) < self.per_page or (after is not None
                                             and page[-1].comment_id <= after):
                return pages
            lowest = page[-1].comment_id
            offset += len(page) - overlap

    def _ping_page(self, status: str, offset: int) -> list[ReceivedPing]:
        items = self._comments({"type": "pings", "status": status, "orderby": "id",
                                "order": "desc", "per_page": self.per_page,
                                "offset": offset, "_fields": PING_FIELDS})
        return ping_list(self.site.url, items)

    def _newest_ping(self) -> int | None:
        """The highest ping ID of any status (spam and trash too): where a first read's
        cursor starts."""
        items = self._comments({"type": "pings", "status": "any", "orderby": "id",
                                "order": "desc", "per_page": 1, "_fields": "id"})
        found = listing(self.site.url, "the list of pings", items)
        return Answer(self.site.url, "a ping", found[0]).id() if found else None

    # --- one comment ---------------------------------------------------------------------

    def comment_status(self, comment_id: int) -> str | None:
        """The comment's status now (context=edit); None when it is gone (deleted, or its
        post deleted for good: WordPress answers 404 for both)."""
        resp = self._request(f"/wp/v2/comments/{int(comment_id)}",
                             {"context": "edit", "_fields": "id,status"})
        if resp.status == 404 and _code(resp) in ("rest_comment_invalid_id",
                                                        "rest_post_invalid_id"):
            return None
        found = Answer(self.site.url, "a comment", self._checked(resp))
        return str(found.value("status", str, "a string", required=True))[:20]

    def set_comment_status(self, comment_id: int, status: str) -> str:
        """POST /wp/v2/comments/<id> {"status": "spam" | "approved"}; returns the status
        WordPress reports after it. Never "trash" or a delete (refused here, as a bug).

        WordPress answers 500 ``rest_comment_failed_edit`` when the comment already has that
        status (``handle_status_param`` compares first): then the status read back is
        the answer."""
        if status not in SETTABLE:
            raise ValueError(f"wpnotify never sets a comment to {status!r}")
        route = f"/wp/v2/comments/{int(comment_id)}"
        resp = self._request(route, {"context": "edit", "_fields": "id,status"},
                             post={"status": status})
        if resp.status == 500 and _code(resp) == "rest_comment_failed_edit":
            now = self.comment_status(comment_id)
            if now is None:
                raise SourceError(f"{self.site.url} has no comment {comment_id} any more")
            if now != status:
                raise SourceError(f"{self.site.url} did not change comment {comment_id} to "
                                  f"{status} (it is {now}); a plugin may refuse the change")
            return now
        found = Answer(self.site.url, "a comment", self._checked(resp))
        return str(found.value("status", str, "a string", required=True))[:20]

    def can_moderate(self) -> None:
        """Raises SourceError when the site's user may not moderate comments, which every
        route here needs. Asks the pings listing itself (one ping, edit context)."""
        self._comments({"type": "pings", "status": "hold", "per_page": 1, "_fields": "id"})

    # --- posts the pings name ------------------------------------------------------------

    def post_links(self, ids: list[int]) -> dict[int, tuple[str, str]]:
        """post ID -> (permalink, post type) for the posts that exist, of any status the user
        can read (trashed ones count as gone), among posts, pages and the configured post
        types; a missing ID is not in the dict."""
        wanted = sorted(set(ids))
        found: dict[int, tuple[str, str]] = {}
        types = dict.fromkeys([*POST_BASES, *self.site.post_types])
        for post_type in types:
            missing = [i for i in wanted if i not in found]
            for start in range(0, len(missing), self.per_page):
                chunk = ",".join(str(i) for i in missing[start:start + self.per_page])
                resp = self._request(f"/wp/v2/{self._base(post_type)}", {
                    "context": "edit", "_fields": "id,link,type", "status": "any",
                    "include": chunk, "per_page": self.per_page})
                for raw in listing(self.site.url, "the post list", self._decode(resp)):
                    item = Answer(self.site.url, "a post", raw)
                    found[item.id()] = (item.text("link"), item.text("type", post_type))
        return {key: value for key, value in found.items() if key in wanted}

    # --- requests ------------------------------------------------------------------------

    def _comments(self, params: dict[str, Any]) -> Any:
        return self._checked(self._request("/wp/v2/comments", {"context": "edit", **params}))

    def _checked(self, resp: Response) -> Any:
        """The decoded answer; a refusal of the edit context or of a status change becomes
        the one line that names the role needed (not "check the password": it is right)."""
        if resp.status in (400, 401, 403) and _code(resp) in MODERATE_CODES:
            raise SourceError(
                f"{self.site.url}: user {self.site.username!r} cannot moderate comments "
                "(needs moderate_comments: an Editor or Administrator), which inbound = "
                '"report" or "moderate" needs; give the user that role or set inbound = "off"')
        return self._decode(resp)


def _code(resp: Response) -> str | None:
    """The WordPress error code of an answer, if it is one (else None; never a failure:
    the caller's ``_decode`` then says what is wrong with the answer)."""
    try:
        found = json.loads(resp.body)
    except (ValueError, RecursionError):
        return None
    code = found.get("code") if isinstance(found, dict) else None
    return code if isinstance(code, str) else None
