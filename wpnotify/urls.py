"""URLs in messages: ``redact`` strips a URL's user name and password wherever a URL is
named (a message, a log event, a table). The bottom of the import graph: settings and the
HTTP seam both use it."""

from __future__ import annotations

import re

# Tab, CR and LF, which URL parsers (urlsplit, browsers) delete wherever they stand.
_DELETED = str.maketrans("", "", "\t\r\n")
# The user info of a URL: what lies between "//" and the last "@" before the path (also in a
# URL inside a query string); a backslash counts as a slash, as browsers read http(s) URLs.
# The slashes are looked behind, not matched: each match is then replaced by nothing, which
# re.sub does without expanding a template, 3.5x faster on a page of "@//@//…".
_USERINFO = re.compile(r"(?<=[/\\]{2})[^/\\?#]*@")
# The same after an http(s), ws(s) or ftp scheme with any number of slashes, none included,
# as browsers read "https:u:pw@host" and "https:/u:pw@host". Anchored: one attempt, linear.
_SPECIAL_USERINFO = re.compile(r"^([\x00-\x20]*(?:https?|wss?|ftp):[/\\]*)[^/\\?#]*@", re.I)


def redact(url: str) -> str:
    """``url`` without its user name and password, for every message, log and record that
    names a URL (``http://admin:secret@host/`` becomes ``http://host/``); works on URLs that
    do not parse too, and in whatever form a parser would still read user info: tab, CR
    and LF deleted, backslashes for slashes, no slashes at all after an http(s) scheme."""
    url = _SPECIAL_USERINFO.sub(r"\1", url.translate(_DELETED), count=1)
    return _USERINFO.sub("", url)


# A database URL's parts: scheme, user info (up to the last "@" of the authority), the rest.
_DSN = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)(?:([^/?#]*)@)?([^?#]*)(\?[^#]*)?")
_SECRET_PARAMS = frozenset({"password", "sslpassword"})


def shown_dsn(url: str) -> str:
    """A database URL as messages, logs and `check` show it: the user name kept, the
    password left out, wherever it stands (``postgresql://u:pw@host/db?password=pw`` becomes
    ``postgresql://u@host/db``); other parameters (``passfile=``, ``sslmode=``) are kept."""
    found = _DSN.match(url.translate(_DELETED))
    if found is None:
        return redact(url)
    scheme, userinfo, rest, query = found.groups()
    user = (userinfo or "").partition(":")[0]
    kept = [pair for pair in (query or "").lstrip("?").split("&")
            if pair and pair.partition("=")[0].lower() not in _SECRET_PARAMS]
    return (scheme + (user + "@" if user else "") + rest
            + ("?" + "&".join(kept) if kept else ""))
