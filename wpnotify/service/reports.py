"""What ``status`` and ``check`` find: plain data (``SiteStatus``, ``CheckReport``) that the
renderers turn into text. ``status`` reads the state only; ``check`` reads the configuration,
the state file and each site, and sends nothing."""

from __future__ import annotations

import ipaddress
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from wpnotify.errors import SourceError, StateError
from wpnotify.settings import Settings, SiteSettings
from wpnotify.state import (
    Action,
    Fleet,
    History,
    InboundLog,
    SiteLog,
    State,
    Verdict,
    WorkerState,
)
from wpnotify.times import iso, wp_text

if TYPE_CHECKING:
    from wpnotify.sources import Source

BRIDGE_FIX = ("copy wordpress/wpnotify-bridge.php and the folder wordpress/wpnotify-bridge/ "
              "into the site's wp-content/mu-plugins/ (see README \"The bridge\")")
STATUS_BRIDGE = (1, 2)  # the first bridge that keeps statuses and takes Send again


class Reported(SiteLog, History, Fleet, InboundLog, Protocol):
    """What `status` reads of the state."""


@dataclass(frozen=True)
class SiteStatus:
    """One site's standing: its last polls, cursor, bridge, notifications by status and the
    next retry due."""

    site: str
    url: str
    last_poll_at: datetime | None
    last_ok_at: datetime | None
    last_error: str | None
    cursor: datetime | None
    bridge: bool | None
    notifications: dict[str, int]
    next_retry_at: datetime | None
    polled_by: str | None = None  # the worker that holds its poll, when one does
    # The pings it received (issue 16): its inbound setting, pings by verdict and by what
    # wpnotify did with them ({} for a site that never had inbound on).
    inbound: str = "off"
    verdicts: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """For `status --format json` and the table: times as the state file writes them
        (the cursor as WordPress does)."""
        return {
            "site": self.site, "url": self.url,
            "last_poll_at": _text(self.last_poll_at, iso),
            "last_ok_at": _text(self.last_ok_at, iso),
            "last_error": self.last_error,
            "cursor": _text(self.cursor, wp_text),
            "bridge": self.bridge,
            "notifications": self.notifications,
            "next_retry_at": _text(self.next_retry_at, iso),
            "polled_by": self.polled_by,
            "inbound": {"mode": self.inbound, "verdicts": self.verdicts,
                        "actions": self.actions},
        }


@dataclass(frozen=True)
class WorkerStatus:
    """A worker sharing the state: alive when seen within a lease (``worker_lease``)."""

    worker: WorkerState
    alive: bool

    def as_dict(self) -> dict[str, Any]:
        w = self.worker
        return {"worker": w.id, "daemon": w.daemon, "alive": self.alive,
                "started_at": iso(w.started_at),
                "seen_at": iso(w.seen_at), "sites": list(w.sites), "sending": w.sending}


def workers(settings: Settings, store: Reported, now: datetime) -> list[WorkerStatus]:
    """The workers recorded in the state, the most recently seen first."""
    lease = timedelta(seconds=settings.worker_lease)
    return [WorkerStatus(w, w.seen_at > now - lease) for w in store.workers(now)]


def status(settings: Settings, store: Reported, now: datetime) -> list[SiteStatus]:
    """Per configured site, from the state alone."""
    holders = {site: w.worker.id for w in workers(settings, store, now) if w.alive
               for site in w.worker.sites}
    report = []
    for site in settings.sites:
        state = store.site(site.name)
        verdicts, actions = _inbound_counts(store.inbound_counts(site.name))
        report.append(SiteStatus(
            site=site.name, url=site.url,
            last_poll_at=state.last_poll_at if state else None,
            last_ok_at=state.last_ok_at if state else None,
            last_error=state.last_error if state else None,
            cursor=state.cursor if state else None,
            bridge=state.bridge if state else None,
            notifications={s.value: n for s, n in store.counts(site.name).items()},
            next_retry_at=store.next_retry(site.name),
            polled_by=holders.get(site.name), inbound=site.inbound, verdicts=verdicts,
            actions=actions))
    return report


def _inbound_counts(counts: Mapping[tuple[Verdict, Action], int]
                    ) -> tuple[dict[str, int], dict[str, int]]:
    """Pings by verdict and by action, each in its enum's order, zeros left out."""
    verdicts = {v.value: sum(n for (vv, _), n in counts.items() if vv is v) for v in Verdict}
    actions = {a.value: sum(n for (_, aa), n in counts.items() if aa is a) for a in Action}
    return ({k: n for k, n in verdicts.items() if n}, {k: n for k, n in actions.items() if n})


def _text(moment: datetime | None, form: Callable[[datetime], str]) -> str | None:
    return None if moment is None else form(moment)


@dataclass
class CheckReport:
    """One line per finding: ``problems`` make the check fail; ``warnings`` (it works, but
    is unsafe) and ``notes`` do not."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(settings: Settings, open_state: Callable[[], State],
          sources: Mapping[str, Source]) -> CheckReport:
    """Validates what can be validated without sending anything: the state file can be
    written, and each site answers, accepts its credentials and runs the bridge."""
    result = CheckReport(warnings=config_warnings(settings))
    try:
        store = open_state()
        try:
            store.check_writable()
        finally:
            store.close()
        result.notes.append(f"{settings.state_shown}: writable")
    except StateError as exc:
        result.problems.append(str(exc))
    if settings.http.proxy:
        result.notes.append(f"requests go through the proxy {settings.http.proxy}, which must "
                            "itself refuse CONNECT to private, loopback and link-local "
                            "addresses (README: Sending through an egress proxy)")
    for site in settings.sites:
        _check_site(site, sources[site.name], result)
    return result


def _check_site(site: SiteSettings, source: Source, result: CheckReport) -> None:
    try:
        info, bridge = source.check()
    except SourceError as exc:
        result.problems.append(f"site {site.name}: {exc}")
        return
    result.notes.append(f"site {site.name}: {info.name!r} at {info.home}, credentials of "
                        f"{site.username!r} accepted")
    if site.inbound != "off":
        _check_moderation(site, source, result)
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
        if site.api == "rest":  # over XML-RPC the editors show no statuses anyway
            result.warnings.extend(_editor_warnings(site.name, bridge))


def _check_moderation(site: SiteSettings, source: Source, result: CheckReport) -> None:
    """Inbound reads held comments and changes their status: the user needs
    moderate_comments (settings make sure the source is a REST one)."""
    try:
        source.can_moderate()  # type: ignore[attr-defined]  # RestSource: inbound needs api=rest
    except SourceError as exc:
        result.problems.append(f"site {site.name}: {exc}")
        return
    result.notes.append(f"site {site.name}: {site.username!r} may moderate comments "
                        f"(inbound = {site.inbound!r})")


def _editor_warnings(name: str, bridge: dict[str, Any]) -> list[str]:
    """What keeps the editors from showing statuses and Send again, while sending works: a
    bridge older than 1.2, or a 1.2 without its folder of editor scripts."""
    version = bridge.get("bridge")
    found = tuple(int(part) for part in version.split(".")[:2] if part.isdigit()) \
        if isinstance(version, str) else ()
    if len(found) == 2 and found < STATUS_BRIDGE:
        return [f"site {name}: bridge {version} is older than 1.2, so the editors show no "
                f"notification statuses and no Send again (wpnotify keeps sending; posts it "
                f"notifies meanwhile show theirs from their next change); update: {BRIDGE_FIX}"]
    if bridge.get("editor_assets") is False:
        return [f"site {name}: the bridge's folder wpnotify-bridge/ is missing beside "
                "wpnotify-bridge.php, so the editors show no Links and trackbacks panel; "
                "copy wordpress/wpnotify-bridge/ into wp-content/mu-plugins/ too"]
    return []


def config_warnings(settings: Settings) -> list[str]:
    """What the configuration alone shows to be unsafe, found before anything is contacted:
    an Application Password (or the proxy's password) that other local users can read, or one
    that would cross the
    network in clear text (Basic auth over http:// to a host that is not this machine)."""
    warnings = []
    for site in settings.sites:
        if site.password_file is not None:
            warnings.extend(_file_warning(site.name, site.password_file))
        if not _safe_transport(site):
            warnings.append(f"site {site.name}: {site.url} is plain http:// to another host, so "
                            "the Application Password would cross the network in clear text; "
                            "use https://")
    if settings.http.proxy_password_file is not None:
        warnings.extend(line.replace("site [http]: password_file", "[http] proxy_password_file")
                        for line in _file_warning("[http]", settings.http.proxy_password_file))
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
