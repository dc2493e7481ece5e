"""Pure discovery: the links a post makes, which of them to notify, and the pingback endpoint a
page advertises. No I/O here; everything takes strings and returns strings.

HTML is read with a real parser (the standard library's tokenizer), never with string search:
entities are decoded, attributes may come in any order and quoting, and comments, ``<script>``
bodies and escaped text (``&lt;a href=…&gt;``) are never taken for elements.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit


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
