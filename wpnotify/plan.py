"""What one published post owes: pure, so the daemon, poll, backfill and its dry run all decide
the same way. It reads a post record, the site's settings and what the state already holds; it
writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from wpnotify import pingback, trackback, weblogupdates, webmention
from wpnotify.discovery import extract_links, select_targets
from wpnotify.http import url_problem
from wpnotify.kind import Payload
from wpnotify.linkpayload import LinkPayload
from wpnotify.settings import SiteSettings
from wpnotify.sources import Post
from wpnotify.urls import host_rule

ALREADY_PINGED = "already in WordPress's pinged list (notified before wpnotify took over)"
LINK_KINDS = {"webmention": (webmention.KIND,), "pingback": (pingback.KIND,),
              "both": (webmention.KIND, pingback.KIND)}

Known = Callable[[str], set[str]]


@dataclass(frozen=True)
class Planned:
    """One notification to record: pending (to send) or skipped (with the reason)."""

    kind: str
    target: str
    status: str = "pending"
    error: str | None = None
    error_code: str | None = None
    payload: Payload | None = None  # None: nothing to carry (a skipped one)

    def payload_dict(self) -> dict[str, Any]:
        """The payload as the state file stores it."""
        return {} if self.payload is None else self.payload.to_dict()

    def shown_kind(self) -> str:
        """The kind as a dry run names it: a link that may go out as a pingback says so."""
        fallback = isinstance(self.payload, LinkPayload) and self.payload.fallback
        return self.kind + (f" (or {pingback.KIND})" if fallback else "")


def plan(post: Post, site: SiteSettings, *, home: str, blog_name: str, known: Known,
         announce: bool = False) -> list[Planned]:
    """The notifications a published, unprotected post owes that ``known(kind)`` does not
    already hold, each as pending or as skipped with the reason: URLs WordPress already
    pinged, trackbacks beyond ``max_trackbacks_per_post``, hosts ``allow_hosts`` and
    ``deny_hosts`` rule out. Update services only when ``announce`` (a fresh publish)."""
    ping = trackback.build_ping(
        permalink=post.link, title_html=post.title_html, content_html=post.content_html,
        excerpt_html=post.excerpt_html, blog_name=blog_name) if (
            post.to_ping or site.trackback_discovery) else None
    owed = (_links(post, site, home, known, ping)
            + _trackbacks(post, site, known, ping)
            + (_updates(site, home, blog_name, known) if announce else []))
    return [_policed(item, site) for item in owed]


def _links(post: Post, site: SiteSettings, home: str, known: Known,
           ping: trackback.Ping | None) -> list[Planned]:
    """One notification per link and kind of ``site.prefer``; with "webmention" a page that
    offers only Pingback (or, with trackback_discovery, only TrackBack RDF) gets that."""
    pinged = set(post.pinged or ())
    links = select_targets(extract_links(post.content_html, post.link), permalink=post.link,
                           home=home, self_pings=site.self_pings)
    sent = {kind: known(kind) for kind in (webmention.KIND, pingback.KIND)}
    by_trackback = known(trackback.KIND)  # links that went out as discovered trackbacks
    fallback = site.prefer == "webmention"
    payload = LinkPayload(fallback=fallback, ping=ping if site.trackback_discovery else None)
    covered = sent[webmention.KIND] | sent[pingback.KIND] | by_trackback
    owed = []
    for url in links:
        if url in pinged:  # WordPress pinged it before wpnotify took over
            if url not in covered:
                owed.append(Planned(pingback.KIND, url, "skipped", ALREADY_PINGED,
                                    "already-pinged"))
            continue
        for kind in LINK_KINDS[site.prefer]:
            done = covered if fallback else sent[kind] | by_trackback
            if url not in done:
                owed.append(_checked(Planned(kind, url, payload=payload)))
    return owed


def _checked(item: Planned, fix: str = "fix the link in the post") -> Planned:
    """The item, or, when its URL could never be requested (a malformed link such as
    ``http://example.com:8O80/``), the item skipped with the reason: one bad link costs
    only itself, never its post's other notifications."""
    problem = url_problem(item.target)
    if problem is None:
        return item
    return replace(item, status="skipped", error=f"{problem} ({fix})",
                   error_code="bad-url", payload=None)


def _trackbacks(post: Post, site: SiteSettings, known: Known,
                ping: trackback.Ping | None) -> list[Planned]:
    pinged = set(post.pinged or ())
    done = known(trackback.KIND)
    room = max(site.max_trackbacks_per_post - len(done), 0)
    owed = []
    for url in dict.fromkeys(post.to_ping or ()):
        if url in done:
            continue
        if url in pinged:
            owed.append(Planned(trackback.KIND, url, "skipped", ALREADY_PINGED,
                                "already-pinged"))
        elif room == 0:
            owed.append(Planned(trackback.KIND, url, "skipped",
                                f"more than max_trackbacks_per_post "
                                f"({site.max_trackbacks_per_post}) for this post",
                                "too-many-trackbacks"))
        elif (problem := url_problem(url)) is not None:
            owed.append(Planned(trackback.KIND, url, "skipped",
                                f"{problem} (fix the URL in the post's trackbacks)",
                                "bad-url"))
        else:
            room -= 1
            owed.append(Planned(trackback.KIND, url, payload=ping))
    return owed


def _updates(site: SiteSettings, home: str, blog_name: str, known: Known) -> list[Planned]:
    update = weblogupdates.build_update(name=blog_name, home=home)
    done = known(weblogupdates.KIND)
    return [_checked(Planned(weblogupdates.KIND, url, payload=update),
                     "fix update_services in the configuration")
            for url in site.update_services if url not in done]


def host_refusal(url: str, site: SiteSettings) -> str | None:
    """Why allow_hosts / deny_hosts rule this URL out, or None (``urls.host_rule``: the one
    matcher, shared with inbound verification)."""
    found = host_rule(url, site.allow_hosts, site.deny_hosts)
    if found is None:
        return None
    rule, host = found
    return (f"host {host} matches deny_hosts" if rule == "deny"
            else f"host {host} is not in allow_hosts")


def _policed(item: Planned, site: SiteSettings) -> Planned:
    if item.status != "pending":
        return item
    reason = host_refusal(item.target, site)
    if reason is None:
        return item
    return replace(item, status="skipped", error=reason, error_code="host-refused",
                   payload=None)
