"""Pure discovery: links in a post, which to notify, and pingback endpoints in pages."""

from __future__ import annotations

import pytest
from conftest import DATA

from wpnotify.discovery import extract_links, pingback_endpoint, select_targets

BASE = "https://blog.example/2026/11/post/"


def test_links_are_absolute_decoded_in_order_and_unique() -> None:
    html = """
      <p><a href="https://a.example/x?a=1&amp;b=2">entity-decoded</a>
      <a href='/local'>relative to the host</a> <a href="sub">relative to the post</a>
      <a HREF="https://a.example/x?a=1&amp;b=2">duplicate</a>
      <a href="mailto:me@example.org">mail</a> <a href="javascript:alert(1)">js</a>
      <a href="#top">fragment of the post itself</a> <a name="anchor">no href</a>
      <!-- <a href="https://commented.example/">commented out</a> -->
      &lt;a href="https://escaped.example/"&gt;escaped text&lt;/a&gt;
      <script>document.write('<a href="https://script.example/">')</script>
      <a href=" https://spaced.example/ ">spaces trimmed</a></p>"""
    assert extract_links(html, BASE) == [
        "https://a.example/x?a=1&b=2",
        "https://blog.example/local",
        "https://blog.example/2026/11/post/sub",
        "https://blog.example/2026/11/post/#top",
        "https://spaced.example/",
    ]


def test_targets_skip_the_post_itself_the_home_page_and_duplicates() -> None:
    links = [BASE + "#comments", "https://blog.example/", "https://blog.example",
             "https://other.example/a", "https://other.example/a#part",
             "https://blog.example/2026/10/older-post/"]
    assert select_targets(links, permalink=BASE, home="https://blog.example",
                          self_pings=False) == ["https://other.example/a"]


def test_self_pings_keep_links_to_other_posts_of_the_same_site() -> None:
    links = [BASE, "https://blog.example/", "https://BLOG.example:443/2026/10/older-post/",
             "https://other.example/a"]
    assert select_targets(links, permalink=BASE, home="https://blog.example/",
                          self_pings=True) == ["https://BLOG.example:443/2026/10/older-post/",
                                               "https://other.example/a"]


# (X-Pingback header, HTML, base URL, expected endpoint)
ENDPOINT_CASES = {
    "header wins over link": (
        "https://h.example/xmlrpc.php", '<link rel="pingback" href="https://l.example/x">',
        "https://t.example/p", "https://h.example/xmlrpc.php"),
    "link in head": (
        None, '<html><head><link rel="pingback" href="https://t.example/xmlrpc.php" />',
        "https://t.example/p", "https://t.example/xmlrpc.php"),
    "href before rel, single quotes, upper case": (
        None, "<LINK HREF='https://t.example/rpc' REL='Pingback'>", "https://t.example/p",
        "https://t.example/rpc"),
    "rel list with other types": (
        None, '<link rel="nofollow pingback" href="https://t.example/rpc">',
        "https://t.example/p", "https://t.example/rpc"),
    "entities decoded in href": (
        None, '<link rel="pingback" href="https://t.example/rpc?a=1&amp;b=2">',
        "https://t.example/p", "https://t.example/rpc?a=1&b=2"),
    "relative href resolved against the final URL": (
        None, '<link rel="pingback" href="../xmlrpc.php">', "https://t.example/blog/p/",
        "https://t.example/blog/xmlrpc.php"),
    "comment is not an element": (
        None, '<!-- <link rel="pingback" href="https://c.example/"> -->', "https://t.example/",
        None),
    "escaped text is not an element": (
        None, '&lt;link rel="pingback" href="https://e.example/"&gt;', "https://t.example/",
        None),
    "an <a rel=pingback> does not count": (
        None, '<a rel="pingback" href="https://a.example/rpc">x</a>', "https://t.example/",
        None),
    "not-pingback is no match": (
        None, '<link rel="not-pingback" href="https://n.example/">', "https://t.example/",
        None),
    "link without href is passed over": (
        None, '<link rel="pingback"><link rel="pingback" href="https://t.example/2">',
        "https://t.example/", "https://t.example/2"),
    "first of two links wins": (
        None, '<link rel="pingback" href="https://t.example/1">'
              '<link rel="pingback" href="https://t.example/2">',
        "https://t.example/", "https://t.example/1"),
    "non-http endpoint refused": (
        None, '<link rel="pingback" href="ftp://t.example/rpc">', "https://t.example/", None),
}


@pytest.mark.parametrize("case", ENDPOINT_CASES, ids=list(ENDPOINT_CASES))
def test_pingback_endpoint_discovery(case: str) -> None:
    header, html, base, expected = ENDPOINT_CASES[case]
    assert pingback_endpoint(header, html, base) == expected


def test_real_wordpress_page_advertises_its_endpoint_in_the_header() -> None:
    """A saved Twenty Twenty-Three post: a block theme prints no <link>, only X-Pingback."""
    headers = dict(line.split(": ", 1) for line in
                   (DATA / "wordpress-post.headers").read_text().splitlines())
    html = (DATA / "wordpress-post.html").read_text()
    assert pingback_endpoint(None, html, "http://127.0.0.13:8080/2026/11/x/") is None
    assert pingback_endpoint(headers["X-Pingback"], html, "http://127.0.0.13:8080/") == \
        "http://127.0.0.13:8080/xmlrpc.php"


RDF = """<!--
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:dc="http://purl.org/dc/elements/1.1/"
         xmlns:trackback="http://madskills.com/public/xml/rss/module/trackback/">
<rdf:Description rdf:about="{about}" dc:identifier="{about}" dc:title="A post"
    trackback:ping="{ping}" />
</rdf:RDF>
-->"""


def test_trackback_rdf_inside_a_comment_is_found() -> None:
    from wpnotify.discovery import trackback_ping_url

    page = "<html><body>" + RDF.format(about="https://t.example/post/",
                                       ping="https://t.example/post/trackback/") + "</body>"
    assert trackback_ping_url(page, "https://t.example/post/", "https://t.example/post/") == \
        "https://t.example/post/trackback/"


def test_of_several_rdf_blocks_the_one_for_the_target_wins() -> None:
    from wpnotify.discovery import trackback_ping_url

    page = (RDF.format(about="https://t.example/a/", ping="https://t.example/tb?p=1")
            + RDF.format(about="https://t.example/b/", ping="https://t.example/tb?p=2&amp;x=1"))
    assert trackback_ping_url(page, "https://t.example/", "https://t.example/b/") == \
        "https://t.example/tb?p=2&x=1"
    assert trackback_ping_url(page, "https://t.example/", "https://t.example/c/") is None
    assert trackback_ping_url("<p>no rdf</p>", "https://t.example/", "https://t.example/") \
        is None


MALFORMED = ["http://example.com:8O80/", "http://[your link here]", "https://[::1/x",
             "http://example.com:99999/", "http://a..b/", "http://" + "x" * 64 + ".example/"]


def test_a_malformed_link_is_kept_as_written_and_never_raises() -> None:
    """Link extraction and selection keep a bad link (the plan records it as skipped) and
    never raise on it, so the post's good links are still notified (issue 12, item 4)."""
    html = "".join(f'<a href="{url}">bad</a>' for url in MALFORMED)
    html += '<a href="https://good.example/a">good</a><a href="//[x">relative</a>'
    links = extract_links(html, BASE)
    assert links == [*MALFORMED, "https://good.example/a", "//[x"]
    assert select_targets(links, permalink=BASE, home="https://blog.example",
                          self_pings=False) == links


def test_malformed_endpoints_are_no_endpoints() -> None:
    from wpnotify.discovery import trackback_ping_url, webmention_endpoint

    assert pingback_endpoint("http://[x", "", BASE) is None
    assert pingback_endpoint(None, '<link rel=pingback href="http://h:8O80/">', BASE) is None
    assert webmention_endpoint(["<http://[x>; rel=webmention"], None, BASE) is None
    assert webmention_endpoint([], '<a rel=webmention href="http://[x">', BASE) is None
    page = RDF.format(about="http://[x", ping="http://[y") + RDF.format(
        about="https://t.example/b/", ping="http://h:8O80/")
    assert trackback_ping_url(page, BASE, "https://t.example/b/") is None
