"""TrackBack 1.2 (PROTOCOLS.md §1): a form POST to the ping URL, an XML reply.

The pure half builds the fields exactly as WordPress's ``do_trackbacks()`` does (title through
strip_tags, excerpt through ``wp_html_excerpt(…, 252, '&#8230;')``) and reads the reply;
``send`` does the POST through the HTTP seam.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from wpnotify import rpc
from wpnotify.discovery import trackback_ping_url
from wpnotify.errors import SendError
from wpnotify.http import Http, Response, retry_after
from wpnotify.kind import Kind, Pacing
from wpnotify.markup import text_of

KIND = "trackback"
EXCERPT_CHARS = 252
ELLIPSIS = "&#8230;"
REPLY_CAP = 64 * 1024


def strip_tags(html: str) -> str:
    """PHP's strip_tags after WordPress drops <script> and <style> bodies: text kept, entities
    left exactly as written (WordPress sends them encoded), comments and tags gone. In time
    linear in the text (``html.parser`` took 38 s on 60 KB of ``<a ``)."""
    return text_of(html)


def excerpt(html: str, limit: int = EXCERPT_CHARS) -> str:
    """``wp_html_excerpt(html, 252, '&#8230;')``: text only, whitespace folded, cut to ``limit``
    characters, a half entity at the cut dropped, and the ellipsis only when something was cut."""
    text = re.sub(r"[\r\n\t ]+", " ", strip_tags(html.replace("]]>", "]]&gt;"))).strip()
    cut = re.sub(r"&[^;\s]{0,6}$", "", text[:limit])
    return cut if cut == text else cut.strip() + ELLIPSIS


@dataclass(frozen=True)
class Ping:
    """What a trackback carries: the fields of TrackBack 1.2 §"Sending a TrackBack Ping"."""

    url: str
    title: str
    excerpt: str
    blog_name: str

    def form(self) -> dict[str, str]:
        # charset is WordPress's own field for the encoding (it ignores the header's).
        return {"title": self.title, "url": self.url, "blog_name": self.blog_name,
                "excerpt": self.excerpt, "charset": "UTF-8"}

    def to_dict(self) -> dict[str, Any]:
        """As the state file stores it: ``{"url", "title", "excerpt", "blog_name"}``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ping:
        return cls(**data)

    @property
    def resend(self) -> None:
        """A trackback is never sent again."""
        return None


def build_ping(*, permalink: str, title_html: str, content_html: str, excerpt_html: str,
               blog_name: str) -> Ping:
    """The ping WordPress would send for this post (manual excerpt first, else the content)."""
    source = excerpt_html if excerpt_html.strip() else content_html
    return Ping(url=permalink, title=strip_tags(title_html).strip(), excerpt=excerpt(source),
                blog_name=blog_name)


def parse_reply(status: int, body: bytes, retry_after_s: float | None = None) -> str:
    """The outcome of a ping: a message on success; a classified SendError otherwise."""
    if status == 409:
        return "already received (duplicate)"
    if status in (408, 429) or status >= 500:
        raise SendError(f"the trackback URL answered {status}", code=f"http-{status}",
                        permanent=False, retry_after=retry_after_s if status != 429
                        else max(retry_after_s or 0.0, 15.0))
    if not 200 <= status < 300:
        raise SendError(f"the trackback URL answered {status}", code=f"http-{status}",
                        permanent=True)
    try:
        root = SafeET.fromstring(rpc.xml_text(body, "the trackback URL").strip(),
                                 forbid_dtd=True)  # in the parser: in any encoding
    except (SendError, ParseError, DefusedXmlException, ValueError, LookupError):
        raise SendError(f"the receiver answered {status} without a TrackBack reply; it may or "
                        "may not have recorded the ping", code="unverified",
                        permanent=True) from None
    error = (root.findtext("error") or "").strip()
    message = rpc.message(root.findtext("message") or "")
    if root.tag != "response" or error not in ("0", "1"):
        raise SendError("the receiver's reply is not a TrackBack response", code="unverified",
                        permanent=True)
    if error == "0":
        return message or "accepted"
    if "already a ping from that url" in message.lower():
        return f"already received ({message})"
    if "closed" in message.lower():
        raise SendError(message, code="closed", permanent=True)
    raise SendError(message or "the receiver refused the trackback", code="refused",
                    permanent=True)


def send(http: Http, ping_url: str, ping: Ping) -> str:
    """POSTs the ping; returns the receiver's message. Every error is tagged with the ping
    URL (an unreachable one too)."""
    try:
        resp = http.post(ping_url, data=ping.form(), max_bytes=REPLY_CAP, headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        return parse_reply(resp.status, resp.body, retry_after(resp.header("Retry-After")))
    except SendError as exc:
        raise exc.with_endpoint(ping_url) from None


def _found(page: Response, target: str) -> str | None:
    """The ping URL a page's TrackBack RDF names for ``target`` (a link's last resort)."""
    return trackback_ping_url(page.text(), page.url, target)


def _fallback(link: Any) -> Ping | None:
    """A link's notification goes out as a trackback only when it carries one."""
    ping: Ping | None = link.ping
    return ping


SPEC: Kind[Ping] = Kind(
    name=KIND, label="TrackBack", read=Ping.from_dict,
    send=lambda http, endpoint, letter: send(http, endpoint, letter.payload),
    find=_found, at_target=True, fallback=_fallback,
    pacing=Pacing(flood_checked=True))  # a comment in WordPress
