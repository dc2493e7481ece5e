"""What one published post owes: pure, so the daemon, poll, backfill and its dry run all decide
the same way. It reads a post record and what the state already holds; it writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from wpnotify import pingback, trackback, weblogupdates, webmention
from wpnotify.discovery import extract_links, select_targets
from wpnotify.wordpress import Post

ALREADY_PINGED = "already in WordPress's pinged list (notified before wpnotify took over)"


@dataclass(frozen=True)
class Planned:
    """One notification to record: pending (to send) or skipped (with the reason)."""

    kind: str
    target: str
    status: str = "pending"
    error: str | None = None
    error_code: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


LINK_KINDS = {"webmention": (webmention.KIND,), "pingback": (pingback.KIND,),
              "both": (webmention.KIND, pingback.KIND)}


def plan(post: Post, *, home: str, blog_name: str, self_pings: bool,
         known: Callable[[str], set[str]], prefer: str = "webmention",
         update_services: tuple[str, ...] = (), announce: bool = False) -> list[Planned]:
    """The notifications a published, unprotected post owes that ``known(kind)`` does not
    already hold. Targets WordPress lists as pinged are planned as skipped, never sent.
    Update services are pinged once per post, and only when ``announce`` (a fresh publish,
    not an old post edited or backfilled)."""
    pinged = set(post.pinged or ())
    owed: list[Planned] = []
    links = select_targets(extract_links(post.content_html, post.link), permalink=post.link,
                           home=home, self_pings=self_pings)
    sent = {kind: known(kind) for kind in (webmention.KIND, pingback.KIND)}
    for url in links:
        if url in pinged:  # WordPress pinged it before wpnotify took over
            if not any(url in targets for targets in sent.values()):
                owed.append(_planned(pingback.KIND, url, True))
            continue
        for kind in LINK_KINDS[prefer]:
            done = sent[kind] | (sent[pingback.KIND] if prefer == "webmention" else set())
            if url not in done:
                owed.append(Planned(kind, url, payload={"fallback": prefer == "webmention"}))
    queued = [url for url in dict.fromkeys(post.to_ping or ()) if url not in
              known(trackback.KIND)]
    if queued:
        ping = asdict(trackback.build_ping(
            permalink=post.link, title_html=post.title_html, content_html=post.content_html,
            excerpt_html=post.excerpt_html, blog_name=blog_name))
        owed += [_planned(trackback.KIND, url, url in pinged, ping) for url in queued]
    if announce and update_services:
        update = asdict(weblogupdates.build_update(name=blog_name, home=home))
        done = known(weblogupdates.KIND)
        owed += [Planned(weblogupdates.KIND, url, payload=update)
                 for url in update_services if url not in done]
    return owed


def _planned(kind: str, target: str, already: bool,
             payload: dict[str, Any] | None = None) -> Planned:
    if already:
        return Planned(kind, target, "skipped", ALREADY_PINGED, "already-pinged")
    return Planned(kind, target, payload=payload or {})
