"""The WordPress source's pure parts: WordPress's clock from an HTTP Date, and when a post
read at that time may be skipped while its modified time stays the same."""

from __future__ import annotations

from dataclasses import replace

import pytest

from wpnotify.wordpress import Post, server_time

POST = Post(id=1, type="post", status="publish", link="https://blog.example/p/",
            title_html="T", content_html="", excerpt_html="", protected=False,
            modified_gmt="2026-11-26T12:39:34", date_gmt="2026-11-26T12:00:00",
            to_ping=None, pinged=None)


@pytest.mark.parametrize(("date", "expected"), [
    ("Thu, 26 Nov 2026 12:39:35 GMT", "2026-11-26T12:39:35"),
    ("Thu, 26 Nov 2026 13:39:35 +0100", "2026-11-26T12:39:35"),  # another zone, same moment
    (None, None), ("", None), ("yesterday", None),
    ("Thu, 26 Nov 2026 12:39:35 -0000", None),  # RFC 5322: no zone information
    # A hostile Date header: out of datetime's range once moved to UTC, or a year too big.
    ("Fri, 31 Dec 9999 23:59:59 -2359", None),
    ("99999999999999999999 Jan Dec 00:00 31 23:59:59 ,", None),
])
def test_the_server_clock_is_read_from_the_date_header(date: str | None,
                                                       expected: str | None) -> None:
    assert server_time(date) == expected


def test_a_post_is_settled_only_once_its_modified_second_had_ended_when_read() -> None:
    """Read in the very second it was saved, or at an unknown time, it may change again
    under the same modified time, so a poll must read it again."""
    assert replace(POST, read_at="2026-11-26T12:39:35").settled
    assert not replace(POST, read_at="2026-11-26T12:39:34").settled  # the same second
    assert not replace(POST, read_at="2026-11-26T12:39:00").settled  # WordPress's clock behind
    assert not POST.settled  # no Date header
