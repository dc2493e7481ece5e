"""XML-RPC replies, read safely: one place for the DTD refusal and the garbled-reply error
that pingback and update-service replies share (PROTOCOLS.md §2.2, §6)."""

from __future__ import annotations

import xmlrpc.client
from typing import Any
from xml.parsers.expat import ExpatError

from wpnotify.errors import SendError


def has_dtd(body: bytes) -> bool:
    """XML with a DTD could expand entities (billion laughs): never parsed."""
    return b"<!DOCTYPE" in body[:1024].upper() or b"<!ENTITY" in body.upper()


def loads(body: bytes, what: str) -> tuple[Any, ...]:
    """The reply's parameters; a fault is raised as ``xmlrpc.client.Fault`` for the caller to
    classify, anything unreadable as a SendError (``bad-reply``)."""
    if has_dtd(body):
        raise SendError(f"{what} sent XML with a DTD; refused to parse it", code="bad-reply",
                        permanent=True)
    try:
        params, _method = xmlrpc.client.loads(body)
    except xmlrpc.client.Fault:
        raise
    except (ExpatError, xmlrpc.client.ResponseError, ValueError, TypeError):
        raise SendError(f"{what}'s reply is not XML-RPC", code="bad-reply",
                        permanent=False) from None
    return params
