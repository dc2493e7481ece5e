"""TrackBack's pure half: the fields WordPress would send, and the receiver's replies."""

from __future__ import annotations

import pytest
from conftest import DATA

from wpnotify.errors import SendError
from wpnotify.trackback import ELLIPSIS, build_ping, excerpt, parse_reply, strip_tags


def test_short_text_has_no_ellipsis_and_keeps_entities() -> None:
    assert excerpt("<p>It&#8217;s  short,\n\tand <b>bold</b>.</p>") == "It&#8217;s short, and bold."


def test_long_text_is_cut_to_252_characters_plus_the_ellipsis() -> None:
    text = "é" * 300
    cut = excerpt(f"<p>{text}</p>")
    assert cut == "é" * 252 + ELLIPSIS  # characters, not bytes


def test_a_half_entity_at_the_cut_is_dropped() -> None:
    html = "a" * 248 + "&#8230; and more"
    assert excerpt(html) == "a" * 248 + ELLIPSIS


def test_script_and_style_bodies_and_comments_are_not_text() -> None:
    html = "<style>p{}</style><p>Kept</p><script>var x = '<b>';</script><!-- gone -->"
    assert strip_tags(html) == "Kept"
    assert excerpt(html) == "Kept"


def test_manual_excerpt_wins_over_content() -> None:
    ping = build_ping(permalink="https://s.example/p",
                      title_html="A <em>fine</em> &#8220;title&#8221;",
                      content_html="<p>Content</p>", excerpt_html="<p>Manual</p>\n",
                      blog_name="Blog")
    assert ping.title == "A fine &#8220;title&#8221;"
    assert ping.excerpt == "Manual"
    assert ping.form() == {"title": ping.title, "url": "https://s.example/p",
                           "blog_name": "Blog", "excerpt": "Manual", "charset": "UTF-8"}
    assert build_ping(permalink="u", title_html="t", content_html="<p>Content</p>",
                      excerpt_html="", blog_name="b").excerpt == "Content"


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_wordpress_success_reply() -> None:
    assert parse_reply(200, data("trackback-ok.xml")) == "accepted"


def test_already_a_ping_from_that_url_counts_as_sent() -> None:
    assert "already" in parse_reply(200, data("trackback-already.xml"))


def test_wordpress_duplicate_409_counts_as_sent() -> None:
    assert "already" in parse_reply(409, data("trackback-duplicate-409.xml"))


def test_closed_post_is_a_permanent_failure_with_the_message() -> None:
    with pytest.raises(SendError) as caught:
        parse_reply(200, data("trackback-closed.xml"))
    assert caught.value.permanent and caught.value.code == "closed"
    assert caught.value.message == "Sorry, trackbacks are closed for this item."


def test_wordpress_flood_429_is_transient_and_holds_at_least_15_s() -> None:
    with pytest.raises(SendError) as caught:
        parse_reply(429, data("trackback-flood-429.xml"))
    assert not caught.value.permanent and caught.value.retry_after == 15.0


@pytest.mark.parametrize("status,permanent", [(500, False), (503, False), (408, False),
                                              (404, True), (403, True), (301, True)])
def test_http_errors_are_classified(status: int, permanent: bool) -> None:
    with pytest.raises(SendError) as caught:
        parse_reply(status, b"")
    assert caught.value.permanent is permanent


@pytest.mark.parametrize("body", [b"", b"OK", b"<html><body>thanks</body></html>",
                                  b"<response><error>2</error></response>"])
def test_a_2xx_without_a_trackback_reply_is_unverified(body: bytes) -> None:
    with pytest.raises(SendError) as caught:
        parse_reply(200, body)
    assert caught.value.code == "unverified" and caught.value.permanent


def test_an_entity_bomb_is_refused_not_expanded() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><response><error>0</error>'
            b"<message>&b;</message></response>")
    with pytest.raises(SendError) as caught:
        parse_reply(200, bomb)
    assert caught.value.code == "unverified"
