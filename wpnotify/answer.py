"""A WordPress site's answers, read with their shape checked.

A site's answer is input, not a promise: a plugin, a proxy or something that is not WordPress
may send anything. Both sources read every field they use through ``Answer``, so that a
missing or wrongly typed one becomes a ``SourceError`` naming the site, what it sent and what
to check, instead of a KeyError deep in a poll (which the daemon would count as a crashed job,
with no back-off and no ``last_error``). Values are type-checked, never turned into text with
``str()``: a deeply nested one would cost a RecursionError, a huge one a huge message.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NoReturn

from wpnotify.errors import SourceError
from wpnotify.times import wp_time

HINT = "(a plugin changing WordPress's answers, or not WordPress?)"
STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
MAX_ID_DIGITS = 18  # WordPress IDs are unsigned 64-bit; more digits is no ID
MAX_ID = 10**MAX_ID_DIGITS - 1  # the same bound for IDs sent as numbers (SQLite is signed 64-bit)
# A lone surrogate ("\ud800" in JSON) is no text: it cannot be encoded, stored or sent, so
# it is read as U+FFFD, as a browser would show it (PHP's json_encode never sends one).
SURROGATE = re.compile("[\ud800-\udfff]")


def kind(value: Any) -> str:
    """What a decoded value is, in words (never its text)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"  # e.g. an XML-RPC DateTime or Binary


def listing(site: str, what: str, value: Any) -> list[Any]:
    """An answer that must be a list (of posts, of deletions)."""
    if not isinstance(value, list):
        raise SourceError(f"{site} returned {what} as {kind(value)} instead of a list {HINT}")
    return value


def stamp(text: str) -> bool:
    """True for a WordPress time as the sources pass it on: "2026-11-26T12:39:34", UTC."""
    if not STAMP.fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:  # 2026-13-45T99:00:00
        return False
    return True


class Answer:
    """One object of a site's answer, e.g. a post: each getter returns the field or raises a
    SourceError saying which field is missing or of the wrong kind."""

    def __init__(self, site: str, what: str, value: Any, prefix: str = "") -> None:
        if not isinstance(value, dict):
            raise SourceError(f"{site} returned {what} that is {kind(value)} instead of an "
                              f"object {HINT}")
        self.site, self.what, self.fields, self.prefix = site, what, value, prefix

    def fail(self, problem: str) -> NoReturn:
        raise SourceError(f"{self.site} returned {self.what} {problem} {HINT}")

    def value(self, key: str, types: type | tuple[type, ...], wanted: str, *,
              required: bool) -> Any:
        """The field if present and of one of ``types`` (None when absent or null and not
        ``required``). A bool is no number."""
        found = self.fields.get(key)
        if found is None:
            if required:
                name = self.prefix + key
                self.fail(f"without {'an' if name[0] in 'aeiou' else 'a'} {name}")
            return None
        allowed = types if isinstance(types, tuple) else (types,)
        if not isinstance(found, allowed) or (isinstance(found, bool) and bool not in allowed):
            self.fail(f"whose {self.prefix}{key} is {kind(found)} instead of {wanted}")
        return found

    def id(self, key: str = "id") -> int:
        """A post ID: a number (REST), or digits in a string (XML-RPC sends them so)."""
        found = self.fields.get(key)
        if (isinstance(found, str) and found.isascii() and found.isdigit()
                and len(found) <= MAX_ID_DIGITS):
            return int(found)
        number: int = self.value(key, int, "a number", required=True)
        if number < 0:
            self.fail(f"whose {self.prefix}{key} is negative")
        if number > MAX_ID:
            self.fail(f"whose {self.prefix}{key} is larger than any post ID")
        return number

    def text(self, key: str, default: str = "") -> str:
        found: str | None = self.value(key, str, "a string", required=False)
        return default if found is None else SURROGATE.sub("\ufffd", found)

    def flag(self, key: str) -> bool:
        return bool(self.value(key, bool, "true/false", required=False))

    def stamp(self, key: str) -> datetime:
        """A WordPress time ("2026-11-26T12:39:34", UTC), read as the one time type."""
        found: str = self.value(key, str, "a time", required=True)
        return self._time(key, found)

    def optional_stamp(self, key: str) -> datetime | None:
        """A WordPress time, or None when absent or null (a draft's date)."""
        found: str | None = self.value(key, str, "a time", required=False)
        return None if found is None else self._time(key, found)

    def _time(self, key: str, found: str) -> datetime:
        if not stamp(found):
            self.fail(f"whose {self.prefix}{key} is not a time like 2026-11-26T12:39:34")
        return wp_time(found)

    def texts(self, key: str) -> tuple[str, ...] | None:
        """A list of strings (None when absent)."""
        found: list[Any] | None = self.value(key, list, "a list", required=False)
        if found is None:
            return None
        if not all(isinstance(item, str) for item in found):
            self.fail(f"whose {self.prefix}{key} holds something else than strings")
        return tuple(SURROGATE.sub("\ufffd", item) for item in found)

    def part(self, key: str) -> Answer | None:
        """A nested object (None when absent or null)."""
        found = self.value(key, dict, "an object", required=False)
        return None if found is None else Answer(self.site, self.what, found,
                                                 f"{self.prefix}{key}.")
