"""Webmention (W3C Recommendation, PROTOCOLS.md §3): discover the target's endpoint, POST
``source`` and ``target`` to it.

The pure half finds the endpoint in a fetched page and reads the reply; ``send`` does the POST
through the HTTP seam. Any 2xx is success (201 names a status URL, kept in the history).
"""

from __future__ import annotations

from collections.abc import Mapping

from wpnotify.discovery import fetch_page, is_html, webmention_endpoint
from wpnotify.errors import SendError
from wpnotify.http import (
    REDIRECTS,
    Http,
    Response,
    redirect_target,
    retry_after,
)
from wpnotify.kind import Kind
from wpnotify.linkpayload import LinkPayload
from wpnotify.urls import redact

KIND = "webmention"
REPLY_CAP = 64 * 1024


def wants_body(status: int, headers: Mapping[str, str]) -> bool:
    """The body is read when it is HTML (a Link header may already answer, but a pingback
    fallback needs the page too); media is never downloaded."""
    return is_html(headers.get("Content-Type"))


def link_headers(page: Response) -> list[str]:
    return [value for name, value in page.headers if name.lower() == "link"]


def endpoint_in(page: Response) -> str | None:
    html = page.text() if is_html(page.header("Content-Type")) else None
    return webmention_endpoint(link_headers(page), html, page.url)


def discover(http: Http, target: str) -> str:
    """The target's Webmention endpoint; a SendError (skip) when it has none. (The sender
    fetches the page itself, to look for every protocol in one GET.)"""
    endpoint = endpoint_in(fetch_page(http, target, wants_body))
    if endpoint is None:
        raise SendError("the target advertises no Webmention endpoint", code="no-endpoint",
                        permanent=True, skip=True)
    return endpoint


def parse_reply(status: int, location: str | None, body: bytes,
                retry_after_s: float | None = None) -> str:
    """A message for the history on success; a classified SendError otherwise."""
    if 200 <= status < 300:
        if status == 201 and location:
            return f"created: {redact(location)[:500]}"
        return {200: "accepted and verified", 202: "accepted, to be verified"}.get(
            status, f"accepted ({status})")
    detail = " ".join(body[:300].decode("utf-8", "replace").split())
    reason = f"the Webmention endpoint answered {status}" + (f": {detail}" if detail else "")
    if status in (408, 429) or status >= 500:
        raise SendError(reason, code=f"http-{status}", permanent=False,
                        retry_after=retry_after_s)
    if status in REDIRECTS:
        raise SendError(f"the Webmention endpoint redirected ({status}); a POST is not "
                        "followed", code="redirect", permanent=True)
    raise SendError(reason, code=f"http-{status}", permanent=True)


def send(http: Http, endpoint: str, source: str, target: str) -> str:
    """POSTs source and target; a 307 or 308 is followed once, to a guarded address."""
    form = {"source": source, "target": target}
    resp = http.post(endpoint, data=form, max_bytes=REPLY_CAP)
    if resp.status in (307, 308) and resp.header("Location"):
        try:
            endpoint = redirect_target(endpoint, resp.header("Location") or "")
        except SendError as exc:
            raise exc.with_endpoint(endpoint) from None
        resp = http.post(endpoint, data=form, max_bytes=REPLY_CAP)
    try:
        return parse_reply(resp.status, resp.header("Location"), resp.body,
                           retry_after(resp.header("Retry-After")))
    except SendError as exc:
        raise exc.with_endpoint(endpoint) from None


SPEC: Kind[LinkPayload] = Kind(
    name=KIND, label="Webmention", read=LinkPayload.from_dict,
    send=lambda http, endpoint, letter: send(http, endpoint, letter.source, letter.target),
    find=lambda page, target: endpoint_in(page))
