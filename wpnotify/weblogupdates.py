"""Update services (weblogUpdates, PROTOCOLS.md §4): tell a ping server the blog has changed.

Sent as WordPress's ``weblog_ping()`` sends it: ``weblogUpdates.extendedPing(blog name, home
URL with a trailing slash, RSS2 feed URL)``, and ``weblogUpdates.ping(name, home)`` when the
server does not take that call. Unlike WordPress, the reply's ``flerror`` is read: true is a
failure, with the server's message as the reason.
"""

from __future__ import annotations

import re
import xmlrpc.client
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from wpnotify import rpc
from wpnotify.errors import SendError
from wpnotify.http import Http, retry_after
from wpnotify.kind import Kind, Pacing

KIND = "update-service"
REPLY_CAP = 64 * 1024
SPACING = 300.0  # one ping per service per 5 minutes: a burst of publishes shares one
TOO_FAST = re.compile(r"too (fast|often|quickly)|slow down|try again|later", re.I)


@dataclass(frozen=True)
class Update:
    """What a ping announces: the blog, not a post."""

    name: str
    home: str
    feed: str

    def to_dict(self) -> dict[str, Any]:
        """As the state file stores it: ``{"name", "home", "feed"}``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Update:
        return cls(**data)

    @property
    def resend(self) -> None:
        """An update ping is never sent again."""
        return None


def build_update(*, name: str, home: str) -> Update:
    home = home.rstrip("/") + "/"
    return Update(name=name, home=home, feed=f"{home}?feed=rss2")


def parse_reply(status: int, body: bytes, retry_after_s: float | None = None) -> str:
    """The server's message on success; a classified SendError otherwise. Its text (and a
    fault's, cut in ``rpc``) is one line of at most a few hundred characters."""
    if status in (408, 429) or status >= 500:
        raise SendError(f"the update service answered {status}", code=f"http-{status}",
                        permanent=False, retry_after=retry_after_s)
    if status != 200:
        raise SendError(f"the update service answered {status}", code=f"http-{status}",
                        permanent=True)
    try:
        params = rpc.loads(body, "the update service")
    except xmlrpc.client.Fault as fault:
        raise SendError(f"fault {fault.faultCode}: {fault.faultString}",
                        code=f"fault-{fault.faultCode}", permanent=True) from None
    reply: Any = params[0] if params else {}
    if not isinstance(reply, dict):
        return rpc.message(str(reply))
    message = rpc.message(str(reply.get("message", "")))
    if reply.get("flerror"):
        if TOO_FAST.search(message):
            raise SendError(message or "pinged too often", code="too-often", permanent=False,
                            retry_after=SPACING)
        raise SendError(message or "the update service refused the ping", code="refused",
                        permanent=True)
    return message or "ok"


def _call(http: Http, url: str, method: str, params: tuple[str, ...]) -> str:
    resp = http.post(url, data=xmlrpc.client.dumps(params, method, encoding="utf-8").encode(),
                     max_bytes=REPLY_CAP, headers={"Content-Type": "text/xml; charset=utf-8"})
    return parse_reply(resp.status, resp.body, retry_after(resp.header("Retry-After")))


def send(http: Http, url: str, update: Update) -> str:
    """extendedPing, then plain ping if the server does not take the first (a fault or an
    HTTP refusal); not after a timeout or a server error, where a second call would only
    wait or fail the same way."""
    try:
        return _call(http, url, "weblogUpdates.extendedPing",
                     (update.name, update.home, update.feed))
    except SendError as first:
        if not first.code.startswith(("fault-", "http-4")) or first.code == "http-429":
            raise first.with_endpoint(url) from None
    try:
        return _call(http, url, "weblogUpdates.ping", (update.name, update.home))
    except SendError as exc:
        raise exc.with_endpoint(url) from None


SPEC: Kind[Update] = Kind(
    name=KIND, label="update service", read=Update.from_dict,
    send=lambda http, endpoint, letter: send(http, endpoint, letter.payload),
    at_target=True,
    # One ping announces the blog: one at a time, five minutes apart per service URL (not
    # its host), and one sent covers every post waiting for it; WordPress's pinged lists
    # are about links, so it is not written there.
    pacing=Pacing(one_at_a_time=True, by_url=True, spacing=SPACING, settles_target=True,
                  pinged=False))
