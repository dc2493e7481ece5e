"""What ``status`` and ``check`` report: plain data, rendered by the CLI."""

from __future__ import annotations

import ipaddress
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from wpnotify.errors import SourceError, StateError
from wpnotify.http import Http
from wpnotify.settings import Settings, SiteSettings
from wpnotify.state import History, SiteLog, open_state
from wpnotify.times import iso, wp_text
from wpnotify.wordpress import make_source

BRIDGE_FIX = ("copy wordpress/wpnotify-bridge.php into the site's wp-content/mu-plugins/ "
              "(see README \"The bridge\")")


class Reported(SiteLog, History, Protocol):
    """What `status` reads of the state."""


def status(settings: Settings, store: Reported) -> list[dict[str, Any]]:
    """Per site: its last polls, cursor, bridge, notifications by status, next retry due;
    times as the state file writes them (the cursor as WordPress does)."""
    report = []
    for site in settings.sites:
        state = store.site(site.name)
        retry = store.next_retry(site.name)
        report.append({
            "site": site.name,
            "url": site.url,
            "last_poll_at": _text(state.last_poll_at, iso) if state else None,
            "last_ok_at": _text(state.last_ok_at, iso) if state else None,
            "last_error": state.last_error if state else None,
            "cursor": _text(state.cursor, wp_text) if state else None,
            "bridge": state.bridge if state else None,
            "notifications": {s.value: n for s, n in store.counts(site.name).items()},
            "next_retry_at": _text(retry, iso),
        })
    return report


def _text(moment: datetime | None, form: Callable[[datetime], str]) -> str | None:
    return None if moment is None else form(moment)


@dataclass
class CheckResult:
    """One line per finding: ``problems`` make the check fail; ``warnings`` (it works, but
    is unsafe) and ``notes`` do not."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(settings: Settings, http: Http) -> CheckResult:
    """Validates what can be validated without sending anything."""
    result = CheckResult(warnings=config_warnings(settings))
    try:
        store = open_state(settings.state_file)
        try:
            store.check_writable()
        finally:
            store.close()
        result.notes.append(f"state file {settings.state_file}: writable")
    except StateError as exc:
        result.problems.append(str(exc))
    for site in settings.sites:
        source = make_source(http, site)
        try:
            info, bridge = source.check()
        except SourceError as exc:
            result.problems.append(f"site {site.name}: {exc}")
            continue
        result.notes.append(f"site {site.name}: {info.name!r} at {info.home}, credentials of "
                            f"{site.username!r} accepted")
        if bridge is None:
            result.problems.append(f"site {site.name}: the wpnotify bridge is not installed, so "
                                   f"queued trackbacks are not sent; {BRIDGE_FIX}")
        elif bridge.get("core_pingbacks") or bridge.get("core_trackbacks"):
            result.problems.append(f"site {site.name}: WordPress still sends its own pings "
                                   "despite the bridge (a plugin re-adds them?); remove that "
                                   "plugin or hook")
        else:
            result.notes.append(f"site {site.name}: bridge {bridge.get('bridge')} installed, "
                                "WordPress's own sending is off")
    return result


def config_warnings(settings: Settings) -> list[str]:
    """What the configuration alone shows to be unsafe, found before anything is contacted:
    an Application Password that other local users can read, or one that would cross the
    network in clear text (Basic auth over http:// to a host that is not this machine)."""
    warnings = []
    for site in settings.sites:
        if site.password_file is not None:
            warnings.extend(_file_warning(site.name, site.password_file))
        if not _safe_transport(site):
            warnings.append(f"site {site.name}: {site.url} is plain http:// to another host, so "
                            "the Application Password would cross the network in clear text; "
                            "use https://")
    return warnings


def _file_warning(name: str, path: Path) -> list[str]:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:  # it was read at load time; gone since, the site check will say so
        return []
    if not mode & 0o077:
        return []
    return [f"site {name}: password_file {path} is open to other users (mode {mode:04o}); "
            f"chmod 600 {path}"]


def _safe_transport(site: SiteSettings) -> bool:
    """https://, or http:// to this machine by a loopback name or address. Any other name
    counts as remote: what it resolves to can change, and resolving it here would be a
    lookup the check should not need."""
    parts = urlsplit(site.url)
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme == "https" or host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)
