"""The start tags of an HTML page, found in time linear in its length, whatever it holds.

Discovery needs only start tags and their attributes (``<a href>``, ``<link rel>``), never a
tree, so this is the tokenizer of the HTML Standard (§13.2.5) and nothing more: start and end
tags, attributes (quoted, unquoted, bare; names lower-cased; the first of two wins; character
references decoded as in an attribute value), comments, DOCTYPEs and other bogus comments, and
the elements whose text is not markup (``script``, ``style``, ``textarea``, ``title``, …).

Why not a library: the standard library's ``html.parser`` is quadratic on some hostile pages
(120 KB of ``<a `` took 144 s; CPython fixed such cases twice, so the interpreter a user has
decides), and tree builders are quadratic on deep nesting by the Standard's own algorithm
(Lexbor, through selectolax, took 113 s on 1 MiB of ``<div>`` and 178 s on ``<dl><dd>``).
Here every step consumes input, and each pattern scans forward only from where the last one
stopped and never backtracks over more than it then consumes.

Not done, as discovery needs none of it: the tree (no implied or misnested elements, no
``<template>`` contents set apart), foreign content (``<svg><style>`` is raw text here, a CDATA
section a bogus comment), and scripting (``<noscript>`` holds markup, as with scripting off).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from html.entities import html5

# Raw text (script, style, …) and escapable raw text (textarea, title): no tags inside, up to
# the matching end tag (§13.2.5.2–5). Matched in ASCII only: `ſ` and `K` are not `s` and `k`.
_RAW_TEXT = ("style", "xmp", "iframe", "noembed", "noframes", "textarea", "title")
_RAW_END = {name: re.compile(rf"</{name}[\t\n\f />]", re.I | re.A)
            for name in ("script", *_RAW_TEXT)}
# Script data has "escaped" states (§13.2.5.4, .15–.30): after "<!--", a "<script" starts a
# nested script whose "</script>" does not end the outer one, up to "-->". The pattern for
# each state finds what leaves it.
_OPEN_SCRIPT, _CLOSE_SCRIPT = r"(?P<open><script[\t\n\f />])", r"(?P<close></script[\t\n\f />])"
_SCRIPT = {
    "data": re.compile(rf"(?P<open><!--)|{_CLOSE_SCRIPT}", re.I | re.A),
    "escaped": re.compile(rf"(?P<end>-->)|{_OPEN_SCRIPT}|{_CLOSE_SCRIPT}", re.I | re.A),
    "double": re.compile(rf"(?P<end>-->)|{_CLOSE_SCRIPT}", re.I | re.A),
}
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# What follows a "<": a start tag's name, an end tag's name, a comment, or another "<!", "<?"
# or "</" (a DOCTYPE, a bogus comment); anything else leaves the "<" as text.
_OPEN = re.compile(r"<(?:([A-Za-z][^\t\n\f />]*)|/([A-Za-z][^\t\n\f />]*)|(!--)|([!?/]))")
# One attribute, with the whitespace and stray "/" before it: a name (its first character may
# be "="), then maybe "=" and a value: double-quoted, single-quoted (the closing quote is
# captured apart: missing means the page ended inside the value) or unquoted.
_ATTRIBUTE = re.compile(r"""[\t\n\f /]*(?:
    ([^\t\n\f />][^\t\n\f />=]*)
    (?:[\t\n\f ]*=[\t\n\f ]*(?:"([^"]*)(")?|'([^']*)(')?|([^\t\n\f >]*)))?
)?""", re.X)
_COMMENT_END = re.compile(r"--!?>")
_REFERENCE = re.compile(r"&(?:#[xX]([0-9A-Fa-f]+);?|#([0-9]+);?|([A-Za-z0-9]+)(;?))")
# A numeric reference to a C1 control means the windows-1252 character there (§13.2.5.80);
# the five code points windows-1252 leaves undefined stay as they are.
_WINDOWS_1252 = {0x80 + index: char for index, char in enumerate(
    bytes(range(0x80, 0xA0)).decode("cp1252", "replace")) if char != "\ufffd"}

Tag = tuple[str, dict[str, str]]


def start_tags(html: str, wanted: frozenset[str]) -> Iterator[Tag]:
    """(name, attributes) of every start tag named in ``wanted`` (lower case), in document
    order. A tag the page ends inside is not a tag (the Standard drops it at end of file)."""
    if "\r" in html:  # the Standard's input stream: CR LF and lone CR become LF
        html = html.replace("\r\n", "\n").replace("\r", "\n")
    return _scan(html, wanted, _BROWSER_RAW, None)


def text_of(html: str, separator: str = "") -> str:
    """The text of ``html`` as WordPress's ``wp_strip_all_tags()`` leaves it: tags and
    comments gone, ``script`` and ``style`` bodies gone (each up to its first end tag, as its
    pattern reads them), character references left exactly as written. ``separator`` stands
    where each tag or comment stood (" ": the words of ``<h1>A</h1><p>B</p>`` stay apart, as
    a browser shows them)."""
    parts: list[str] = []
    for _tag in _scan(html, frozenset(), _WORDPRESS_RAW, parts):
        pass
    return separator.join(parts)


RawEnd = Callable[[str, int], int]


def _scan(html: str, wanted: frozenset[str], raw: Mapping[str, RawEnd],
          text: list[str] | None) -> Iterator[Tag]:
    """The tokenizer: yields the start tags named in ``wanted``; appends the text between
    tokens to ``text`` (when given), leaving out the bodies of the ``raw`` elements, each of
    which ends where its function says."""
    pos, end, last = 0, len(html), 0
    while (pos := html.find("<", pos)) >= 0:
        opened = _OPEN.match(html, pos)
        if opened is None:
            pos += 1  # a "<" that opens nothing is text
            continue
        if text is not None:
            text.append(html[last:pos])
        start, close, comment, other = opened.groups()
        pos = opened.end()
        if start is not None:
            name = start.translate(_LOWER)
            pos, attributes = _attributes(html, pos, keep=name in wanted)
            if attributes is not None:
                yield name, attributes
            if name == "plaintext" and pos <= end:
                last = pos  # the rest of the page is text
                break
            if name in raw and pos <= end:
                pos = raw[name](html, pos)
        elif close is not None:
            pos, _ = _attributes(html, pos, keep=False)  # an end tag's ">" may be quoted too
        elif comment is not None:
            pos = _comment_end(html, pos)
        elif html.startswith(">", pos) and other == "/":
            pos += 1  # "</>" is nothing at all
        else:
            pos = html.find(">", pos) + 1 or end + 1  # a DOCTYPE or a bogus comment
        if pos > end:
            return  # the page ended inside a tag, a comment or a raw text element
        last = pos
    if text is not None:
        text.append(html[last:])


def _attributes(html: str, pos: int, keep: bool) -> tuple[int, dict[str, str] | None]:
    """Reads a tag's attributes up to its ">"; returns the position after it (past the end
    when the page ends inside the tag) and the attributes when ``keep``."""
    attributes: dict[str, str] | None = {} if keep else None
    while True:
        found = _ATTRIBUTE.match(html, pos)
        assert found is not None  # every part of the pattern is optional
        pos = found.end()
        name, double, double_end, single, single_end, bare = found.groups()
        if name is None:  # at the tag's ">", or at the end of the page
            return (pos + 1, attributes) if pos < len(html) else (len(html) + 1, None)
        if (double is not None and double_end is None) or (single is not None
                                                             and single_end is None):
            return len(html) + 1, None  # the page ended inside a quoted value
        if attributes is not None:
            value = double if double is not None else single if single is not None else bare
            attributes.setdefault(name.translate(_LOWER), _decoded(value or ""))


def _raw_end(html: str, pos: int, name: str) -> int:
    """Where the end tag of a raw text element starting at ``pos`` starts (past the end of
    the page when there is none)."""
    found = _RAW_END[name].search(html, pos)
    return found.start() if found is not None else len(html) + 1


def _script_end(html: str, pos: int) -> int:
    """Where the ``</script>`` that ends a script starting at ``pos`` starts (past the end
    of the page when there is none)."""
    state = "data"
    while (found := _SCRIPT[state].search(html, pos)) is not None:
        step = found.lastgroup
        if step == "end":
            state, pos = "data", found.end()
        elif step == "open" and state == "data":
            state, pos = "escaped", found.start() + 2  # "<!-->" ends where it starts
        elif step == "open":
            state, pos = "double", found.end() - 1
        elif state == "double":
            state, pos = "escaped", found.end() - 1
        else:
            return found.start()
    return len(html) + 1


def _comment_end(html: str, pos: int) -> int:
    """The position after a comment whose "<!--" ends at ``pos`` (§13.2.5.43–52)."""
    if html.startswith(">", pos):
        return pos + 1  # "<!-->"
    if html.startswith("->", pos):
        return pos + 2  # "<!--->"
    found = _COMMENT_END.search(html, pos)
    return found.end() if found is not None else len(html) + 1


def _decoded(value: str) -> str:
    """An attribute value with its character references decoded as the Standard decodes them
    in attributes: ``&copy=2`` stays as written (a query string, not ©=2)."""
    if "\0" in value:
        value = value.replace("\0", "\ufffd")
    if "&" not in value:
        return value
    return _REFERENCE.sub(_reference, value)


def _reference(found: re.Match[str]) -> str:
    hexadecimal, decimal, name, semicolon = found.groups()
    if name is None:
        digits = (hexadecimal or decimal).lstrip("0") or "0"
        if len(digits) > 8:  # far beyond U+10FFFF (and int() of a long decimal is slow)
            return "\ufffd"
        return _character(int(digits, 16 if hexadecimal else 10))
    if semicolon and f"{name};" in html5:
        return html5[f"{name};"]
    following = found.string[found.end():found.end() + 1]
    if not semicolon and name in html5 and following != "=":
        return html5[name]  # a legacy reference without ";" (&amp, &copy), not before "="
    return found.group(0)


def _character(number: int) -> str:
    """What a numeric reference stands for, as the Standard's "numeric character reference
    end state" says: NUL, a surrogate or a number beyond Unicode is U+FFFD, a C1 control
    its windows-1252 character, and anything else itself, controls and noncharacters
    included (``html.unescape`` drops those: ``/w&#x7f;m`` became ``/wm``, not ``/w%7Fm``)."""
    if number == 0 or number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
        return "\ufffd"
    return _WINDOWS_1252.get(number) or chr(number)


def ascii_lower(text: str) -> str:
    """``text`` with only A-Z lower-cased, as HTML and HTTP compare names and keywords
    (``str.lower`` turns the Kelvin sign into "k")."""
    return text.translate(_LOWER)


_BROWSER_RAW: dict[str, RawEnd] = {
    "script": _script_end, **{name: partial(_raw_end, name=name) for name in _RAW_TEXT}}
_WORDPRESS_RAW: dict[str, RawEnd] = {name: partial(_raw_end, name=name)
                                     for name in ("script", "style")}
