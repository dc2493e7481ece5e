"""XML replies, read safely: one place for the decoding, the DTD refusal and the garbled-reply
errors that pingback, update-service and trackback replies share (PROTOCOLS.md §2.2, §6), and
the XML-RPC reader the XML-RPC source uses too.

The DTD is refused by the parser itself, at the DOCTYPE, before any entity is declared (as
defusedxml does): that holds in every encoding expat detects, whereas a search of the text
depends on decoding the bytes exactly as expat will (UTF-16 without a byte order mark or a
declaration once slipped past it). A reply is still decoded here first, as a parser would
(byte order mark, else the declared encoding, else UTF-8), so that an unknown encoding is
named as such; text holding NUL is no XML at all and is refused before expat could take its
NUL bytes for UTF-16.
"""

from __future__ import annotations

import codecs
import re
import xmlrpc.client
from typing import Any, NoReturn
from xml.parsers import expat
from xml.parsers.expat import ExpatError

from wpnotify.errors import SendError
from wpnotify.http import NOT_CHARSETS

MAX_DEPTH = 32  # arrays and structs within each other: real replies use two or three
MAX_MESSAGE = 300  # characters of a receiver's text kept in a message (history, logs)
# Byte order marks, and the first bytes of "<" in the encodings expat detects without one
# (UTF-16 as expat reads it: a NUL in either of the first two bytes).
_SIGNATURES = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
               (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
               (codecs.BOM_UTF16_BE, "utf-16"), (b"<\0\0\0", "utf-32-le"),
               (b"\0\0\0<", "utf-32-be"))
_DECLARED = re.compile(rb"""\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([^"'>]{1,40})["']""")


class DtdRefused(Exception):
    """The XML holds a DOCTYPE or an entity declaration, which is never parsed: entities
    could expand without end (billion laughs) or reach for external files."""


def _refuse(*_args: object) -> NoReturn:
    raise DtdRefused


class SafeParser(xmlrpc.client.ExpatParser):
    """``xmlrpc.client``'s expat reader that stops at a DOCTYPE or an entity declaration.
    An exception raised in an expat handler ends the parse and comes out of ``feed``."""

    _parser: expat.XMLParserType

    def __init__(self, target: xmlrpc.client.Unmarshaller) -> None:
        super().__init__(target)
        self._parser.StartDoctypeDeclHandler = _refuse
        self._parser.EntityDeclHandler = _refuse
        self._parser.UnparsedEntityDeclHandler = _refuse
        self._parser.ExternalEntityRefHandler = _refuse


def getparser(use_datetime: bool = False, use_builtin_types: bool = False,
              ) -> tuple[xmlrpc.client.ExpatParser, xmlrpc.client.Unmarshaller]:
    """``xmlrpc.client.getparser`` with the DTD refused."""
    unmarshaller = xmlrpc.client.Unmarshaller(use_datetime=use_datetime,
                                              use_builtin_types=use_builtin_types)
    return SafeParser(unmarshaller), unmarshaller


def parse(data: bytes | str) -> tuple[Any, ...]:
    """``xmlrpc.client.loads(data)[0]`` with the DTD refused (``DtdRefused``); a fault is
    raised as ``xmlrpc.client.Fault``, anything malformed as what expat or the unmarshaller
    raise."""
    parser, unmarshaller = getparser()
    parser.feed(data)
    parser.close()
    return unmarshaller.close()


def message(text: str, limit: int = MAX_MESSAGE) -> str:
    """A receiver's text as one line of at most ``limit`` characters, for a message that
    lands in the history and the logs: a reply may hold 64 KiB of it."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[:limit - 1] + "\u2026"


def _decoded(body: bytes) -> str:
    """``body`` decoded as an XML parser would: its byte order mark, else UTF-16 when expat
    would take it for that (a NUL in either of the first two bytes), else its declared
    encoding, else UTF-8. A LookupError when it declares what is no text encoding."""
    codec = next((name for mark, name in _SIGNATURES if body.startswith(mark)), None)
    if codec is None and 0 in body[:2]:
        codec = "utf-16-be" if body[0] == 0 else "utf-16-le"
    if codec is None:
        declared = _DECLARED.match(body)
        codec = declared.group(1).decode("ascii", "replace") if declared else "utf-8"
    try:
        if codecs.lookup(codec).name in NOT_CHARSETS:
            raise LookupError(codec)
        return body.decode(codec, errors="replace")
    except (LookupError, UnicodeError, ValueError):  # no codec, or one for bytes only
        raise LookupError(codec) from None


def xml_text(body: bytes, what: str) -> str:
    """The reply as text, decoded as an XML parser would; a SendError (``bad-reply``) when it
    declares an encoding that is none, or holds NUL (which XML never does, and which expat,
    reading the text as UTF-8 bytes, would take for UTF-16). Its DTD, if any, is for the
    parser to refuse."""
    try:
        text = _decoded(body)
    except LookupError as exc:
        raise SendError(f"{what}'s reply declares an unknown encoding ({str(exc)[:40]!r})",
                        code="bad-reply", permanent=False) from None
    if "\0" in text:
        raise SendError(f"{what}'s reply is not XML: it holds NUL characters (in an "
                        "encoding it does not declare?)", code="bad-reply", permanent=False)
    return text.lstrip("\ufeff")


def loads(body: bytes, what: str) -> tuple[Any, ...]:
    """The reply's parameters; a fault is raised as ``xmlrpc.client.Fault`` (an integer code
    and a string, whatever the receiver sent) for the caller to classify, anything
    unreadable as a SendError (``bad-reply``)."""
    text = xml_text(body, what)
    try:  # a str: expat reads it as the text it is, whatever the declaration says
        params = parse(text)
    except DtdRefused:
        raise SendError(f"{what} sent XML with a DTD; refused to parse it", code="bad-reply",
                        permanent=True) from None
    except xmlrpc.client.Fault as fault:
        raise _fault(fault, what) from None
    except (ExpatError, xmlrpc.client.ResponseError, ValueError, TypeError, LookupError,
            UnicodeError, OverflowError):
        raise SendError(f"{what}'s reply is not XML-RPC", code="bad-reply",
                        permanent=False) from None
    if _too_deep(params):
        raise SendError(f"{what}'s reply is nested more than {MAX_DEPTH} levels deep",
                        code="bad-reply", permanent=True)
    return params


def _fault(fault: xmlrpc.client.Fault, what: str) -> BaseException:
    """The fault with an integer code and a string (one line, cut to MAX_MESSAGE), or a
    SendError when it has no such code (a struct, a string, a boolean: the receiver is
    broken, asking again will not help)."""
    code, text = fault.faultCode, fault.faultString
    if type(code) is not int or not -2**31 <= code < 2**31:
        shown = "nested too deeply" if _too_deep(code) else repr(code)[:40]
        return SendError(f"{what} answered a fault whose fault code is not an integer "
                         f"({shown})", code="bad-reply", permanent=True)
    return xmlrpc.client.Fault(code, message(text) if isinstance(text, str) else "")


def _too_deep(value: Any) -> bool:
    """True when arrays and structs nest deeper than MAX_DEPTH; iterative, so a hostile
    reply cannot exhaust the interpreter's stack (repr() of one would)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | tuple | dict):
            if depth > MAX_DEPTH:
                return True
            stack.extend((child, depth + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return False
