"""What ``status`` and ``check`` report: plain data, rendered by the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wpnotify.errors import SourceError, StateError
from wpnotify.http import Http
from wpnotify.settings import Settings
from wpnotify.store import Store
from wpnotify.wordpress import make_source

BRIDGE_FIX = ("copy wordpress/wpnotify-bridge.php into the site's wp-content/mu-plugins/ "
              "(see README \"The bridge\")")


def status(settings: Settings, store: Store) -> list[dict[str, Any]]:
    """Per site: its last polls, cursor, bridge, notifications by status, next retry due."""
    report = []
    for site in settings.sites:
        state = store.site(site.name)
        report.append({
            "site": site.name,
            "url": site.url,
            "last_poll_at": state.last_poll_at if state else None,
            "last_ok_at": state.last_ok_at if state else None,
            "last_error": state.last_error if state else None,
            "cursor": state.cursor if state else None,
            "bridge": state.bridge if state else None,
            "notifications": store.counts(site.name),
            "next_retry_at": store.next_retry(site.name),
        })
    return report


@dataclass
class CheckResult:
    """One line per finding: ``problems`` make the check fail, ``notes`` do not."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(settings: Settings, http: Http) -> CheckResult:
    """Validates what can be validated without sending anything."""
    result = CheckResult()
    try:
        store = Store.open(settings.state_file)
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
