"""Follow-ups to a hostile-input probe of URLs in messages: user info is redacted in every
form a URL parser still reads as user info (tab, CR or LF between the slashes, backslashes
for slashes, no slashes after an http(s) scheme), wherever a message quotes a URL. Pure."""

from __future__ import annotations

import time

import pytest

from wpnotify.errors import SendError
from wpnotify.http import redirect_target, url_problem
from wpnotify.plan import plan
from wpnotify.settings import SiteSettings
from wpnotify.sources import Post
from wpnotify.times import wp_time
from wpnotify.urls import redact
from wpnotify.webmention import parse_reply

HIDDEN = [
    ("https:\\\\u:SECRET@h/x", "https:\\\\h/x"),
    ("http:/\t/u:SECRET@host/", "http://host/"),
    ("http:/\r\n/u:SECRET@host/", "http://host/"),
    ("ht\ttp://u:SECRET@host/", "http://host/"),
    ("https:/\\u:SECRET@h/x", "https:/\\h/x"),
    ("https:u:SECRET@h/x", "https:h/x"),
    ("HTTPS:/u:SECRET@h", "HTTPS:/h"),
    (" wss:///u:SECRET@h", " wss:///h"),
    ("http://h/?next=https:\\\\a:SECRET@b/", "http://h/?next=https:\\\\b/"),
]


@pytest.mark.parametrize("url,shown", HIDDEN)
def test_redact_strips_user_info_a_url_parser_would_still_read(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize("url", [url for url, _shown in HIDDEN[:-1]])  # the last is fine
def test_url_problem_never_quotes_the_password(url: str) -> None:
    problem = url_problem(url)
    assert problem is not None and "SECRET" not in problem


def test_links_and_trackbacks_with_hidden_user_info_are_skipped_without_the_password() -> None:
    """The probe's link ``https:\\u:SECRET@h/x`` (browsers read https://u:SECRET@h/x; on
    an http blog it is no relative link) and to_ping entries as WordPress stores them,
    control characters included."""
    post = Post(id=1, type="post", status="publish", link="http://blog.example/p/",
                title_html="T", content_html=(
                    '<a href="https:\\\\u:SECRET@h/x">x</a><a href="https:u:SECRET@h/y">y</a>'),
                excerpt_html="", protected=False, modified_gmt=wp_time("2026-11-26T12:00:00"),
                date_gmt=wp_time("2026-11-26T12:00:00"),
                to_ping=("http:/\t/u:SECRET@h/tb", "https:\\\\u:SECRET@h/tb2"), pinged=())
    site = SiteSettings(name="s", url="http://blog.example", username="u", password="p")
    items = plan(post, site, home="http://blog.example", blog_name="B",
                 known=lambda kind: set())
    assert [(i.status, i.error_code) for i in items] == [("skipped", "bad-url")] * 4
    assert all(i.error and "SECRET" not in i.error for i in items), items


def test_a_status_url_with_hidden_user_info_is_named_without_it() -> None:
    assert parse_reply(201, "https:/\t/u:SECRET@h/status/1", b"") == \
        "created: https://h/status/1"


def test_a_redirect_to_hidden_user_info_is_named_without_it() -> None:
    for location in ("https:\\\\u:SECRET@h/x", "http:/\n/u:SECRET@127.0.0.1:1/"):
        with pytest.raises(SendError) as caught:
            redirect_target("http://127.0.0.1:1/a", location)
        assert "SECRET" not in caught.value.message and caught.value.code == "bad-redirect"


@pytest.mark.parametrize("unit", ["https:", "//a", "/\\a:", "\\\\", "http:\t", "@//"])
def test_redact_takes_linear_time_on_hostile_urls(unit: str) -> None:
    """1 MiB of each repeated pattern; 4 MiB must not take much more than four times as
    long (the bound is generous for a busy machine)."""
    def timed(size: int) -> float:
        url = "https:" + unit * (size // len(unit))
        started = time.perf_counter()
        redact(url)
        return time.perf_counter() - started

    small, large = timed(1 << 20), timed(4 << 20)
    assert large < 2.0 and large < 12 * small + 0.05, (small, large)
