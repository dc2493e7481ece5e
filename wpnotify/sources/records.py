"""What a source returns: plain records, times as aware UTC datetimes (wpnotify.times).

Both sources build the same records, so the service never knows which protocol read a site.
A record also carries what the answer that brought it said about the site (its clock, the
bridge's field), so that nothing learned on the way is left behind as state on the client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wpnotify.answer import Answer, listing

MAX_TARGET = 2000  # the bridge keeps a row's target to this many characters

#: Takes what one answer named: the newest deletion, and the newest Send again request.
Heard = Callable[[datetime | None, int | None], None]


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
    modified_gmt: datetime | None  # None for WordPress's zero date (a direct database write)
    date_gmt: datetime | None  # None for a draft's zero date
    to_ping: tuple[str, ...] | None
    pinged: tuple[str, ...] | None
    # WordPress's clock when this copy was read (its HTTP Date); None when it did not say
    # (see settled).
    read_at: datetime | None = None
    # Whether the answer carried the bridge's ``wpnotify`` field (REST registers it on every
    # post, null where the lists are withheld): the bridge's own word, with no request more.
    # None where a post cannot tell (XML-RPC): ask the source's ``bridge()``.
    bridge: bool | None = None

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
    deleted_gmt: datetime
    read_at: datetime | None = None  # as Post.read_at

    @property
    def settled(self) -> bool:
        """True when no later deletion can carry the same ``deleted_gmt``."""
        return settled(self.deleted_gmt, self.read_at)


def settled(stamp: datetime | None, read_at: datetime | None) -> bool:
    """WordPress keeps times to the second: whatever happens later in the second of
    ``stamp`` gets the same time. True when that second had ended at ``read_at`` (WordPress's
    clock when it answered), so nothing more can come with that time. A zero date (None)
    sorts before every time, as the empty text it was."""
    return read_at is not None and (stamp is None or read_at > stamp)


@dataclass(frozen=True)
class SiteInfo:
    name: str
    home: str


@dataclass(frozen=True)
class ResendRequest:
    """A Send again request made in WordPress (the bridge's route 4): send this post's
    notification of ``kind`` to ``target`` again. ``id`` grows with each request."""

    id: int
    post: int
    kind: str
    target: str
    requested_gmt: str  # as the bridge wrote it; shown only


class Changes:
    """The posts changed since a time, read page by page as this is iterated (once), and
    what the site said on the way about deletions: a REST site with the bridge names its
    newest deletion in every answer, so a poll learns from its own reading whether there is
    anything to ask for (an idle poll stays one request). A source that cannot say
    (``tells_deletions`` False, XML-RPC) leaves the question open: ask every time.

    ``newest_deletion`` is complete once the posts have been read. So is ``newest_resend``,
    the newest Send again request the bridge names (None: none, or a source that cannot
    tell; such a source has no requests to read either)."""

    def __init__(self, posts: Iterable[Post] = (), *, tells_deletions: bool = False,
                 newest_resend: int | None = None) -> None:
        self.tells_deletions = tells_deletions
        self.newest_deletion: datetime | None = None
        self.newest_resend = newest_resend
        self._posts: Iterator[Post] = iter(posts)

    @classmethod
    def reading(cls, read: Callable[[Heard], Iterator[Post]]) -> Changes:
        """Changes from a site that tells its deletions: ``read`` gets the function to hand
        each answer's newest deletion and newest Send again request to."""
        changes = cls(tells_deletions=True)
        changes._posts = read(changes._heard)
        return changes

    def __iter__(self) -> Iterator[Post]:
        return self._posts

    def _heard(self, stamp: datetime | None, resend: int | None = None) -> None:
        if stamp is not None and (self.newest_deletion is None or stamp > self.newest_deletion):
            self.newest_deletion = stamp
        if resend is not None and (self.newest_resend is None or resend > self.newest_resend):
            self.newest_resend = resend

    def may_have_deleted(self, since: datetime) -> bool:
        """Whether posts may have been deleted for good after ``since``, by what the site
        said while these were read."""
        if not self.tells_deletions:
            return True
        return self.newest_deletion is not None and self.newest_deletion > since


def deleted_list(site: str, items: Any, read_at: datetime | None = None) -> list[Deleted]:
    """The bridge's list of deletions, checked (see wpnotify.answer)."""
    found = [Answer(site, "a deleted post", item)
             for item in listing(site, "the list of deleted posts", items or [])]
    return [Deleted(i.id(), i.text("type", "post"), i.text("link"), i.stamp("deleted_gmt"),
                    read_at) for i in found]


def resend_list(site: str, items: Any, since: int) -> list[ResendRequest]:
    """The bridge's Send again requests after ``since``, oldest first, checked (see
    wpnotify.answer): IDs are numbers, kinds and targets text."""
    found = []
    for raw in listing(site, "the list of Send again requests", items):
        item = Answer(site, "a Send again request", raw)
        number, post = _number(item, "id"), _number(item, "post")
        kind, target = item.value("kind", str, "a string", required=True), \
            item.value("target", str, "a string", required=True)
        if len(kind) > 64 or len(target) > MAX_TARGET:
            item.fail(f"whose kind or target is longer than the bridge stores ({MAX_TARGET})")
        if number > since:
            found.append(ResendRequest(number, post, kind, target, item.text("requested_gmt")))
    return sorted(found, key=lambda request: request.id)


def _number(item: Answer, key: str) -> int:
    """An ID sent as a JSON number (``Answer.id`` also takes digits in a string, as XML-RPC
    sends them; the bridge's REST routes never do)."""
    if isinstance(item.fields.get(key), float):
        item.fail(f"whose {key} is not a whole number")
    item.value(key, int, "a number", required=True)
    return item.id(key)


def bridge_status(site: str, status: Any) -> dict[str, Any]:
    """The bridge's status (version, whether core's sending is off): its plain values only,
    as they are shown to the user."""
    fields = Answer(site, "the bridge's status", status).fields
    return {key: value for key, value in fields.items()
            if isinstance(value, str | bool | int | float)}


# --- received pings (issue 16) -------------------------------------------------------------

PING_KINDS = frozenset({"trackback", "pingback"})
# Text is kept to what the state stores (and a person reads): a site's answer may carry a
# comment of any size (a plugin, or a hostile sender's pingback title).
MAX_PING_SOURCE = 2000
MAX_PING_AUTHOR = 500
MAX_PING_CONTENT = 4000
MAX_PING_IP = 100  # an IPv6 address with a zone fits; anything longer is no address
MAX_PING_STATUS = 20  # WordPress's comment_approved is varchar(20)


@dataclass(frozen=True)
class ReceivedPing:
    """A trackback or pingback comment as WordPress holds it (REST, context=edit)."""

    comment_id: int
    post_id: int
    kind: str  # "trackback" | "pingback" (REST `type`)
    status: str  # REST `status`: "hold" | "approved" | "spam" | "trash" (others as given)
    source: str  # `author_url`: the page that sent the ping
    author: str  # `author_name` (a trackback's blog_name, a pingback's page title)
    author_ip: str  # `author_ip` ("" when absent)
    content: str  # `content.raw`, capped at MAX_PING_CONTENT characters
    date_gmt: datetime | None  # aware UTC; None for WordPress's zero date ("-0001-11-30…")


@dataclass(frozen=True)
class PingBatch:
    """What one read of a site's pings found."""

    pings: list[ReceivedPing]  # oldest first (ascending comment_id), no duplicates
    newest: int | None  # highest comment ID of any ping seen (the next cursor); None: none


def received_ping(site: str, raw: Any) -> ReceivedPing:
    """One REST comment of type trackback or pingback, its shape checked (see
    wpnotify.answer): IDs are numbers, texts are strings, cut to what is kept. A comment of
    another type means something between wpnotify and WordPress ignored ``type=pings``."""
    item = Answer(site, "a ping", raw)
    kind = item.value("type", str, "a string", required=True)
    if kind not in PING_KINDS:
        item.fail("whose type is neither trackback nor pingback")
    content = item.part("content")
    return ReceivedPing(
        comment_id=_number(item, "id"),
        post_id=_number(item, "post"),
        kind=kind,
        status=item.value("status", str, "a string", required=True)[:MAX_PING_STATUS],
        source=item.text("author_url")[:MAX_PING_SOURCE],
        author=item.text("author_name")[:MAX_PING_AUTHOR],
        author_ip=item.text("author_ip")[:MAX_PING_IP],
        content=(content.text("raw") if content else "")[:MAX_PING_CONTENT],
        date_gmt=_ping_date(item),
    )


ZERO_DATE = "-0001-11-30T00:00:00"  # mysql_to_rfc3339("0000-00-00 00:00:00")


def _ping_date(item: Answer) -> datetime | None:
    """When the ping arrived; None for a comment stored without a date (imports and plugins
    calling wp_insert_comment write a zero one, which WordPress answers as ZERO_DATE): one
    such ping must not stop the reading of the others."""
    if item.value("date_gmt", str, "a time", required=True) == ZERO_DATE:
        return None
    return item.stamp("date_gmt")


def ping_list(site: str, items: Any) -> list[ReceivedPing]:
    """A page of the comments route, checked."""
    return [received_ping(site, raw) for raw in listing(site, "the list of pings", items)]
