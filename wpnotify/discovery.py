"""Discovery: the links a post makes, which of them to notify, and the endpoints a page
advertises. All pure (strings in, strings out) except ``fetch_page``, the one GET of a target
that every protocol's discovery shares.

HTML is read with a real tokenizer (``markup``, linear in the page's length whatever it holds),
never with string search: entities are decoded, attributes may come in any order and quoting,
and comments, ``<script>`` bodies and escaped text (``&lt;a href=…&gt;``) are never taken for
elements. Headers and TrackBack RDF are read by scanning forward too, never by a pattern that
can backtrack, and a page's Link headers are read up to a cap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urljoin, urlsplit, urlunsplit

from wpnotify.errors import SendError
from wpnotify.http import Http, Response, retry_after, url_problem
from wpnotify.markup import ascii_lower, start_tags

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", ""})


def is_html(content_type: str | None) -> bool:
    """HTML, or no type at all (many small servers send none)."""
    return (content_type or "").split(";", 1)[0].strip().lower() in HTML_TYPES


def fetch_page(http: Http, target: str,
               read_body: Callable[[int, Mapping[str, str]], bool]) -> Response:
    """GETs a link target for discovery (redirects followed, each hop guarded). A target
    that is gone is a permanent skip; a failing one a transient error. Media and other
    non-HTML bodies are never downloaded."""
    page = http.get(target, read_body=read_body)
    if page.status in (404, 410):
        raise SendError(f"the target answered {page.status}", code="target-gone",
                        permanent=True, skip=True)
    if page.status in (408, 429) or page.status >= 500:
        raise SendError(f"the target answered {page.status} during discovery",
                        code=f"http-{page.status}", permanent=False,
                        retry_after=retry_after(page.header("Retry-After")))
    return page


def _is_http(url: str) -> bool:
    return _scheme(url) in ("http", "https")


_SCHEME = re.compile(r"[\x00-\x20]*([A-Za-z][A-Za-z0-9+.\-]*):")


def _scheme(url: str) -> str:
    """The URL's scheme, lower case ("" for none), read without parsing the rest (which may
    not parse)."""
    found = _SCHEME.match(url)
    return found.group(1).lower() if found is not None else ""


def _join(base: str, href: str) -> str:
    """``href`` resolved against ``base``; as written when it does not parse (a malformed
    link is kept, so that the plan records it as skipped instead of losing the post)."""
    try:
        return urljoin(base, href)
    except ValueError:  # "http://[your link here]"
        return href


def extract_links(html: str, base: str) -> list[str]:
    """The ``<a href>`` targets of a post's HTML, absolute, in order, without duplicates.

    Relative hrefs are resolved against ``base`` (the permalink); absolute ones are kept as the
    post writes them (receivers search the source for that exact string), fragment included.
    A malformed http(s) link is kept as written; it never raises.
    """
    links: list[str] = []
    seen: set[str] = set()
    for _tag, attrs in start_tags(html, frozenset({"a"})):
        href = attrs.get("href", "").strip()
        if not href:
            continue
        url = _join(base, href)
        if url not in seen and (_is_http(url) or url.startswith("//")):
            seen.add(url)
            links.append(url)
    return links


def comparable(url: str) -> tuple[str, str, str, str]:
    """A URL reduced for "is this the same page?": scheme, host, port-less netloc, path with
    and without a trailing slash treated alike, the query kept, the fragment dropped. A URL
    that does not parse is only the same as itself."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "", url, "", ""
    host = (parts.hostname or "").lower()
    if port is not None and (parts.scheme, port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    return parts.scheme.lower(), host, parts.path.rstrip("/") or "/", parts.query


def same_host(a: str, b: str) -> bool:
    return comparable(a)[1] == comparable(b)[1]


def select_targets(links: list[str], *, permalink: str, home: str,
                   self_pings: bool) -> list[str]:
    """Decides, link by link, which links of a post get a pingback.

    Dropped: the post itself and the site's home page (never worth a ping), a second link to
    the same page (by URL without fragment), and links to the same site unless ``self_pings``
    (internal links are navigation, not citations; WordPress core pings them, PROTOCOLS §5).
    """
    own = {comparable(permalink), comparable(home)}
    seen: set[tuple[str, str, str, str]] = set()
    chosen: list[str] = []
    for url in links:
        key = comparable(url)
        if key in own or key in seen:
            continue
        seen.add(key)
        if not self_pings and same_host(url, home):
            continue
        chosen.append(url)
    return chosen


_ASCII_WHITESPACE = re.compile(r"[\t\n\f\r ]+")


def rel_tokens(value: str) -> set[str]:
    """A rel attribute as its set of link types: split on ASCII whitespace only and
    ASCII-lower-cased, as the HTML Standard reads it (``str.split`` also splits on a
    no-break space or U+0085, and ``str.lower`` makes the Kelvin sign a "k")."""
    return {ascii_lower(token) for token in _ASCII_WHITESPACE.split(value) if token}


def pingback_endpoint(header: str | None, html: str, base: str) -> str | None:
    """The pingback server a page advertises, or None.

    The ``X-Pingback`` header wins; otherwise the first ``<link>`` whose rel list contains
    ``pingback`` and that has an href. PROTOCOLS.md §2.1 (Policy): a parser, entities decoded,
    relative hrefs resolved against the final URL (the spec asks for absolute URLs; be lenient).
    """
    if header and header.strip():
        return _endpoint(base, header.strip(), keep_fragment=True)
    for _tag, attrs in start_tags(html, frozenset({"link"})):
        if "pingback" in rel_tokens(attrs.get("rel", "")) and attrs.get("href", "").strip():
            url = _endpoint(base, attrs["href"].strip())
            if url is not None:
                return url
    return None


def webmention_endpoint(link_headers: list[str], html: str | None, base: str) -> str | None:
    """The Webmention endpoint a page advertises (PROTOCOLS.md §3.1), or None.

    HTTP ``Link`` headers first (all of them, each with any number of links; ``rel`` quoted
    or bare, a token list, matched exactly and case-insensitively), then the first ``<link>``
    or ``<a>`` in document order whose rel list holds ``webmention`` and which has an
    ``href`` (``href=""`` is the page itself). Relative URLs resolve against ``base``, the
    final URL after redirects; the query is kept, the fragment dropped. ``html`` is None when
    the page is not HTML.
    """
    for target, rels in _link_values(link_headers):
        if "webmention" in rels:
            return _endpoint(base, target)
    if html is None or not may_mention(html, "webmention"):
        return None
    for _tag, attrs in start_tags(html, frozenset({"link", "a"})):
        if "href" in attrs and "webmention" in rel_tokens(attrs.get("rel", "")):
            return _endpoint(base, attrs["href"].strip())
    return None


def may_mention(html: str, word: str) -> bool:
    """False only when no attribute of ``html`` can hold ``word`` (a lower-case ASCII word):
    it is nowhere in the text, in any case, and no character reference could spell part of
    it: a numeric one could spell any letter; of the named ones only ``&fjlig;`` spells
    ASCII letters ("fj"). Spares the parser most pages."""
    lowered = html.lower()
    return word in lowered or "&#" in html or ("fj" in word and "&fjlig;" in html)


def _endpoint(base: str, href: str, keep_fragment: bool = False) -> str | None:
    """An advertised endpoint, absolute and without its fragment; None unless it is an
    http(s) URL the seam could request (a malformed one is no endpoint)."""
    try:
        parts = urlsplit(urljoin(base, href))
    except ValueError:
        return None
    url = urlunsplit(parts if keep_fragment else parts._replace(fragment=""))
    return url if _is_http(url) and url_problem(url) is None else None


# A page's Link headers are read up to these caps: a real page sends a few short ones, and a
# hostile one may send 100 headers of 64 KiB each (what http.client lets through).
MAX_LINK_TEXT = 16 * 1024  # characters of Link header values read, in all
MAX_LINKS = 200  # links read, in all
# "; name" or "; name=value", the value a quoted string (with \-escapes) or a token.
_LINK_PARAM = re.compile(r"""[\t ]*;[\t ]*([^\t =;,<"]*)[\t ]*
                             (?:=[\t ]*(?:"((?:[^"\\]|\\.)*)"?|([^;,]*)))?""", re.X)
_QUOTED_PAIR = re.compile(r"\\(.)")


def _link_values(values: list[str]) -> Iterator[tuple[str, set[str]]]:
    """(target, rel tokens) for each link of the Link header values, in order, up to the
    caps (RFC 8288 §3)."""
    budget, count = MAX_LINK_TEXT, 0
    for value in values:
        if budget <= 0:
            return
        for link in _header_links(value[:budget]):
            count += 1
            if count > MAX_LINKS:
                return
            yield link
        budget -= len(value)


def _header_links(value: str) -> Iterator[tuple[str, set[str]]]:
    """(target, rel tokens) for each link in one Link header value, read in one pass:
    ``<target>`` then ``; name=value`` parameters (a value a token or a quoted string) up to
    the comma before the next link. What is malformed is passed over up to that comma. Only
    the first ``rel`` counts (RFC 8288 §3.3: later ones are ignored)."""
    pos = 0
    while (opened := value.find("<", pos)) >= 0:
        closed = value.find(">", opened + 1)
        if closed < 0:
            return
        target, rels, pos = value[opened + 1:closed].strip(), None, closed + 1
        while (param := _LINK_PARAM.match(value, pos)) is not None:
            pos = param.end()
            name, quoted, token = param.groups()
            if rels is None and ascii_lower(name) == "rel":
                raw = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else token or ""
                rels = rel_tokens(raw)
        yield target, rels or set()
        comma = value.find(",", pos)
        if comma < 0:
            return
        pos = comma + 1


_RDF_START = re.compile(r"<rdf:RDF\b", re.I | re.A)
_RDF_END = re.compile(r"</rdf:RDF>", re.I | re.A)
_DESCRIPTION = frozenset({"rdf:description"})


def _rdf_blocks(html: str) -> Iterator[str]:
    """Each ``<rdf:RDF …>…</rdf:RDF>`` block of the raw text, comments included, in one
    forward pass: a start with no end after it means no more blocks."""
    pos = 0
    while (start := _RDF_START.search(html, pos)) is not None:
        end = _RDF_END.search(html, start.end())
        if end is None:
            return
        yield html[start.start():end.end()]
        pos = end.end()


def trackback_ping_url(html: str, base: str, target: str) -> str | None:
    """The TrackBack ping URL a page embeds as RDF (TrackBack 1.2 auto-discovery), or None.

    The blocks usually sit inside HTML comments, so this reads the raw text, not the parsed
    document. Of several blocks (an archive page), the one whose ``dc:identifier`` is the
    target wins; a lone block is taken as is. ``trackback:ping`` is the URL; before 1.1 it was
    ``rdf:about``, used only when ``trackback:ping`` is missing.
    """
    candidates: list[tuple[str, str]] = []
    for block in _rdf_blocks(html):
        for _tag, attrs in start_tags(block, _DESCRIPTION):
            ping = attrs.get("trackback:ping", "").strip()
            if ping:
                candidates.append((attrs.get("dc:identifier", "").strip(), ping))
    wanted = {comparable(target), comparable(base)}
    for identifier, ping in candidates:
        if identifier and comparable(_join(base, identifier)) in wanted:
            return _endpoint(base, ping)
    if len(candidates) == 1:
        return _endpoint(base, candidates[0][1])
    return None
