"""Pingback 1.0 (PROTOCOLS.md §2): find the target's XML-RPC server, call pingback.ping.

The pure half finds the server in a fetched page (the sender's one GET of the target serves
every protocol's discovery), builds the call and reads the reply; ``send`` does the I/O through
the HTTP seam. XML-RPC is encoded and decoded by the standard library's ``xmlrpc.client``, on a
capped body with DTDs refused.
"""

from __future__ import annotations

import xmlrpc.client
from typing import Any

from wpnotify import rpc
from wpnotify.discovery import is_html, pingback_endpoint
from wpnotify.errors import SendError
from wpnotify.http import Http, Response, retry_after
from wpnotify.kind import Kind, Pacing
from wpnotify.linkpayload import LinkPayload

KIND = "pingback"
REPLY_CAP = 64 * 1024

# Fault code -> (permanent, stable code, what it means). PROTOCOLS.md §2.2.
FAULTS: dict[int, tuple[bool, str, str]] = {
    0: (False, "fault-0", "the receiver refused the pingback without saying why"),
    16: (False, "source-not-found", "the receiver could not fetch our post"),
    17: (False, "no-link-in-source", "the receiver did not find the link in our post"),
    32: (True, "target-not-found", "the target does not exist"),
    33: (True, "target-not-pingable", "the target does not accept pingbacks"),
    49: (True, "access-denied", "the receiver denied access"),
    50: (False, "upstream-error", "the receiver had an upstream error"),
    -32601: (True, "no-pingback-method", "the receiver's XML-RPC server has no pingback.ping"),
}
ALREADY = {48: "already registered", 409: "already registered (duplicate comment)"}


def endpoint_in(page: Response) -> str | None:
    """The pingback server a fetched page advertises (header first), or None."""
    header = page.header("X-Pingback")
    if header and header.strip():
        return pingback_endpoint(header, "", page.url)  # the header wins: no need to parse
    if not is_html(page.header("Content-Type")):
        return None
    return pingback_endpoint(None, page.text(), page.url)


def build_call(source: str, target: str) -> bytes:
    return xmlrpc.client.dumps((source, target), "pingback.ping", encoding="utf-8").encode()


def parse_reply(status: int, body: bytes, retry_after_s: float | None = None) -> str:
    """The receiver's message on success (fault 48 counts), one line cut to a few hundred
    characters like a fault's text; a classified SendError otherwise."""
    if status in (403, 404, 405, 410):
        raise SendError(f"the pingback endpoint answered {status} (XML-RPC switched off?)",
                        code=f"http-{status}", permanent=True)
    if status in (408, 429) or status >= 500:
        raise SendError(f"the pingback endpoint answered {status}", code=f"http-{status}",
                        permanent=False, retry_after=retry_after_s)
    if status != 200:
        raise SendError(f"the pingback endpoint answered {status}", code=f"http-{status}",
                        permanent=True)
    try:
        params = rpc.loads(body, "the pingback endpoint")
    except xmlrpc.client.Fault as fault:
        raise_for_fault(fault.faultCode, str(fault.faultString))
        return ALREADY.get(fault.faultCode, "already registered")
    return rpc.message(str(params[0])) if params else ""


def raise_for_fault(code: int, text: str) -> None:
    """Returns only for faults that mean "already registered"; raises for every other one."""
    if code in ALREADY:
        return
    if code == 429:
        raise SendError(f"fault 429: {text or 'posting too quickly'}", code="rate-limited",
                        permanent=False, retry_after=15.0)
    permanent, stable, meaning = FAULTS.get(code, (False, f"fault-{code}", "unknown fault"))
    detail = f": {text}" if text else ""
    raise SendError(f"fault {code}, {meaning}{detail}", code=stable, permanent=permanent)


def send(http: Http, endpoint: str, source: str, target: str) -> str:
    """Calls pingback.ping(source, target) at endpoint; returns the receiver's message. Every
    error is tagged with the endpoint (an unreachable one too)."""
    try:
        resp = http.post(endpoint, data=build_call(source, target), max_bytes=REPLY_CAP,
                         headers={"Content-Type": "text/xml; charset=utf-8"})
        return parse_reply(resp.status, resp.body, retry_after(resp.header("Retry-After")))
    except SendError as exc:
        raise exc.with_endpoint(endpoint) from None


def _fallback(link: Any) -> LinkPayload | None:
    """A Webmention row goes out as a pingback when it may (prefer = "webmention")."""
    payload: LinkPayload = link
    return payload if payload.fallback else None


SPEC: Kind[LinkPayload] = Kind(
    name=KIND, label="Pingback", read=LinkPayload.from_dict,
    send=lambda http, endpoint, letter: send(http, endpoint, letter.source, letter.target),
    find=lambda page, target: endpoint_in(page), fallback=_fallback,
    pacing=Pacing(flood_checked=True))  # a comment in WordPress
