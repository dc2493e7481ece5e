"""XML replies, read safely: one place for the decoding, the DTD refusal and the garbled-reply
errors that pingback, update-service and trackback replies share (PROTOCOLS.md §2.2, §6).

A reply is decoded here, as an XML parser would decode it (byte order mark, else the declared
encoding, else UTF-8), and the DTD check runs on that text, which is then what the parser
reads: a DTD in UTF-16 is invisible to a search of the raw bytes, and once reached expat.
"""

from __future__ import annotations

import codecs
import re
import xmlrpc.client
from typing import Any
from xml.parsers.expat import ExpatError

from wpnotify.errors import SendError
from wpnotify.http import NOT_CHARSETS

MAX_DEPTH = 32  # arrays and structs within each other: real replies use two or three
# Byte order marks, and the first bytes of "<?" in the encodings XML allows without one.
_SIGNATURES = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
               (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
               (codecs.BOM_UTF16_BE, "utf-16"), (b"<\0\0\0", "utf-32-le"),
               (b"\0\0\0<", "utf-32-be"), (b"<\0?\0", "utf-16-le"), (b"\0<\0?", "utf-16-be"))
_DECLARED = re.compile(rb"""\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([^"'>]{1,40})["']""")


def has_dtd(body: bytes | str) -> bool:
    """XML with a DTD could expand entities (billion laughs): never parsed. Raw bytes are
    looked at both as they are and decoded as the parser would decode them."""
    texts = [body] if isinstance(body, str) else [body.decode("latin-1"),
                                                  _decoded(body, strict=False)]
    return any("<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper() for text in texts)


def _decoded(body: bytes, strict: bool = True) -> str:
    """``body`` decoded as an XML parser would: its byte order mark, else its declared
    encoding, else UTF-8. A LookupError when it declares what is no text encoding (unless
    not ``strict``: then UTF-8)."""
    codec = next((name for mark, name in _SIGNATURES if body.startswith(mark)), None)
    if codec is None:
        declared = _DECLARED.match(body)
        codec = declared.group(1).decode("ascii", "replace") if declared else "utf-8"
    try:
        if codecs.lookup(codec).name in NOT_CHARSETS:
            raise LookupError(codec)
        return body.decode(codec, errors="replace")
    except (LookupError, UnicodeError, ValueError):  # no codec, or one for bytes only
        if strict:
            raise LookupError(codec) from None
        return body.decode("utf-8", errors="replace")


def xml_text(body: bytes, what: str) -> str:
    """The reply as text, decoded as an XML parser would; a SendError (``bad-reply``) when it
    declares an encoding that is none, or holds a DTD."""
    try:
        text = _decoded(body)
    except LookupError as exc:
        raise SendError(f"{what}'s reply declares an unknown encoding ({str(exc)[:40]!r})",
                        code="bad-reply", permanent=False) from None
    if has_dtd(text):
        raise SendError(f"{what} sent XML with a DTD; refused to parse it", code="bad-reply",
                        permanent=True)
    return text.lstrip("\ufeff")


def loads(body: bytes, what: str) -> tuple[Any, ...]:
    """The reply's parameters; a fault is raised as ``xmlrpc.client.Fault`` (an integer code
    and a string, whatever the receiver sent) for the caller to classify, anything
    unreadable as a SendError (``bad-reply``)."""
    text = xml_text(body, what)
    try:  # a str: expat reads it as the text it is, whatever the declaration says
        params, _method = xmlrpc.client.loads(text)
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
    """The fault with an integer code and a string, or a SendError when it has no such code
    (a struct, a string, a boolean: the receiver is broken, asking again will not help)."""
    code, text = fault.faultCode, fault.faultString
    if type(code) is not int or not -2**31 <= code < 2**31:
        shown = "nested too deeply" if _too_deep(code) else repr(code)[:40]
        return SendError(f"{what} answered a fault whose fault code is not an integer "
                         f"({shown})", code="bad-reply", permanent=True)
    return xmlrpc.client.Fault(code, text if isinstance(text, str) else "")


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
