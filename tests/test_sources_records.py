"""The sources' records and their pure parts: WordPress's clock from an HTTP Date, when a
post read at that time may be skipped while its modified time stays the same, and what the
changes read say about deletions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime

import pytest

from wpnotify.sources import Changes, Post
from wpnotify.times import http_date, wp_time

POST = Post(id=1, type="post", status="publish", link="https://blog.example/p/",
            title_html="T", content_html="", excerpt_html="", protected=False,
            modified_gmt=wp_time("2026-11-26T12:39:34"), date_gmt=wp_time("2026-11-26T12:00:00"),
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
    assert http_date(date) == (None if expected is None else wp_time(expected))


def test_a_post_is_settled_only_once_its_modified_second_had_ended_when_read() -> None:
    """Read in the very second it was saved, or at an unknown time, it may change again
    under the same modified time, so a poll must read it again."""
    assert replace(POST, read_at=wp_time("2026-11-26T12:39:35")).settled
    assert not replace(POST, read_at=wp_time("2026-11-26T12:39:34")).settled  # same second
    assert not replace(POST, read_at=wp_time("2026-11-26T12:39:00")).settled  # clock behind
    assert not POST.settled  # no Date header


def test_a_zero_modified_date_sorts_before_any_time() -> None:
    """WordPress's zero date (None) was the empty text, older than every time read."""
    assert replace(POST, modified_gmt=None, read_at=wp_time("2026-11-26T12:39:35")).settled
    assert not replace(POST, modified_gmt=None).settled  # no Date header


def test_changes_that_cannot_tell_leave_deletions_to_be_asked() -> None:
    """XML-RPC answers name no deletion: a poll asks every time."""
    changes = Changes([POST])
    assert list(changes) == [POST]
    assert changes.may_have_deleted(wp_time("2026-11-26T12:00:00"))


def test_changes_that_tell_ask_only_for_a_deletion_after_the_mark() -> None:
    """The newest deletion named while reading is what the read returns; nothing named, or
    nothing newer than the mark, is no request."""
    def read(heard: Callable[[datetime | None], None]) -> Iterator[Post]:
        heard(wp_time("2026-11-26T12:39:34"))
        yield POST
        heard(None)
        heard(wp_time("2026-11-26T12:39:30"))

    changes = Changes.reading(read)
    assert changes.newest_deletion is None  # nothing read yet
    assert list(changes) == [POST]
    assert changes.newest_deletion == wp_time("2026-11-26T12:39:34")
    assert changes.may_have_deleted(wp_time("2026-11-26T12:39:33"))
    assert not changes.may_have_deleted(wp_time("2026-11-26T12:39:34"))
    assert not Changes.reading(lambda heard: iter(())).may_have_deleted(
        wp_time("2026-11-26T12:00:00"))
