"""URLs in messages: ``redact`` strips a URL's user name and password wherever a URL is
named (a message, a log event, a table). The bottom of the import graph: settings and the
HTTP seam both use it."""

from __future__ import annotations

import re
from fnmatch import fnmatchcase
from urllib.parse import unquote, urlsplit

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
    # libpq decodes a parameter's name too: "pass%77ord=" is a password.
    kept = [pair for pair in (query or "").lstrip("?").split("&")
            if pair and unquote(pair.partition("=")[0]).lower() not in _SECRET_PARAMS]
    return (scheme + (user + "@" if user else "") + rest
            + ("?" + "&".join(kept) if kept else ""))


def dsn_secrets(url: str) -> list[str]:
    """The passwords a database URL holds (in its user info, in ``password=``), as written
    and percent-decoded, longest first: what ``scrub_dsn`` takes out of a message."""
    url = url.translate(_DELETED)
    found = _DSN.match(url)
    if found is None:
        return [url]  # not even a URL's shape: every bit of it may be the password
    _, userinfo, _, query = found.groups()
    written = [(userinfo or "").partition(":")[2]]
    for pair in (query or "").lstrip("?").split("&"):
        key, _, value = pair.partition("=")
        if unquote(key).lower() in _SECRET_PARAMS:
            written.append(value)
    both = {form for text in written if text for form in (text, unquote(text)) if form}
    return sorted(both, key=len, reverse=True)


def scrub_dsn(text: str, url: str) -> str:
    """``text`` (a driver's message, which may quote the URL or a part of it, such as libpq's
    'invalid percent-encoded token: "<the password>"') without the URL and its passwords: a
    quoted part holding one becomes "…", and so does the password wherever else it stands
    (unless it is shorter than 4 characters, which would garble the message)."""
    text = text.replace(url, shown_dsn(url))
    secrets = dsn_secrets(url)
    text = _QUOTED.sub(lambda found: '"…"' if any(s in found[1] for s in secrets)
                       else found[0], text)
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "…")
    return text


_QUOTED = re.compile(r'"([^"]*)"')


def host_rule(url: str, allow: tuple[str, ...], deny: tuple[str, ...]) -> tuple[str, str] | None:
    """Which host pattern rule shuts ``url`` out: ("deny", host) when its host matches a
    pattern of ``deny``, ("allow", host) when ``allow`` is not empty and no pattern of it
    matches; None when it may go. Patterns are shell-style (``*.example.org``), matched
    case-insensitively against the host name. One matcher for every list of host patterns
    (outbound ``allow_hosts``/``deny_hosts``, inbound ``inbound_allow_hosts``/...), so that
    they cannot drift apart. A malformed URL has no host to match: None."""
    try:
        host = (urlsplit(url).hostname or "").lower().rstrip(".")  # "a.example." is a.example
    except ValueError:
        return None
    if any(fnmatchcase(host, pattern.lower()) for pattern in deny):
        return "deny", host
    if allow and not any(fnmatchcase(host, pattern.lower()) for pattern in allow):
        return "allow", host
    return None
