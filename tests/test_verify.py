"""Inbound verification (wpnotify.verify): the pure half as tables, the linear-time promise on
hostile pages, and the sending half against local threaded servers on loopback (a watched
site on 127.0.0.61 and source pages on 127.0.0.62, reached by name through a test resolver)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from receivers import reply, serving

from wpnotify import verify
from wpnotify.errors import SendError
from wpnotify.http import Http
from wpnotify.settings import HttpSettings
from wpnotify.verify import (
    Finding,
    SourcePage,
    check,
    fetch_source,
    finding_of_error,
    host_allowed,
    judge,
    links_to,
    post_addresses,
    resolve,
    site_links,
    text_on_page,
    trackback_text,
)

HOME = "https://blog.example"
PERMALINK = "https://blog.example/2026/11/hello-world/"
POST = post_addresses(PERMALINK, HOME, 42, "post")
PAGE = post_addresses("https://blog.example/about/", HOME, 7, "page")
SOURCE = "https://other.example/a-post/"


def a(href: str) -> str:
    return f'<p>See <a href="{href}">this</a>.</p>'


# --- the post's URLs ------------------------------------------------------------------------

# (a link on the source page, whether it is the post 42)
POST_LINKS = [
    (PERMALINK, True),
    ("https://blog.example/2026/11/hello-world", True),  # no trailing slash
    ("http://blog.example/2026/11/hello-world/", True),  # http and https alike
    ("https://BLOG.example:443/2026/11/hello-world/", True),  # case and default port
    ("https://blog.example/2026/11/hello-world/#comments", True),  # fragment dropped
    ("https://blog.example/2026/11/hello-w%6Frld/", True),  # an escaped unreserved letter
    ("https://blog.example/?p=42", True),  # the shortlink
    ("https://blog.example?p=42", True),
    ("http://blog.example/index.php?p=42", True),
    ("https://blog.example/?p=42#respond", True),
    ("https://blog.example/?p=42&utm_source=x", False),  # other parameters: not the post
    ("https://blog.example/2026/11/hello-world/?replytocom=3", False),
    ("https://blog.example/?p=43", False),
    ("https://blog.example/?page_id=42", False),  # page_id is for pages
    ("https://blog.example/2026/11/hello-world/trackback/", False),
    ("https://blog.example:8080/2026/11/hello-world/", False),  # another port, another site
    ("https://www.blog.example/2026/11/hello-world/", False),
    ("https://blog.example/", False),
    ("ftp://blog.example/2026/11/hello-world/", False),
    ("/2026/11/hello-world/", False),  # relative: resolved against the source, elsewhere
]


@pytest.mark.parametrize(("link", "is_post"), POST_LINKS)
def test_a_link_is_the_post_in_any_of_its_forms_and_only_then(link: str,
                                                              is_post: bool) -> None:
    """Permalink with or without slash, http/https, fragment dropped, ?p= and index.php?p=
    shortlinks; another query, post, port or host is not the post (issue 16, item 2)."""
    found = links_to(a(link), SOURCE, POST)
    assert (found is not None) is is_post
    if is_post:
        assert found == link


def test_a_page_is_also_its_page_id_shortlink() -> None:
    for link in ("https://blog.example/?page_id=7", "https://blog.example/index.php?page_id=7",
                 "https://blog.example/?p=7", "https://blog.example/about"):
        assert links_to(a(link), SOURCE, PAGE) == link


def test_non_ascii_slugs_match_in_either_spelling() -> None:
    """WordPress's permalink holds the slug percent-encoded (lower case); a page may write it
    raw or with upper-case escapes: all are the same URL."""
    addresses = post_addresses("https://blog.example/caf%c3%a9/", HOME, 1, "post")
    for link in ("https://blog.example/café/", "https://blog.example/caf%C3%A9",
                 "https://blog.example/caf%c3%a9/"):
        assert links_to(a(link), SOURCE, addresses) == link


def test_a_home_in_a_subdirectory_gives_its_shortlinks_there() -> None:
    addresses = post_addresses("https://blog.example/blog/hello/", "https://blog.example/blog/",
                               5, "post")
    assert links_to(a("https://blog.example/blog/?p=5"), SOURCE, addresses) is not None
    assert links_to(a("https://blog.example/blog/index.php?p=5"), SOURCE, addresses)
    assert links_to(a("https://blog.example/?p=5"), SOURCE, addresses) is None


# --- links on the page ----------------------------------------------------------------------

def test_only_a_elements_count_as_links() -> None:
    """A link in a comment, a script, a textarea, escaped text, or another element's URL is
    no link (the tokenizer, not a string search)."""
    html = f"""<!-- {a(PERMALINK)} -->
      <script>document.write('{a(PERMALINK)}')</script>
      <textarea>{a(PERMALINK)}</textarea>
      &lt;a href="{PERMALINK}"&gt;escaped&lt;/a&gt;
      <link rel="canonical" href="{PERMALINK}"><img src="{PERMALINK}">
      <p>{PERMALINK} as text</p><a name="{PERMALINK}">no href</a>"""
    assert links_to(html, SOURCE, POST) is None
    assert links_to(html + a(PERMALINK), SOURCE, POST) == PERMALINK


def test_relative_links_resolve_against_the_final_url_and_the_base_element() -> None:
    assert links_to(a("/2026/11/hello-world/"), "https://blog.example/other/", POST)
    assert links_to(a("../hello-world/"), "https://blog.example/2026/11/x/", POST)
    based = '<head><base href="https://blog.example/2026/"></head>' + a("11/hello-world/")
    assert links_to(based, SOURCE, POST) == "https://blog.example/2026/11/hello-world/"
    assert links_to('<a href="&#x2f;2026/11/hello-world/">x</a>', PERMALINK, POST)


def test_site_links_are_the_other_links_to_the_posts_host() -> None:
    """Candidates for redirects: the post's host only (http or https), no duplicates, none
    of the post's own URLs, not the home page nor WordPress's files and feeds, at most the
    limit."""
    links = ["https://elsewhere.example/x", "https://blog.example/old-slug/",
             "http://blog.example/old-slug", "https://blog.example/",
             "https://blog.example/wp-content/uploads/a.jpg", "https://blog.example/feed/",
             PERMALINK, "http://blog.example/?p=42&x=1", "/relative-to-source/",
             "https://blog.example/one", "https://blog.example/two",
             "https://blog.example/three", "https://blog.example/four"]
    html = "".join(a(link) for link in links)
    assert site_links(html, SOURCE, HOME, addresses=POST) == [
        "https://blog.example/old-slug/", "http://blog.example/?p=42&x=1",
        "https://blog.example/one", "https://blog.example/two", "https://blog.example/three"]
    assert site_links(html, SOURCE, HOME, limit=1) == ["https://blog.example/old-slug/"]
    assert site_links(html, SOURCE, HOME, limit=0) == []


# --- a trackback's text ---------------------------------------------------------------------

TRACKBACKS = [
    ("<strong>My title</strong>\n\nThe excerpt text.", ("My title", "The excerpt text.")),
    ("<strong>Caf&eacute; &amp; bar</strong>\n\n<em>Fine</em> words", ("Café & bar",
                                                                         "Fine words")),
    ("<strong>T</strong>\n\nWords that were cut in the midd&#8230;", ("T", "Words that were "
                                                                       "cut in the")),
    ("<strong>T</strong>\n\nWords that were cut in the midd…", ("T", "Words that were cut in "
                                                                "the")),
    ("<strong>T</strong>\n\nWhole words [&#8230;]", ("T", "Whole words")),
    ("<strong>T</strong>\n\nWhole words [...]", ("T", "Whole words")),
    ("<strong></strong>\n\nOnly an excerpt", ("", "Only an excerpt")),
    ("<strong>Only a title</strong>\n\n", ("Only a title", "")),
    ("[&#8230;] a pingback's context [&#8230;]", ("", "a pingback's context")),
    ("no strong at all", ("", "no strong at all")),
    ("<strong>never closed", ("", "never closed")),
    ("", ("", "")),
]


@pytest.mark.parametrize(("content", "expected"), TRACKBACKS)
def test_trackback_text_reads_title_and_excerpt_as_wordpress_stores_them(
        content: str, expected: tuple[str, str]) -> None:
    """Tags stripped, entities decoded, WordPress's "…" dropped with the word it cut."""
    assert trackback_text(content) == expected


# --- text on the page -----------------------------------------------------------------------

ARTICLE = ("<html><head><title>Notes on gardening – A blog</title></head><body><h1>Notes on "
           "gardening</h1><p>Tomatoes need six hours of sun, and they don&#8217;t like wet "
           "feet. Water them deeply but rarely; mulch keeps the soil even.</p>"
           "<p>Basil goes well beside them.</p></body></html>")
ARTICLE_TEXT = verify.page_text(ARTICLE)

# (quoted text, whether it plausibly comes from ARTICLE)
QUOTES = [
    ("Notes on gardening", True),
    ("NOTES ON GARDENING!", True),  # case and punctuation do not matter
    ("Tomatoes need six hours of sun, and they don't like wet feet.", True),  # ’ vs '
    ("Tomatoes need six hours of sun, and they dislike wet feet. Water them deeply", True),
    ("Tomatoes need six hours of sun, and they don’t like wet feet. Water them deeply but "
     "rarely; mulch keeps the soil even. Basil goes well beside them.", True),
    ("Cheap watches and pills, best prices, order now from our online shop today", False),
    ("sun six hours need tomatoes feet wet like don't they", False),  # the words, reordered
    ("gardening", True), ("Basil", True), ("Cucumbers", False),
    ("on gardening", True), ("gardening notes", False),
    ("", True), ("… — !", True),  # no words: nothing to check
    ("A blog", True),  # the <title> counts
]


@pytest.mark.parametrize(("quoted", "on_page"), QUOTES)
def test_a_quoted_text_is_on_the_page_when_half_its_shingles_are(quoted: str,
                                                                 on_page: bool) -> None:
    """Words in order (3-word shingles), at least half of them; case, punctuation and
    typographic quotes aside."""
    assert text_on_page(ARTICLE_TEXT, quoted) is on_page


def test_meta_descriptions_count_as_page_text() -> None:
    """A sender may send the post's manual excerpt, which a theme shows only in meta."""
    html = ('<meta name="description" content="A summary written by hand for the feed">'
            "<p>The body says something else.</p>")
    assert text_on_page(verify.page_text(html), "A summary written by hand")
    assert not text_on_page(verify.page_text("<p>The body says something else.</p>"),
                            "A summary written by hand")


def test_cjk_text_is_compared_character_by_character() -> None:
    page = verify.page_text("<p>今日は庭でトマトを植えました。とても楽しかった。</p>")
    assert text_on_page(page, "今日は庭でトマトを植えました")
    assert not text_on_page(page, "安い時計を買うならこちらのお店へどうぞ")


# --- the decision ---------------------------------------------------------------------------

TB = "<strong>Notes on gardening</strong>\n\nTomatoes need six hours of sun, and they&#8230;"
LINKED = ARTICLE.replace("</body>", a(PERMALINK) + "</body>")
OLD = "https://blog.example/old-slug/"
WITH_OLD = ARTICLE.replace("</body>", a(OLD) + "</body>")


@dataclass(frozen=True)
class Row:
    kind: str = "pingback"
    html: str = LINKED
    content: str = TB
    author_ip: str = "192.0.2.7"
    verify_ip: bool = False
    ips: tuple[str, ...] = ()
    resolved: tuple[tuple[str, str | None], ...] = ()


# (row, expected verdict, expected code)
JUDGE_TABLE = [
    (Row(), "verified", "links"),
    (Row(kind="trackback"), "verified", "links"),
    (Row(html=ARTICLE), "unverified", "no-link"),
    (Row(html=f"<!-- {a(PERMALINK)} -->"), "unverified", "no-link"),
    (Row(html=WITH_OLD, resolved=((OLD, PERMALINK),)), "verified", "links"),
    (Row(html=WITH_OLD, resolved=((OLD, "https://blog.example/another/"),)), "unverified",
     "no-link"),
    (Row(html=WITH_OLD, resolved=((OLD, None),)), "unverified", "no-link"),
    (Row(kind="trackback", content="<strong>Buy cheap pills</strong>\n\nTomatoes need six "
         "hours of sun"), "unverified", "title-not-on-page"),
    (Row(kind="trackback", content="<strong>Notes on gardening</strong>\n\nBest online "
         "casino bonus codes for every player today"), "unverified", "excerpt-not-on-page"),
    (Row(kind="pingback", content="<strong>Buy cheap pills</strong>\n\nspam"), "verified",
     "links"),  # a pingback's content is WordPress's own, not the sender's: not compared
    (Row(kind="trackback", content="<strong></strong>\n\n"), "verified", "links"),
    (Row(verify_ip=True, ips=("192.0.2.7", "2001:db8::7")), "verified", "links"),
    (Row(verify_ip=True, author_ip="::ffff:192.0.2.7", ips=("192.0.2.7",)), "verified",
     "links"),
    (Row(verify_ip=True, ips=("198.51.100.1",)), "unverified", "ip-mismatch"),
    (Row(verify_ip=True, author_ip="", ips=("192.0.2.7",)), "unverified", "ip-mismatch"),
    (Row(verify_ip=True, author_ip="not an ip", ips=("192.0.2.7",)), "unverified",
     "ip-mismatch"),
    (Row(verify_ip=False, ips=("198.51.100.1",)), "verified", "links"),
    (Row(html=ARTICLE, verify_ip=True, ips=("198.51.100.1",)), "unverified", "no-link"),
]


@pytest.mark.parametrize(("row", "verdict", "code"), JUDGE_TABLE)
def test_judge_decides_as_the_table_says(row: Row, verdict: str, code: str) -> None:
    """Link first (on the page or through a redirect of a link to the site), then a
    trackback's title and excerpt, then the sender's IP when asked: the first failure is the
    reason."""
    page = SourcePage("https://other.example/a-post/", row.html)
    found = judge(row.kind, SOURCE, row.author_ip, row.content, POST, page,
                  verify_ip=row.verify_ip, ip_addresses=row.ips,
                  site_links_resolved=dict(row.resolved))
    assert (found.verdict, found.code) == (verdict, code)
    assert "\n" not in found.reason and len(found.reason) < 400
    assert (found.link is not None) is (verdict == "verified")


def test_reasons_name_urls_without_their_secrets_and_cut_to_a_sane_length() -> None:
    long_url = "https://user:secret@other.example/" + "x" * 5000
    found = judge("pingback", long_url, "", "", POST, SourcePage(long_url, "<p>nothing</p>"),
                  verify_ip=False, ip_addresses=(), site_links_resolved={})
    assert found.code == "no-link"
    assert "secret" not in found.reason and "user" not in found.reason
    assert len(found.reason) < 300
    verified = judge("pingback", SOURCE, "", "", POST, SourcePage(
        SOURCE, a("https://user:secret@blog.example/?p=42")), verify_ip=False,
        ip_addresses=(), site_links_resolved={})
    assert verified.verdict == "verified" and "secret" not in verified.reason


HOSTS = [
    ((), (), None),
    (("*.example",), (), None),
    (("*.org",), (), "host-not-allowed"),
    ((), ("other.*",), "host-denied"),
    (("*.example",), ("OTHER.example",), "host-denied"),  # deny wins, case aside
]


@pytest.mark.parametrize(("allow", "deny", "code"), HOSTS)
def test_inbound_host_patterns_match_as_outbound_ones(allow: tuple[str, ...],
                                                      deny: tuple[str, ...],
                                                      code: str | None) -> None:
    found = host_allowed(SOURCE, allow, deny)
    assert (found.code if found else None) == code
    assert found is None or found.verdict == "unverified"


ERRORS = [
    (SendError("x", code="timeout", permanent=False), "retry", "timeout"),
    (SendError("x", code="connect", permanent=False, unreachable=True), "retry", "connect"),
    (SendError("x", code="http-503", permanent=False, retry_after=30.0), "retry", "http-503"),
    (SendError("x", code="http-429", permanent=False), "retry", "http-429"),
    (SendError("x", code="http-408", permanent=False), "retry", "http-408"),
    (SendError("x", code="tls", permanent=False), "retry", "tls"),
    (SendError("x", code="source-gone", permanent=True), "unverified", "source-gone"),
    (SendError("x", code="source-refused", permanent=True), "unverified", "source-refused"),
    (SendError("x", code="not-html", permanent=True), "unverified", "not-html"),
    (SendError("x", code="refused-address", permanent=True, skip=True), "unverified",
     "private-address"),
    (SendError("x", code="too-many-redirects", permanent=True), "unverified",
     "too-many-redirects"),
    (SendError("x", code="bad-url", permanent=True, skip=True), "unverified", "bad-source"),
    (SendError("x", code="bad-redirect", permanent=True), "unverified", "bad-source"),
]


@pytest.mark.parametrize(("error", "verdict", "code"), ERRORS)
def test_a_failure_to_read_the_source_is_retried_only_when_it_may_pass(
        error: SendError, verdict: str, code: str) -> None:
    """Transient: "retry" (never a verdict on one failure); permanent: unverified."""
    found = finding_of_error(error)
    assert (found.verdict, found.code) == (verdict, code)
    assert found.retry_after == error.retry_after


# --- hostile input: linear time, bounded memory ---------------------------------------------

def fastest(run: Callable[[], object], times: int = 3) -> float:
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def grows_linearly(make: Callable[[int], Callable[[], object]], n: int) -> None:
    """4x the input takes well under 16x the time (quadratic), generously: at most 8x."""
    small, large = fastest(make(n)), fastest(make(4 * n))
    assert large < 8 * max(small, 0.002), f"{n}: {small:.4f} s, {4 * n}: {large:.4f} s"


def test_the_ratio_check_catches_a_quadratic_step() -> None:
    """The harness itself: a quadratic function fails it (so the tests below can fail)."""
    def make(n: int) -> Callable[[], object]:
        text = "a" * n
        return lambda: [text[:i].count("a") for i in range(0, n, 4)]

    with pytest.raises(AssertionError):
        grows_linearly(make, 20_000)


HOSTILE_PAGES: dict[str, Callable[[int], str]] = {
    "nested tags": lambda n: "<div><span>" * n + "x" + "</span></div>" * n,
    "many links": lambda n: '<a href="https://blog.example/x">x</a>' * n,
    "unclosed anchors": lambda n: "<a " * n,
    "one repeated word": lambda n: "spam " * (4 * n),
    "comment openers": lambda n: "<!--" * n,
    "long url": lambda n: f'<a href="https://blog.example/{"x" * (20 * n)}?{"a=1&" * n}">',
}


@pytest.mark.parametrize("shape", list(HOSTILE_PAGES))
def test_reading_a_hostile_page_takes_time_linear_in_its_size(shape: str) -> None:
    """Links, site links and the text check on pages built to make a parser quadratic."""
    def make(n: int) -> Callable[[], object]:
        html = HOSTILE_PAGES[shape](n)

        def run() -> object:
            return (links_to(html, SOURCE, POST), site_links(html, SOURCE, HOME),
                    text_on_page(verify.page_text(html), "spam spam ham spam eggs"))
        return run

    grows_linearly(make, 5_000)


def test_a_huge_excerpt_and_a_huge_page_of_one_word_stay_linear() -> None:
    """The quoted text is cut to its first words; the page is read once, word by word."""
    def make(n: int) -> Callable[[], object]:
        page, quoted = "spam " * (20 * n), "ham spam " * n
        return lambda: text_on_page(page, quoted)

    grows_linearly(make, 20_000)
    assert text_on_page("spam " * 100_000, "spam " * 100_000)


def test_a_huge_trackback_content_is_read_only_up_to_the_cap() -> None:
    """(The state keeps 4,000 characters; a caller passing more gets the same.)"""
    title, excerpt = trackback_text("<strong>" + "t " * 1_000_000 + "</strong>\n\nx")
    assert title == "" and len(excerpt) <= verify.MAX_CONTENT  # cut before "</strong>"
    title, excerpt = trackback_text("<strong>t</strong>\n\n" + "word " * 1_000_000)
    assert title == "t" and len(excerpt) <= verify.MAX_CONTENT


def test_100k_links_on_a_megabyte_page_are_read_in_one_pass() -> None:
    """A page of 100,000 links, none the post, then the post: found, in linear time."""
    def make(n: int) -> Callable[[], object]:
        html = '<a href="/x">x</a>' * n + a(PERMALINK)
        return lambda: links_to(html, SOURCE, POST)

    assert make(100_000)() == PERMALINK
    grows_linearly(make, 10_000)


# --- the sending half, against local servers ------------------------------------------------

SITE_IP, SOURCE_IP = "127.0.0.61", "127.0.0.62"
Route = tuple[int, dict[str, str], bytes]


class Pages(ThreadingHTTPServer):
    """Answers each path from ``routes`` (else 404) and records what was asked."""

    daemon_threads = True

    def __init__(self, ip: str, name: str) -> None:
        super().__init__((ip, 0), _PagesHandler)
        self.name = name
        self.routes: dict[str, Route] = {}
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://{self.name}:{self.server_address[1]}{path}"


class _PagesHandler(BaseHTTPRequestHandler):
    server: Pages
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.asked.append(self.path)
        status, headers, body = self.server.routes.get(self.path, (404, {}, b"gone"))
        headers = {"Content-Type": "text/html; charset=utf-8", **headers}
        reply(self, status, body, headers.pop("Content-Type"), headers)


def resolver(names: dict[str, str]) -> Callable[..., list[Any]]:
    """getaddrinfo for the test's names only (anything else does not resolve)."""
    def resolve(host: str, port: int, *args: Any) -> list[Any]:
        if host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port))]
        try:  # literal addresses resolve to themselves
            socket.inet_aton(host)
        except OSError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, port))]
    return resolve


@dataclass
class World:
    site: Pages
    source: Pages
    http: Http
    addresses: frozenset[verify.Address]
    home: str
    permalink: str


@pytest.fixture
def world() -> Iterator[World]:
    with serving_world() as found:
        yield found


@contextmanager
def serving_world() -> Iterator[World]:
    """A watched site (blog.test on 127.0.0.61) whose post 42 moved from /old-slug/ to
    /hello/, and a source host (source.test on 127.0.0.62); the seam may reach loopback
    (allowed_networks) but no private address. (The inbound tests' ``world`` too.)"""
    site, source = Pages(SITE_IP, "blog.test"), Pages(SOURCE_IP, "source.test")
    with serving(site, 0.05), serving(source, 0.05):
        home, permalink = site.url("/"), site.url("/hello/")
        site.routes["/hello/"] = (200, {}, b"<p>the post</p>")
        site.routes["/old-slug/"] = (301, {"Location": permalink}, b"")
        site.routes["/busy/"] = (503, {"Retry-After": "120"}, b"")
        http = Http(HttpSettings(allowed_networks=("127.0.0.0/8",), timeout=5.0),
                    resolver({"blog.test": SITE_IP, "source.test": SOURCE_IP}))
        yield World(site, source, http, post_addresses(permalink, home, 42, "post"), home,
                    permalink)
        http.close()


@dataclass(frozen=True)
class Received:
    kind: str
    source: str
    author_ip: str = SOURCE_IP
    content: str = ""


def page(world: World, path: str, body: str, status: int = 200,
         headers: dict[str, str] | None = None) -> str:
    world.source.routes[path] = (status, headers or {}, body.encode())
    return world.source.url(path)


def test_fetch_source_follows_redirects_and_keeps_the_final_url(world: World) -> None:
    final = page(world, "/new/", "<p>moved here</p>")
    start = page(world, "/start/", "", 302, {"Location": "/new/"})
    fetched = fetch_source(world.http, start)
    assert fetched == SourcePage(final, "<p>moved here</p>")


# (status, headers, expected SendError code, permanent)
FETCH_FAILURES = [
    (404, {}, "source-gone", True),
    (410, {}, "source-gone", True),
    (403, {}, "source-refused", True),
    (451, {}, "source-refused", True),
    (300, {}, "source-refused", True),
    (500, {}, "http-500", False),
    (503, {"Retry-After": "60"}, "http-503", False),
    (429, {}, "http-429", False),
    (408, {}, "http-408", False),
    (200, {"Content-Type": "image/png"}, "not-html", True),
]


@pytest.mark.parametrize(("status", "headers", "code", "permanent"), FETCH_FAILURES)
def test_fetch_source_classifies_what_the_source_answers(world: World, status: int,
                                                         headers: dict[str, str], code: str,
                                                         permanent: bool) -> None:
    url = page(world, "/p/", "<p>x</p>", status, headers)
    with pytest.raises(SendError) as caught:
        fetch_source(world.http, url)
    assert (caught.value.code, caught.value.permanent) == (code, permanent)
    if "Retry-After" in headers:
        assert caught.value.retry_after == 60.0


def test_a_redirect_to_a_private_address_is_refused_without_connecting(world: World) -> None:
    """The guard refuses 10.x after a redirect (allow_private_addresses is off; only
    loopback is allowed), so the verdict is private-address."""
    url = page(world, "/to-intranet/", "", 302, {"Location": "http://10.1.2.3/admin"})
    found = check(world.http, Received("trackback", url), world.addresses, world.home)
    assert (found.verdict, found.code) == ("unverified", "private-address")


def test_a_redirect_loop_is_too_many_redirects(world: World) -> None:
    url = page(world, "/loop/", "", 302, {"Location": "/loop/"})
    found = check(world.http, Received("pingback", url), world.addresses, world.home)
    assert (found.verdict, found.code) == ("unverified", "too-many-redirects")


def test_an_unreachable_source_is_a_retry_never_a_verdict(world: World) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind((SOURCE_IP, 0))
        url = f"http://source.test:{closed.getsockname()[1]}/gone/"
    found = check(world.http, Received("pingback", url), world.addresses, world.home)
    assert found.verdict == "retry" and found.code == "connect"
    busy = page(world, "/busy/", "", 503, {"Retry-After": "30"})
    found = check(world.http, Received("pingback", busy), world.addresses, world.home)
    assert (found.verdict, found.code, found.retry_after) == ("retry", "http-503", 30.0)


def test_resolve_follows_the_sites_redirects_without_reading_bodies(world: World) -> None:
    assert resolve(world.http, world.site.url("/old-slug/"), trusted=True) == world.permalink
    assert resolve(world.http, world.site.url("/missing/"), trusted=True) is None
    with pytest.raises(SendError) as caught:
        resolve(world.http, world.site.url("/busy/"), trusted=True)
    assert caught.value.code == "http-503" and not caught.value.permanent


def test_a_source_that_links_to_the_post_is_verified(world: World) -> None:
    url = page(world, "/links/", ARTICLE.replace("</body>", a(world.permalink)))
    found = check(world.http, Received("pingback", url), world.addresses, world.home)
    assert found == Finding("verified", "links", f"links to the post: {world.permalink}",
                            link=world.permalink)
    assert world.site.asked == []  # nothing to resolve on the site


def test_a_link_to_an_old_slug_counts_after_the_sites_redirect(world: World) -> None:
    old = world.site.url("/old-slug/")
    url = page(world, "/old/", a(world.site.url("/other/")) + a(old))
    found = check(world.http, Received("pingback", url), world.addresses, world.home)
    assert (found.verdict, found.link) == ("verified", old)
    # Each link to the site asked once (together, so in any order), the redirect followed.
    asked = world.site.asked
    assert sorted(asked) == ["/hello/", "/old-slug/", "/other/"]
    assert asked.index("/old-slug/") < asked.index("/hello/")


def test_site_links_resolved_are_at_most_five_per_page(world: World) -> None:
    links = "".join(a(world.site.url(f"/n{index}/")) for index in range(20))
    url = page(world, "/many/", links)
    found = check(world.http, Received("pingback", url), world.addresses, world.home)
    assert found.code == "no-link" and "5 links" in found.reason
    assert len(world.site.asked) == verify.SITE_LINKS


def test_a_site_that_fails_while_resolving_makes_the_verdict_wait(world: World) -> None:
    url = page(world, "/busy-link/", a(world.site.url("/busy/")))
    found = check(world.http, Received("pingback", url), world.addresses, world.home)
    assert found.verdict == "retry" and found.code == "http-503"


def test_a_link_only_in_a_comment_or_script_is_no_link(world: World) -> None:
    url = page(world, "/hidden/", f"<!-- {a(world.permalink)} --><script>var u = "
                                  f"'{a(world.permalink)}';</script><p>nothing</p>")
    found = check(world.http, Received("pingback", url), world.addresses, world.home)
    assert (found.verdict, found.code) == ("unverified", "no-link")


def test_a_trackback_is_checked_for_its_title_and_excerpt(world: World) -> None:
    url = page(world, "/tb/", LINKED.replace(PERMALINK, world.permalink))
    good = check(world.http, Received("trackback", url, content=TB), world.addresses,
                 world.home)
    assert good.verdict == "verified"
    spam = check(world.http, Received("trackback", url, content="<strong>Notes on gardening"
                                      "</strong>\n\nCheap pills shipped overnight to your "
                                      "door, no questions asked&#8230;"),
                 world.addresses, world.home)
    assert (spam.verdict, spam.code) == ("unverified", "excerpt-not-on-page")


def test_the_sender_ip_must_be_an_address_of_the_source_host(world: World) -> None:
    """verify_ip compares the ping's author_ip with what the seam's resolver gives for the
    source's host; off by default."""
    url = page(world, "/ip/", a(world.permalink))
    same = Received("pingback", url, author_ip=SOURCE_IP)
    other = Received("pingback", url, author_ip="192.0.2.1")
    assert check(world.http, same, world.addresses, world.home, verify_ip=True).verdict == (
        "verified")
    found = check(world.http, other, world.addresses, world.home, verify_ip=True)
    assert (found.verdict, found.code) == ("unverified", "ip-mismatch")
    assert "192.0.2.1" in found.reason and "source.test" in found.reason
    assert check(world.http, other, world.addresses, world.home).verdict == "verified"


def test_a_denied_host_is_judged_without_fetching(world: World) -> None:
    url = page(world, "/denied/", a(world.permalink))
    found = check(world.http, Received("pingback", url), world.addresses, world.home,
                  deny=("source.*",))
    assert (found.verdict, found.code) == ("unverified", "host-denied")
    found = check(world.http, Received("pingback", url), world.addresses, world.home,
                  allow=("*.example",))
    assert found.code == "host-not-allowed"
    assert world.source.asked == []


def test_the_sites_own_origin_is_trusted_for_its_links_only(world: World) -> None:
    """With only the source's address allowed, a link to the site's own origin is still
    resolved (a request of the site's own, trusted: WordPress lets a site reach itself); a
    source on the site's own host is never fetched (its search and archive pages would
    quote any spam and list the post): left for a person, whatever its scheme or port."""
    http = Http(HttpSettings(allowed_networks=(f"{SOURCE_IP}/32",), timeout=5.0),
                resolver({"blog.test": SITE_IP, "source.test": SOURCE_IP}),
                trusted_origins=[world.home])
    try:
        url = page(world, "/old/", a(world.site.url("/old-slug/")))
        found = check(http, Received("pingback", url), world.addresses, world.home)
        assert found.verdict == "verified"
        world.site.routes["/self/"] = (200, {}, a(world.permalink).encode())
        for source in (world.site.url("/self/"), world.site.url("/?s=spam+words"),
                       world.site.url("/self/").replace("http://", "https://"),
                       world.site.url("/self/").replace("blog.test", "blog.test.")):
            found = check(http, Received("pingback", source), world.addresses, world.home)
            assert (found.verdict, found.code) == ("skipped", "own-site"), source
        assert "/self/" not in world.site.asked
    finally:
        http.close()


def test_the_states_record_of_a_ping_is_checked_as_it_is(world: World) -> None:
    """check reads only kind, source, author_ip and content (the Ping protocol), which the
    state's InboundPing has: the service passes it without converting."""
    from datetime import UTC, datetime

    from wpnotify.state.records import InboundPing

    url = page(world, "/record/", a(world.site.url("/?p=42")))
    now = datetime(2026, 11, 30, tzinfo=UTC)
    ping = InboundPing(site="s", comment_id=1, post_id=42, kind="pingback", source=url,
                       author="A page", author_ip=SOURCE_IP, content="[…] x […]",
                       received_at=now, seen_at=now, status_seen="hold")
    found = check(world.http, ping, world.addresses, world.home, verify_ip=True)
    assert (found.verdict, found.link) == ("verified", world.site.url("/?p=42"))
