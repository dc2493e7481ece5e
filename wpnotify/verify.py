"""Inbound verification: does a trackback or pingback a site received come from a page that
links to the post? A pure half (the post's URLs, the links on a page, the text of a trackback,
the decision as a table) and a small sending half (``fetch_source``, ``resolve``, ``check``)
that does the I/O through the one HTTP seam, as the protocol modules do.

What counts, decided in issue 16:
- the post's URLs are its permalink (with or without a trailing slash, http and https alike,
  fragment dropped) and its shortlinks ``home/?p=ID``, ``home/index.php?p=ID`` (and
  ``?page_id=ID`` for a page); a link whose query holds anything else is not the post;
- a link is an ``<a href>`` element as a browser reads the page (``markup``: not inside a
  comment, a script or escaped text), resolved against the page's final URL after redirects;
- links on the source page to the post's own host that are none of those URLs (an old slug,
  a ?p= form with a trailing slash WordPress redirects) count when they redirect to the post:
  at most ``SITE_LINKS`` per page are resolved, without reading bodies;
- a trackback's title and excerpt must plausibly come from the page (``text_on_page``);
- optionally the sender's IP must be one of the source host's addresses.
Everything read from the network is read in time linear in its length, in bounded memory.
"""

from __future__ import annotations

import codecs
import ipaddress
import math
import re
import unicodedata
from collections import deque
from collections.abc import Collection, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html import unescape
from typing import Protocol
from urllib.parse import quote, urlsplit

from wpnotify.discovery import _join, comparable, is_html
from wpnotify.errors import SendError
from wpnotify.http import Http, decode_text, retry_after
from wpnotify.markup import start_tags, text_of
from wpnotify.urls import host_rule, redact

Address = tuple[str, str, str]
"""A URL as "is this the post?" compares it: (host with a non-default port, path without a
trailing slash, query), scheme and fragment dropped, percent-escapes in one form."""

SITE_LINKS = 5  # links to the post's own host resolved through redirects, per source page
SHINGLE = 3  # words per shingle: the quoted text's words must stand in this order on the page
TEXT_SHARE = 0.5  # the share of the quoted text's shingles that must be on the page
MAX_QUOTED_WORDS = 600  # of a title or excerpt, only the first words are compared
MAX_CONTENT = 4000  # characters of a trackback comment read (what the state keeps)
SHOWN_URL = 200  # characters of a URL in a reason

VERIFIED, UNVERIFIED, RETRY, SKIPPED = "verified", "unverified", "retry", "skipped"


@dataclass(frozen=True)
class Finding:
    """The outcome of one check: ``verdict`` "verified" | "unverified" | "retry" (the source
    could not be read for now: the caller schedules another try and, once its retries are
    spent, records "unreachable") | "skipped" (not for wpnotify to judge: left for a
    person); ``code`` stable; ``reason`` one line for people.
    ``retry_after``: seconds the source asked to wait (Retry-After), for a "retry"."""

    verdict: str
    code: str
    reason: str
    link: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class SourcePage:
    """The source page as fetched: its final URL after redirects and its HTML, decoded and
    capped by the seam's ``max_body_bytes``."""

    url: str
    html: str
    truncated: bool = False  # cut at max_body_bytes: what follows was never read


class Ping(Protocol):
    """What ``check`` reads of a received ping (``sources.records.ReceivedPing`` and
    ``state.records.InboundPing`` both fit; this module imports neither)."""

    @property
    def kind(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def author_ip(self) -> str: ...
    @property
    def content(self) -> str: ...


# --- the post's URLs --------------------------------------------------------------------------

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_KEPT = "!#$%&'()*+,/:;=?@[]~"  # characters quote() leaves as they are (as the seam sends)


def address(url: str) -> Address | None:
    """``url`` as an Address, or None when it is no http(s) URL with a host."""
    scheme, host, path, query = comparable(url)
    if scheme not in ("http", "https") or not host:
        return None
    return host, _normal(path), _normal(query)


def _normal(part: str) -> str:
    """One spelling of a path or query: non-ASCII and spaces percent-encoded (UTF-8), as a
    browser sends them; escapes upper case; escaped unreserved characters decoded."""
    return _ESCAPE.sub(_escape, quote(part, safe=_KEPT))


def _escape(found: re.Match[str]) -> str:
    char = chr(int(found.group(1), 16))
    return char if char in _UNRESERVED else "%" + found.group(1).upper()


def post_addresses(permalink: str, home: str, post_id: int,
                   post_type: str) -> frozenset[Address]:
    """The post's URLs, comparable: the permalink (with or without a trailing slash, http
    and https alike, fragment dropped) and the shortlinks ``home/?p=ID`` and
    ``home/index.php?p=ID``, and for a page ``?page_id=ID`` too."""
    root = home.rstrip("/")
    keys = ["p"] + (["page_id"] if post_type == "page" else [])
    urls = [permalink] + [f"{root}/{script}?{key}={post_id}"
                          for key in keys for script in ("", "index.php")]
    return frozenset(found for url in urls if (found := address(url)) is not None)


# --- links on the source page -----------------------------------------------------------------

_A_AND_BASE = frozenset({"a", "base"})


def _hrefs(html: str, base: str) -> Iterator[str]:
    """Every ``<a href>`` of ``html``, resolved against the first ``<base href>`` seen so far
    (else ``base``, the page's final URL), in document order."""
    seen_base = False
    for name, attributes in start_tags(html, _A_AND_BASE):
        href = attributes.get("href", "").strip()
        if not href:
            continue
        if name == "base":
            if not seen_base:
                seen_base, base = True, _join(base, href)
            continue
        yield _join(base, href)


def links_to(html: str, base: str, addresses: frozenset[Address]) -> str | None:
    """The first ``<a href>`` of the page (resolved against ``base``, its final URL) that is
    one of the post's ``addresses``, or None. Comments, scripts and escaped text hold no
    links (``markup.start_tags``)."""
    for url in _hrefs(html, base):
        if address(url) in addresses:
            return url
    return None


# Paths on the site that never redirect to a post: no use spending a request on them.
_NOT_POSTS = ("/wp-content/", "/wp-includes/", "/wp-admin/", "/wp-json/", "/wp-login.php",
              "/feed", "/xmlrpc.php", "/wp-comments-post.php")


def site_links(html: str, base: str, home: str, limit: int = SITE_LINKS, *,
               addresses: frozenset[Address] = frozenset()) -> list[str]:
    """Up to ``limit`` distinct ``<a href>``s to the post's own host (``home``'s, http and
    https alike) that are none of ``addresses``: what may redirect to the post (an old
    slug, an http link to an https site). The home page itself and WordPress's own files
    and feeds are passed over. Called when ``links_to`` found nothing (so none is the post
    even without ``addresses``)."""
    own = address(home)
    if own is None or limit <= 0:
        return []
    skipped = {(own[0], own[1], ""), *addresses}
    found: list[str] = []
    for url in _hrefs(html, base):
        key = address(url)
        if (key is None or key[0] != own[0] or key in skipped
                or any(part in key[1] for part in _NOT_POSTS)):
            continue
        skipped.add(key)
        found.append(url)
        if len(found) >= limit:
            break
    return found


# --- a trackback's text ----------------------------------------------------------------------

# What a cut title or excerpt ends with, references decoded (WordPress appends "&#8230;";
# other senders "[...]"), longest first.
_ELLIPSES = ("[...]", "[…]", "...", "…")
_SPACES = re.compile(r"\s+")


def trackback_text(content: str) -> tuple[str, str]:
    """(title, excerpt) of a trackback comment as WordPress stores it,
    ``<strong>TITLE</strong>\\n\\nEXCERPT`` (wp-trackback.php; PROTOCOLS.md §1.5): tags
    stripped, character references decoded, spaces collapsed. WordPress cuts the title at
    250 characters and the excerpt at 252 and appends "…": the ellipsis is dropped and the
    word it cut with it. Content of another shape is all excerpt."""
    content = content[:MAX_CONTENT]
    end = content.find("</strong>") if content.startswith("<strong>") else -1
    if end < 0:
        return "", _plain(content)
    return _plain(content[len("<strong>"):end]), _plain(content[end + len("</strong>"):])


def _plain(fragment: str) -> str:
    """A title or excerpt as text: tags stripped, references decoded, spaces collapsed,
    without the ellipses a cut adds (and the word cut, unless the ellipsis is bracketed:
    "[…]" follows whole words)."""
    text = _SPACES.sub(" ", unescape(text_of(fragment))).strip()
    for opening in ("[...]", "[…]"):  # a pingback's "[…] context […]"
        if text.startswith(opening):
            text = text[len(opening):].lstrip()
    for ellipsis in _ELLIPSES:
        if text.endswith(ellipsis):
            text = text[:-len(ellipsis)].rstrip()
            return text if ellipsis.startswith("[") else text.rpartition(" ")[0].rstrip()
    return text


# A word: a run of letters and digits, except that each CJK character is a word of its own
# (those scripts put no spaces between words).
_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff"
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")


def _words(text: str) -> Iterator[str]:
    """The words of ``text``, compatibility-normalised and case-folded, lazily."""
    for found in _WORD.finditer(unicodedata.normalize("NFKC", text).casefold()):
        yield found.group()


def text_on_page(page_text: str, quoted: str) -> bool:
    """Whether ``quoted`` (a trackback's title or excerpt) plausibly comes from the page.

    Its words are taken ``SHINGLE`` at a time (3-word shingles: the words must stand in that
    order); at least ``TEXT_SHARE`` (half) of its distinct shingles must occur among the
    page's. Half, not all: the page may have been edited since, its theme may set quotes or
    dashes differently, and the sender may have cut or glued words (tags stripped without a
    space); a page that never held the text matches almost none. Text with no words is not
    checked (True); one or two words must stand together on the page. Only the quoted text's
    shingles are kept (the first ``MAX_QUOTED_WORDS`` words); the page is read once, word by
    word: linear time, memory bounded by the quoted text, not the page."""
    wanted: list[str] = []
    for word in _words(quoted):
        wanted.append(word)
        if len(wanted) >= MAX_QUOTED_WORDS:
            break
    if not wanted:
        return True
    size = min(SHINGLE, len(wanted))
    shingles = {tuple(wanted[i:i + size]) for i in range(len(wanted) - size + 1)}
    needed = max(1, math.ceil(len(shingles) * TEXT_SHARE))
    found: set[tuple[str, ...]] = set()
    window: deque[str] = deque(maxlen=size)
    for word in _words(page_text):
        window.append(word)
        if len(window) == size and (shingle := tuple(window)) in shingles:
            found.add(shingle)
            if len(found) >= needed:
                return True
    return False


_DESCRIPTIONS = frozenset({"description", "og:description", "og:title", "twitter:description",
                           "twitter:title"})
MAX_DESCRIPTIONS = 20  # <meta> descriptions of a page read


def page_text(html: str) -> str:
    """The text a trackback's title and excerpt are looked for in: the page's text
    (``markup.text_of``: its ``<title>`` included; a space for each tag, so that the words of
    two paragraphs never run together), with character references decoded, and its
    ``<meta>`` descriptions (a sender may send the post's manual
    excerpt, which a theme shows only there)."""
    descriptions = []
    for _name, attributes in start_tags(html, frozenset({"meta"})):
        kind = attributes.get("name") or attributes.get("property") or ""
        if kind.strip().lower() in _DESCRIPTIONS and attributes.get("content"):
            descriptions.append(attributes["content"])
            if len(descriptions) >= MAX_DESCRIPTIONS:
                break
    return "\n".join([unescape(text_of(html, " ")), *descriptions])


# --- the decision ------------------------------------------------------------------------------

def shown(url: str) -> str:
    """A URL as a reason names it: without user info, on one line, cut to a sane length."""
    return _one_line(redact(url), SHOWN_URL)


_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _one_line(text: str, limit: int = 300) -> str:
    text = _CONTROLS.sub(" ", text[:limit + 1])
    return text if len(text) <= limit else text[:limit - 1] + "…"


def host_allowed(source: str, allow: tuple[str, ...],
                 deny: tuple[str, ...]) -> Finding | None:
    """An "unverified" Finding when ``inbound_deny_hosts`` or ``inbound_allow_hosts`` rule
    the source's host out (``urls.host_rule``, the matcher of outbound allow/deny_hosts), so
    that it is never fetched; None when it may be."""
    found = host_rule(source, allow, deny)
    if found is None:
        return None
    rule, host = found
    if rule == "deny":
        return Finding(UNVERIFIED, "host-denied",
                       f"host {_one_line(host, 100)} matches inbound_deny_hosts")
    return Finding(UNVERIFIED, "host-not-allowed",
                   f"host {_one_line(host, 100)} is not in inbound_allow_hosts")


# The seam's codes under the names inbound verdicts use.
_ERROR_CODES = {"refused-address": "private-address", "bad-url": "bad-source",
                "bad-redirect": "bad-source"}


def finding_of_error(error: SendError) -> Finding:
    """What a failure to read the source means: a transient one (timeout, no connection,
    5xx, 408, 429, TLS) is "retry", never a verdict on one failure; a permanent one
    (source-gone, source-refused, not-html, private-address, too-many-redirects, bad-source,
    proxy-refused) is "unverified" with its code."""
    reason = _one_line(error.message)
    if not error.permanent:
        return Finding(RETRY, error.code, reason, retry_after=error.retry_after)
    if error.code == "refused-address":
        # The sender's page (or its redirect) points at an internal address: never a reason
        # to widen the guard, which the seam's own message suggests for a configured target.
        reason = reason.split(" (allow it with", 1)[0] + " (never contacted)"
    return Finding(UNVERIFIED, _ERROR_CODES.get(error.code, error.code), reason)


def judge(ping_kind: str, source: str, author_ip: str, content: str,
          addresses: frozenset[Address], page: SourcePage, *, verify_ip: bool,
          ip_addresses: Collection[str], site_links_resolved: Mapping[str, str | None]
          ) -> Finding:
    """The decision on a ping whose source page was read, checked in this order: a link to
    the post (on the page, or a link to the site's host that ``site_links_resolved`` says
    ends at the post), for a trackback its title and then its excerpt on the page, then
    (``verify_ip``) the sender's IP among ``ip_addresses``, the source host's. The first
    that fails is the verdict's reason."""
    link = links_to(page.html, page.url, addresses)
    if link is None:
        link = next((url for url, final in site_links_resolved.items()
                     if final is not None and address(final) in addresses), None)
    if link is None and page.truncated:  # the link may be in the part never read
        return Finding(SKIPPED, "too-long", f"{shown(page.url)} is longer than max_body_bytes "
                       "and has no link to the post in the part read; left for a person")
    if link is None:
        tried = f" (nor do the {len(site_links_resolved)} links to the site after " \
                "redirects)" if site_links_resolved else ""
        return Finding(UNVERIFIED, "no-link", f"{shown(page.url)} has no link to the "
                       f"post{tried}")
    if ping_kind == "trackback":
        problem = _text_problem(content, page)
        if problem is not None:
            return problem
    if verify_ip and not _ip_among(author_ip, ip_addresses):
        host = (urlsplit(source).hostname or "") if address(source) is not None else ""
        return Finding(UNVERIFIED, "ip-mismatch",
                       f"sent from {_one_line(author_ip, 60) or 'no recorded address'}, "
                       f"which is not an address of {_one_line(host, 100) or 'the source'}")
    return Finding(VERIFIED, "links", f"links to the post: {shown(link)}", link=link)


def _text_problem(content: str, page: SourcePage) -> Finding | None:
    """A trackback whose title or excerpt is not on the page; None when both are (or are
    empty)."""
    title, excerpt = trackback_text(content)
    if not (title or excerpt):
        return None
    text = page_text(page.html)
    if title and not text_on_page(text, title):
        return Finding(UNVERIFIED, "title-not-on-page",
                       f"the trackback's title is not on {shown(page.url)}")
    if excerpt and not text_on_page(text, excerpt):
        return Finding(UNVERIFIED, "excerpt-not-on-page",
                       f"the trackback's excerpt is not on {shown(page.url)}")
    return None


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address in one form: zone dropped, an IPv4-mapped IPv6 address as IPv4."""
    try:
        ip = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return mapped or ip


def _ip_among(author_ip: str, addresses: Collection[str]) -> bool:
    sender = _ip(author_ip)
    return sender is not None and any(_ip(known) == sender for known in addresses)


# --- the sending half --------------------------------------------------------------------------

def _wants_html(status: int, headers: Mapping[str, str]) -> bool:
    """The source's body is read when it is a page that answered 2xx; media never."""
    return 200 <= status < 300 and is_html(headers.get("Content-Type"))


def fetch_source(http: Http, source: str, *, trusted: bool = False) -> SourcePage:
    """GETs the source page, redirects followed (each hop guarded). Raises SendError:
    permanent for 404/410 (source-gone), another 4xx or non-2xx (source-refused), not HTML
    (not-html), and what the seam refuses (refused-address, too-many-redirects, bad-url,
    bad-redirect); transient for 5xx, 408, 429 (http-NNN, with Retry-After), timeouts and
    failed connections. ``trusted``: the source is on the watched site's own origin (a
    self-ping), which may be private (the seam trusts only that origin, first hop only)."""
    page = http.get(source, read_body=_wants_html, trusted=trusted)
    status, where = page.status, shown(page.url)
    if status in (404, 410):
        raise SendError(f"the source answered {status}: {where}", code="source-gone",
                        permanent=True)
    if status in (408, 429) or status >= 500:
        raise SendError(f"the source answered {status}: {where}", code=f"http-{status}",
                        permanent=False, retry_after=retry_after(page.header("Retry-After")))
    if not 200 <= status < 300:
        raise SendError(f"the source answered {status}: {where}", code="source-refused",
                        permanent=True)
    if not is_html(page.header("Content-Type")):
        raise SendError(f"the source is not an HTML page ({_one_line(page.media_type, 80)}): "
                        f"{where}", code="not-html", permanent=True)
    charset = page.charset or meta_charset(page.body)
    return SourcePage(page.url, decode_text(page.body, charset), page.truncated)


def resolve(http: Http, url: str, *, trusted: bool) -> str | None:
    """Where a link to the site's own host ends up after redirects (no body read): the final
    URL, or None when it ends in a 4xx or cannot be followed (refused, too many redirects).
    A transient failure (timeout, 5xx, 408, 429) raises SendError: the verdict must wait.
    ``trusted``: the link is on the watched site's own origin (see ``fetch_source``)."""
    try:
        page = http.get(url, read_body=lambda _status, _headers: False, trusted=trusted)
    except SendError as exc:
        if exc.permanent:
            return None
        raise
    if page.status in (408, 429) or page.status >= 500:
        raise SendError(f"the site answered {page.status}: {shown(page.url)}",
                        code=f"http-{page.status}", permanent=False,
                        retry_after=retry_after(page.header("Retry-After")))
    return page.url if page.status < 400 else None


def _same_origin(url: str, home: str) -> bool:
    return comparable(url)[:2] == comparable(home)[:2]


def _same_host(url: str, home: str) -> bool:
    """On the site's host, whatever the scheme or port (``www.`` is another host)."""
    host = (urlsplit(home).hostname or "").rstrip(".")
    try:
        return bool(host) and (urlsplit(url).hostname or "").rstrip(".") == host
    except ValueError:
        return False


META_CHARSET_BYTES = 4096  # where a page's <meta charset> must be (the HTML spec: 1024)


def meta_charset(body: bytes) -> str | None:
    """The charset a page declares in its head (``<meta charset>`` or the ``http-equiv``
    Content-Type form), read from its first bytes only; None when it declares none. A
    UTF-16 one is UTF-8, as the HTML spec's prescan says: a page whose <meta> reads in ASCII
    is not UTF-16 (read as UTF-16 it is noise with no link)."""
    head = body[:META_CHARSET_BYTES].decode("latin-1")
    for _tag, attrs in start_tags(head, frozenset({"meta"})):
        found: str | None = attrs.get("charset", "").strip()[:40] or None
        if found is None and attrs.get("http-equiv", "").strip().lower() == "content-type":
            match = re.search(r"charset\s*=\s*[\"']?([\w.:-]{1,40})", attrs.get("content", ""),
                              re.I | re.A)
            found = match.group(1) if match else None
        if found is not None:
            return "utf-8" if _is_utf16(found) else found
    return None


def _is_utf16(charset: str) -> bool:
    try:
        return codecs.lookup(charset).name.startswith("utf-16")
    except LookupError:
        return False


def check(http: Http, ping: Ping, addresses: frozenset[Address], home: str, *,
          allow: tuple[str, ...] = (), deny: tuple[str, ...] = (),
          verify_ip: bool = False) -> Finding:
    """The whole check of one ping: allow/deny, the source fetched, its links (those to the
    site's host resolved through redirects when no link is the post), the trackback's text,
    the sender's IP. Never raises for the source's sake: a failure to read it is a Finding
    ("retry" when trying again may help)."""
    refused = host_allowed(ping.source, allow, deny)
    if refused is not None:
        return refused
    if _same_host(ping.source, home):
        # The site's own pages quote whatever they are asked (a search for the sender's
        # words lists the post): they could verify any spam. A self-ping is for a person.
        return Finding(SKIPPED, "own-site", f"the source {shown(ping.source)} is a page of "
                       "this site (a self-ping, or one of its search or archive pages); left "
                       "for a person")
    try:
        page = fetch_source(http, ping.source)
        if _same_host(page.url, home):  # redirected into the site: the same as above
            return Finding(SKIPPED, "own-site", f"the source {shown(ping.source)} redirects "
                           f"to {shown(page.url)}, a page of this site; left for a person")
        resolved: dict[str, str | None] = {}
        if links_to(page.html, page.url, addresses) is None:
            resolved = _resolve_all(http, site_links(page.html, page.url, home,
                                                     addresses=addresses), home)
        ips = _source_addresses(http, ping.source, page.url) if verify_ip else frozenset()
    except SendError as exc:
        return finding_of_error(exc)
    return judge(ping.kind, ping.source, ping.author_ip, ping.content, addresses, page,
                 verify_ip=verify_ip, ip_addresses=ips, site_links_resolved=resolved)


def _resolve_all(http: Http, links: list[str], home: str) -> dict[str, str | None]:
    """Where each link ends up, all at once: a check takes at most two timeouts (the page,
    then its links), not one per link. A transient failure of one raises (see resolve)."""
    if not links:
        return {}
    with ThreadPoolExecutor(len(links), thread_name_prefix="wpnotify-resolve") as pool:
        finals = list(pool.map(lambda link: resolve(http, link,
                                                    trusted=_same_origin(link, home)), links))
    return dict(zip(links, finals, strict=True))


def _source_addresses(http: Http, source: str, final: str) -> frozenset[str]:
    """The addresses of the source's host and of the host it redirected to (a blog that
    moved sends from its new home). A name that does not resolve now is a transient
    failure (SendError "dns"): the page was just read from it."""
    hosts = {urlsplit(url).hostname or "" for url in (source, final)} - {""}
    found: set[str] = set()
    for host in sorted(hosts):
        try:
            found.update(http.addresses(host))
        except (OSError, UnicodeError) as exc:
            raise SendError(f"cannot resolve {_one_line(host, 100)}: {_one_line(str(exc), 100)}",
                            code="dns",
                            permanent=False) from None
    return frozenset(found)
