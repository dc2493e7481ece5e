"""Discovery: the links a post makes, which of them to notify, and the endpoints a page
advertises. All pure (strings in, strings out) except ``fetch_page``, the one GET of a target
that every protocol's discovery shares.

HTML is read with a real parser (the standard library's tokenizer), never with string search:
entities are decoded, attributes may come in any order and quoting, and comments, ``<script>``
bodies and escaped text (``&lt;a href=…&gt;``) are never taken for elements.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from html import unescape as html_unescape
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit

from wpnotify.errors import SendError
from wpnotify.http import Http, Response, retry_after

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


class _Collector(HTMLParser):
    """Collects (tag, attrs) for the start tags we ask for, in document order."""

    def __init__(self, tags: frozenset[str], first_only: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.tags = tags
        self.found: list[tuple[str, dict[str, str]]] = []
        self.first_only = first_only

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.tags:
            values: dict[str, str] = {}
            for name, value in attrs:
                values.setdefault(name, value if value is not None else "")
            self.found.append((tag, values))

    handle_startendtag = handle_starttag


def _elements(html: str, tags: frozenset[str]) -> list[tuple[str, dict[str, str]]]:
    parser = _Collector(tags)
    parser.feed(html)
    parser.close()
    return parser.found


def _is_http(url: str) -> bool:
    return urlsplit(url).scheme in ("http", "https")


def extract_links(html: str, base: str) -> list[str]:
    """The ``<a href>`` targets of a post's HTML, absolute, in order, without duplicates.

    Relative hrefs are resolved against ``base`` (the permalink); absolute ones are kept as the
    post writes them (receivers search the source for that exact string), fragment included.
    """
    links: list[str] = []
    for _tag, attrs in _elements(html, frozenset({"a"})):
        href = attrs.get("href", "").strip()
        if not href:
            continue
        url = urljoin(base, href)
        if _is_http(url) and url not in links:
            links.append(url)
    return links


def comparable(url: str) -> tuple[str, str, str, str]:
    """A URL reduced for "is this the same page?": scheme, host, port-less netloc, path with
    and without a trailing slash treated alike, the query kept, the fragment dropped."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    port = parts.port
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


def rel_tokens(value: str) -> set[str]:
    """A rel attribute as its set of lower-cased, space-separated link types."""
    return {token.lower() for token in value.split()}


def pingback_endpoint(header: str | None, html: str, base: str) -> str | None:
    """The pingback server a page advertises, or None.

    The ``X-Pingback`` header wins; otherwise the first ``<link>`` whose rel list contains
    ``pingback`` and that has an href. PROTOCOLS.md §2.1 (Policy): a parser, entities decoded,
    relative hrefs resolved against the final URL (the spec asks for absolute URLs; be lenient).
    """
    if header and header.strip():
        url = urljoin(base, header.strip())
        return url if _is_http(url) else None
    for _tag, attrs in _elements(html, frozenset({"link"})):
        if "pingback" in rel_tokens(attrs.get("rel", "")) and attrs.get("href", "").strip():
            url = urljoin(base, attrs["href"].strip())
            if _is_http(url):
                return _without_fragment(url)
    return None


def _without_fragment(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(fragment=""))


def webmention_endpoint(link_headers: list[str], html: str | None, base: str) -> str | None:
    """The Webmention endpoint a page advertises (PROTOCOLS.md §3.1), or None.

    HTTP ``Link`` headers first (all of them, each with any number of links; ``rel`` quoted
    or bare, a token list, matched exactly and case-insensitively), then the first ``<link>``
    or ``<a>`` in document order whose rel list holds ``webmention`` and which has an
    ``href`` (``href=""`` is the page itself). Relative URLs resolve against ``base``, the
    final URL after redirects; the query is kept, the fragment dropped. ``html`` is None when
    the page is not HTML.
    """
    for value in link_headers:
        for target, rels in _header_links(value):
            if "webmention" in rels:
                return _endpoint(base, target)
    if html is None or not may_mention(html, "webmention"):
        return None
    for _tag, attrs in _elements(html, frozenset({"link", "a"})):
        if "href" in attrs and "webmention" in rel_tokens(attrs.get("rel", "")):
            return _endpoint(base, attrs["href"].strip())
    return None


def may_mention(html: str, word: str) -> bool:
    """False only when no attribute of ``html`` can hold ``word`` (a lower-case ASCII word):
    it is nowhere in the text, in any case, and no numeric character reference could spell
    it (HTML has no named references for ASCII letters). Spares the parser most pages."""
    return word in html.lower() or "&#" in html


def _endpoint(base: str, href: str) -> str | None:
    url = _without_fragment(urljoin(base, href))
    return url if _is_http(url) else None


_LINK = re.compile(r"""\s*<([^>]*)>((?:\s*;\s*[^;,"]+(?:=(?:"[^"]*"|[^;,]*))?)*)\s*(?:,|$)""")
_PARAM = re.compile(r""";\s*([^\s=;,]+)\s*(?:=\s*("([^"]*)"|[^;,\s]*))?""")


def _header_links(value: str) -> list[tuple[str, set[str]]]:
    """(target, rel tokens) for each link in one Link header value (RFC 8288 §3)."""
    links = []
    for match in _LINK.finditer(value):
        rels: set[str] = set()
        for param in _PARAM.finditer(match.group(2)):
            if param.group(1).lower() == "rel":
                raw = param.group(3) if param.group(3) is not None else (param.group(2) or "")
                rels |= rel_tokens(raw)
        links.append((match.group(1).strip(), rels))
    return links


_RDF = re.compile(r"<rdf:RDF\b.*?</rdf:RDF>", re.S | re.I)
_DESCRIPTION = re.compile(r"<rdf:Description\b([^>]*)>", re.S | re.I)
_ATTRIBUTE = re.compile(r"""([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def trackback_ping_url(html: str, base: str, target: str) -> str | None:
    """The TrackBack ping URL a page embeds as RDF (TrackBack 1.2 auto-discovery), or None.

    The blocks usually sit inside HTML comments, so this reads the raw text, not the parsed
    document. Of several blocks (an archive page), the one whose ``dc:identifier`` is the
    target wins; a lone block is taken as is. ``trackback:ping`` is the URL; before 1.1 it was
    ``rdf:about``, used only when ``trackback:ping`` is missing.
    """
    candidates: list[tuple[str, str]] = []
    for block in _RDF.findall(html):
        for match in _DESCRIPTION.finditer(block):
            attrs = {m.group(1).lower(): html_unescape(m.group(2) if m.group(2) is not None
                                                       else m.group(3))
                     for m in _ATTRIBUTE.finditer(match.group(1))}
            ping = attrs.get("trackback:ping") or ""
            if ping:
                candidates.append((attrs.get("dc:identifier", ""), ping))
    wanted = {comparable(target), comparable(base)}
    for identifier, ping in candidates:
        if identifier and comparable(urljoin(base, identifier)) in wanted:
            return _endpoint(base, ping)
    if len(candidates) == 1:
        return _endpoint(base, candidates[0][1])
    return None
