"""A site's answers read with their shape checked (wpnotify/answer.py): what a hostile or broken
site may put in a field never reaches the state file or the HTTP seam as something they cannot
take."""

from __future__ import annotations

import json

import pytest

from wpnotify.answer import Answer
from wpnotify.errors import SourceError


def post(**fields: object) -> Answer:
    return Answer("http://blog.example", "a post", fields)


@pytest.mark.parametrize("value", [10**20, 2**63, 10**18])
def test_an_id_beyond_any_post_id_is_refused(value: int) -> None:
    """SQLite stores signed 64-bit integers: a larger ID would fail the poll's write."""
    with pytest.raises(SourceError, match="larger than any post ID"):
        post(id=value).id()


def test_the_largest_id_a_string_may_carry_is_taken_as_a_number_too() -> None:
    assert post(id=10**18 - 1).id() == 10**18 - 1
    assert post(id=str(10**18 - 1)).id() == 10**18 - 1


def test_a_lone_surrogate_is_read_as_a_replacement_character() -> None:
    """JSON may carry "\\ud800", which can be neither encoded for a request nor stored."""
    fields = json.loads('{"link": "http://blog.example/x\\ud800", '
                        '"to_ping": ["http://t.example/\\udfff"]}')
    answer = Answer("http://blog.example", "a post", fields)
    link = answer.text("link")
    assert link == "http://blog.example/x\ufffd"
    link.encode("utf-8")  # no UnicodeEncodeError
    assert answer.texts("to_ping") == ("http://t.example/\ufffd",)
