"""Follow-ups to a hostile-input probe of discovery: numeric character references decoded as
the HTML Standard decodes them, rel values split and lower-cased the ASCII way (HTML and
RFC 8288), only a Link's first rel read. Pure."""

from __future__ import annotations

import time

import pytest

from wpnotify.discovery import may_mention, pingback_endpoint, rel_tokens, webmention_endpoint
from wpnotify.markup import start_tags

BASE = "http://b.example/p/"


def href(html: str) -> str:
    return next(attrs["href"] for _tag, attrs in start_tags(html, frozenset({"a"})))


@pytest.mark.parametrize("reference,character", [
    ("&#1;", "\x01"), ("&#x1F;", "\x1f"), ("&#127;", "\x7f"), ("&#xFDD0;", "\ufdd0"),
    ("&#xFFFF;", "\uffff"), ("&#x10FFFE;", "\U0010fffe"), ("&#13;", "\r"),
    ("&#x80;", "\u20ac"), ("&#x9f;", "\u0178"), ("&#x81;", "\x81"), ("&#x9D;", "\x9d"),
    ("&#0;", "\ufffd"), ("&#xD800;", "\ufffd"), ("&#x110000;", "\ufffd"), ("&#65", "A"),
])
def test_numeric_references_are_decoded_as_the_html_standard_says(reference: str,
                                                                 character: str) -> None:
    """Controls and noncharacters are kept (html.unescape dropped them); NUL, surrogates and
    numbers beyond Unicode are U+FFFD; C1 controls are read as windows-1252."""
    assert href(f"<a href='x{reference}y'>") == f"x{character}y"


def test_an_endpoint_with_a_referenced_control_keeps_it() -> None:
    """The seam percent-encodes it in the request (/w%7Fm); dropping it asked another URL."""
    page = '<link rel=webmention href="/w&#x7f;m">'
    assert webmention_endpoint([], page, BASE) == "http://b.example/w\x7fm"


@pytest.mark.parametrize("rel", ["x\u00a0webmention", "x&nbsp;webmention", "x\x85webmention",
                                 "x\u2003webmention", "x\x0bwebmention"])
def test_rel_is_split_on_ascii_whitespace_only(rel: str) -> None:
    assert webmention_endpoint([], f'<link rel="{rel}" href="/wm">', BASE) is None
    assert webmention_endpoint([f'<http://e.example/1>; rel="{rel}"'], None, BASE) is None


def test_rel_is_lower_cased_the_ascii_way() -> None:
    """The Kelvin sign is no "k": ``pingbac\u212a`` is not pingback."""
    assert pingback_endpoint(None, '<link rel="pingbac\u212a" href="/x">', BASE) is None
    assert webmention_endpoint(['<http://e.example/1>; rel="webmention\u0130"'], None,
                               BASE) is None
    assert pingback_endpoint(None, '<link rel="x\tPingBack\f" href="/x">', BASE) == \
        "http://b.example/x"
    assert rel_tokens(" A\r\nWebMention\t ") == {"a", "webmention"}


def test_only_the_first_rel_of_a_link_header_counts() -> None:
    """RFC 8288 §3.3: occurrences after the first are ignored."""
    assert webmention_endpoint(['<http://e.example/1>; rel="other"; rel="webmention"'],
                               None, BASE) is None
    assert webmention_endpoint(['<http://e.example/1>; rel="webmention"; rel="other", '
                                '<http://e.example/2>; REL=other; Rel=webmention'],
                               None, BASE) == "http://e.example/1"


def test_may_mention_knows_the_one_named_reference_that_spells_ascii_letters() -> None:
    """``&fjlig;`` is "fj": a page may spell a word holding "fj" without writing it."""
    assert href("<a href='&fjlig;ord'>") == "fjord"
    assert may_mention("<a rel='&fjlig;ord'>", "fjord")
    assert not may_mention("<a rel='nothing here'>", "fjord")
    assert not may_mention("<a rel='&fjlig;'>", "webmention")


@pytest.mark.parametrize("unit", ["&#x7f;", "&#x80;", "&#0;", "&#xD800;", "&#1"])
def test_numeric_references_are_decoded_in_linear_time(unit: str) -> None:
    """1 MiB of references in one value, then 4 MiB: well under the bound, about 4x."""
    def timed(size: int) -> float:
        page = "<a href='" + unit * (size // len(unit)) + "'>"
        started = time.perf_counter()
        assert len(href(page)) == size // len(unit)
        return time.perf_counter() - started

    small, large = timed(1 << 20), timed(4 << 20)
    assert large < 5.0 and large < 12 * small + 0.05, (small, large)
