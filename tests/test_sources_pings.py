"""Received pings over REST (issue 16): the records read from WordPress's comments answers
(a saved real answer, and hostile ones: each fault one SourceError line naming the site, text
cut to what is kept), and the source's paging and moderation against a stand-in WordPress on
127.0.0.1 whose comment list changes while it is read."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from receivers import LocalServer, QuietHandler, reply, serving

from wpnotify.errors import SourceError
from wpnotify.http import Http
from wpnotify.settings import HttpSettings, SiteSettings
from wpnotify.sources.records import (
    MAX_PING_AUTHOR,
    MAX_PING_CONTENT,
    MAX_PING_SOURCE,
    ReceivedPing,
    ping_list,
    received_ping,
)
from wpnotify.sources.rest import RestSource
from wpnotify.times import wp_time

DATA = Path(__file__).parent / "data"
SITE = "http://blog.example"


# --- records -------------------------------------------------------------------------------

def comment(**fields: Any) -> dict[str, Any]:
    """A REST comment of type trackback (context=edit), with these fields changed (``...``
    removes one)."""
    item: dict[str, Any] = {
        "id": 12, "post": 4, "type": "trackback", "status": "hold",
        "author_url": "http://other.example/reply/", "author_name": "Other blog",
        "author_ip": "203.0.113.5", "date_gmt": "2026-11-30T12:35:14",
        "content": {"rendered": "<p>x</p>", "raw": "<strong>A reply</strong>\n\nText"}}
    item.update(fields)
    return {k: v for k, v in item.items() if v is not ...}


def test_a_saved_wordpress_answer_reads_as_pings() -> None:
    """WordPress 6.1's own answer (captured from a dev site: a real trackback and a
    pingback) reads field by field, newest first as listed."""
    items = json.loads((DATA / "wordpress-pings.json").read_text())
    pingback, trackback = ping_list(SITE, items)
    assert trackback == ReceivedPing(
        comment_id=2, post_id=4, kind="trackback", status="hold",
        source="http://127.0.0.77/tb-source/", author="Other blog", author_ip="127.0.0.1",
        content="<strong>A reply &amp; more</strong>\n\nLinking here \u2014 with text",
        date_gmt=wp_time("2026-11-30T12:35:14"))
    assert (pingback.kind, pingback.author, pingback.source, pingback.author_ip) == (
        "pingback", "A page title", "http://127.0.0.78/pb/", "127.0.0.78")
    assert pingback.content == "[&#8230;] the context of the link [&#8230;]"
    assert pingback.date_gmt.utcoffset() is not None and not pingback.date_gmt.utcoffset()


def test_optional_fields_missing_read_as_empty_text() -> None:
    """A plugin that hides the IP or the content (or a null URL) leaves "" there, not a
    failure: the verdict can still be reached, or says what is missing."""
    ping = received_ping(SITE, comment(author_ip=..., content=..., author_url=None,
                                       author_name=...))
    assert (ping.author_ip, ping.content, ping.source, ping.author) == ("", "", "", "")
    assert received_ping(SITE, comment(content={"rendered": "x"})).content == ""


def test_huge_texts_are_cut_to_what_is_kept() -> None:
    """A hostile sender's megabyte title or excerpt is cut, in linear time."""
    big = "a" * 2_000_000
    ping = received_ping(SITE, comment(author_url=big, author_name=big, author_ip=big,
                                       content={"raw": big}, status=big))
    assert (len(ping.source), len(ping.author), len(ping.content)) == (
        MAX_PING_SOURCE, MAX_PING_AUTHOR, MAX_PING_CONTENT)
    assert len(ping.author_ip) <= 100 and len(ping.status) <= 20


def test_a_lone_surrogate_reads_as_a_replacement_character() -> None:
    assert received_ping(SITE, comment(author_name="a\ud800b")).author == "a\ufffdb"


HOSTILE = {
    "no id": (comment(id=...), "without an id"),
    "id as text": (comment(id="12"), "whose id is a string instead of a number"),
    "id fraction": (comment(id=12.5), "whose id is not a whole number"),
    "id negative": (comment(id=-1), "whose id is negative"),
    "id huge": (comment(id=10**30), "larger than any post ID"),
    "post true": (comment(post=True), "whose post is true/false instead of a number"),
    "no post": (comment(post=...), "without a post"),
    "a comment": (comment(type="comment"), "whose type is neither trackback nor pingback"),
    "no type": (comment(type=...), "without a type"),
    "type a list": (comment(type=["trackback"]), "whose type is a list instead of a string"),
    "status a number": (comment(status=1), "whose status is a number instead of a string"),
    "url a list": (comment(author_url=["x"]), "whose author_url is a list instead of a string"),
    "ip an object": (comment(author_ip={}), "whose author_ip is an object instead of a string"),
    "content text": (comment(content="raw"), "whose content is a string instead of an object"),
    "raw a number": (comment(content={"raw": 5}), "whose content.raw is a number instead"),
    "bad date": (comment(date_gmt="yesterday"), "whose date_gmt is not a time like"),
    "no date": (comment(date_gmt=...), "without a date_gmt"),
    "a list": ([1, 2], "returned a ping that is a list instead of an object"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_comments_are_one_source_error_line(case: str) -> None:
    raw, expected = HOSTILE[case]
    with pytest.raises(SourceError) as caught:
        ping_list(SITE, [comment(id=1), raw])
    message = str(caught.value)
    assert message.startswith(SITE) and expected in message, message
    assert "\n" not in message and len(message) < 300


def test_a_list_that_is_no_list_is_named() -> None:
    with pytest.raises(SourceError, match="returned the list of pings as an object instead"):
        ping_list(SITE, {"0": comment()})


# --- a stand-in WordPress whose comments change while they are read ----------------------

STATUSES = {"hold": {"hold"}, "all": {"hold", "approved"},
            "any": {"hold", "approved", "spam", "trash"}}


class Blog(LocalServer):
    """Comments by ID; ``after_list`` runs after each listing is answered (to change the
    list between pages); ``refuse`` answers every request with (status, code)."""

    def __init__(self) -> None:
        super().__init__(_BlogHandler)
        self.comments: dict[int, dict[str, Any]] = {}
        self.posts: dict[str, dict[int, str]] = {"posts": {}, "pages": {}}
        self.lists: list[dict[str, str]] = []  # the query of each listing
        self.after_list: Callable[[int], None] = lambda number: None
        self.refuse: tuple[int, str] | None = None
        self.locked_status: str | None = None  # a plugin refusing any change of status

    def add(self, number: int, status: str = "hold", kind: str = "trackback") -> None:
        self.comments[number] = comment(id=number, status=status, type=kind,
                                        author_url=f"http://other.example/{number}/")


class _BlogHandler(QuietHandler):
    server: Blog

    def answer(self, status: int, value: Any) -> None:
        reply(self, status, json.dumps(value).encode(), "application/json", {})

    def do_GET(self) -> None:
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        route = query.pop("rest_route", "")
        if self.server.refuse:
            status, code = self.server.refuse
            self.answer(status, {"code": code, "message": "Sorry.", "data": {"status": status}})
        elif route == "/wp/v2/comments":
            self.listing(query)
        elif route.startswith("/wp/v2/comments/"):
            found = self.server.comments.get(int(route.rsplit("/", 1)[1]))
            self.answer(*((200, found) if found else (404, {"code": "rest_comment_invalid_id",
                                                           "message": "Invalid comment ID."})))
        elif route in ("/wp/v2/posts", "/wp/v2/pages"):
            ids = [int(i) for i in query["include"].split(",")]
            links = self.server.posts[route.rsplit("/", 1)[1]]
            self.answer(200, [{"id": i, "link": links[i], "type": route[7:-1]}
                              for i in ids if i in links])
        else:
            self.answer(404, {"code": "rest_no_route", "message": "No route was found."})

    def listing(self, query: dict[str, str]) -> None:
        self.server.lists.append(query)
        assert (query["type"], query["orderby"], query["order"], query["context"]) == (
            "pings", "id", "desc", "edit")
        wanted = STATUSES[query["status"]]
        found = [c for _, c in sorted(self.server.comments.items(), reverse=True)
                 if c["status"] in wanted]
        offset, size = int(query.get("offset", 0)), int(query["per_page"])
        self.answer(200, found[offset:offset + size])
        self.server.after_list(len(self.server.lists))

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        route = parse_qs(urlsplit(self.path).query)["rest_route"][0]
        if self.server.refuse:
            status, code = self.server.refuse
            self.answer(status, {"code": code, "message": "Sorry."})
            return
        found = self.server.comments[int(route.rsplit("/", 1)[1])]
        if found["status"] == body["status"] or self.server.locked_status:
            self.answer(500, {"code": "rest_comment_failed_edit",
                              "message": "Updating comment status failed."})
            return
        found["status"] = body["status"]
        self.answer(200, found)


@pytest.fixture()
def blog() -> Iterator[Blog]:
    with serving(Blog(), poll=0.02) as server:
        assert isinstance(server, Blog)
        yield server


def source(blog: Blog, per_page: int = 3, **site: Any) -> RestSource:
    settings = SiteSettings(name="s", url=blog.url("").rstrip("/"), username="editor",
                            password="app pass word 1234", **site)  # type: ignore[arg-type]
    return RestSource(Http(HttpSettings(allow_private_addresses=True)), settings, per_page)


def ids(batch: Any) -> list[int]:
    return [ping.comment_id for ping in batch.pings]


def test_a_first_read_takes_the_held_pings_and_the_newest_of_any_status(blog: Blog) -> None:
    """Approved, spam and trashed pings are not listed, but the cursor passes them; the held
    ones come oldest first from every page."""
    for number in range(1, 9):
        blog.add(number, "approved" if number == 2 else "hold",
                 "pingback" if number % 2 else "trackback")
    blog.add(9, "spam")
    blog.add(10, "trash")
    batch = source(blog).pings(None)
    assert ids(batch) == [1, 3, 4, 5, 6, 7, 8] and batch.newest == 10
    # 8-6, 5-3, 1 would be three: each page starts at the last one's lowest (overlap)
    assert [q["status"] for q in blog.lists] == ["any", "hold", "hold", "hold", "hold"]
    assert blog.lists[0]["per_page"] == "1"


def test_an_empty_site_has_no_cursor(blog: Blog) -> None:
    assert source(blog).pings(None).newest is None
    assert source(blog).pings(5).newest is None


def test_a_later_read_takes_held_and_approved_above_the_cursor_and_stops_there(
        blog: Blog) -> None:
    """Paging stops at the first page that reaches the cursor: old pings are not read."""
    for number in range(1, 30):
        blog.add(number, "approved" if number % 3 else "hold")
    blog.add(30, "spam")
    batch = source(blog).pings(24)
    assert ids(batch) == [25, 26, 27, 28, 29] and batch.newest == 29
    assert [q["status"] for q in blog.lists] == ["all", "all", "all"]  # 29-27, 27-25, 25-23


def test_pings_arriving_while_paging_are_not_listed_twice(blog: Blog) -> None:
    """New pings push the list down between pages: what was read is read again, once."""
    for number in range(1, 11):
        blog.add(number)

    def arrive(count: int) -> None:
        if count in (1, 2):
            blog.add(100 + count)
            blog.add(200 + count)
    blog.after_list = arrive
    batch = source(blog).pings(0)
    assert ids(batch)[:10] == list(range(1, 11))
    assert len(ids(batch)) == len(set(ids(batch))) and ids(batch) == sorted(ids(batch))


@pytest.mark.parametrize("removed", [1, 2, 3, 5])
def test_pings_removed_while_paging_do_not_push_another_past_a_page(
        blog: Blog, removed: int) -> None:
    """A person marks pings spam (or deletes them) while the list is read: the rest move
    up, and without the overlap and the step back the ping at the page boundary would be
    skipped."""
    for number in range(1, 21):
        blog.add(number)

    def remove(count: int) -> None:
        if count == 2:  # after the first page of held pings (the first listing is "any")
            for number in range(20, 20 - removed, -1):
                del blog.comments[number]
    blog.after_list = remove
    batch = source(blog, per_page=4).pings(None)
    assert set(range(1, 21 - removed)) <= set(ids(batch)), ids(batch)
    assert ids(batch) == sorted(set(ids(batch)))


def test_moderation_sets_reads_back_and_takes_an_unchanged_status(blog: Blog) -> None:
    """WordPress answers 500 when the status is already the one asked: that is the answer,
    read back; a plugin refusing the change is one line; a gone comment reads as None;
    trash and hold are never asked for."""
    blog.add(5)
    site = source(blog)
    assert site.set_comment_status(5, "spam") == "spam"
    assert site.comment_status(5) == "spam"
    assert site.set_comment_status(5, "spam") == "spam"
    blog.locked_status = "spam"
    with pytest.raises(SourceError, match=r"did not change comment 5 to approved \(it is spam\)"):
        site.set_comment_status(5, "approved")
    assert site.comment_status(6) is None
    for status in ("trash", "hold", "unspam"):
        with pytest.raises(ValueError):
            site.set_comment_status(5, status)


@pytest.mark.parametrize(("status", "code"), [(403, "rest_forbidden_context"),
                                              (403, "rest_forbidden_param"),
                                              (403, "rest_cannot_edit")])
def test_a_user_who_may_not_moderate_gets_one_line_naming_the_role(
        blog: Blog, status: int, code: str) -> None:
    blog.add(5)
    blog.refuse = (status, code)
    site = source(blog)
    for call in (site.can_moderate, lambda: site.pings(3), lambda: site.comment_status(5),
                 lambda: site.set_comment_status(5, "spam")):
        with pytest.raises(SourceError) as caught:
            call()
        message = str(caught.value)
        assert message == (
            f"{site.site.url}: user 'editor' cannot moderate comments (needs "
            "moderate_comments: an Editor or Administrator), which inbound = \"report\" or "
            "\"moderate\" needs; give the user that role or set inbound = \"off\""), message


def test_wrong_credentials_still_say_so(blog: Blog) -> None:
    """A bad Application Password is not a missing role."""
    blog.refuse = (401, "incorrect_password")
    with pytest.raises(SourceError, match="refused the credentials of 'editor'"):
        source(blog).can_moderate()


def test_post_links_find_posts_and_pages_and_leave_out_the_missing(blog: Blog) -> None:
    blog.posts["posts"] = {4: "http://blog.example/a/", 9: "http://blog.example/b/"}
    blog.posts["pages"] = {7: "http://blog.example/about/"}
    found = source(blog, per_page=2).post_links([9, 4, 7, 8, 4])
    assert found == {4: ("http://blog.example/a/", "post"), 9: ("http://blog.example/b/", "post"),
                     7: ("http://blog.example/about/", "page")}
    assert source(blog).post_links([]) == {}
