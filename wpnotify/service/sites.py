"""The sites in effect: those of the configuration file plus those kept in the state by
`wpnotify sites add`, less the disabled ones; and the `sites` commands' work on the state.

A stored site is built with the very checks of a [[sites]] table (``settings.site_settings``).
One that no longer validates here, or whose password file this machine cannot read, is left
out with a problem naming the site and the fix, never failing the others. A stored site named
like one of the file is left out too: the file wins (and `sites add` refuses such a name).

Light on purpose: `history` and `status` load this module (no logging, no network).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from wpnotify.errors import ConfigError, WpnotifyError
from wpnotify.settings import (
    InvalidSettings,
    Settings,
    SiteSettings,
    checked_site,
    describe,
    site_settings,
)
from wpnotify.state import SiteEntry, SiteRegistry

CONFIG = "config"
STATE = "state"


@dataclass(frozen=True)
class SiteRow:
    """One line of `sites list`: a site, where it comes from, and what is wrong with it."""

    name: str
    origin: str  # CONFIG or STATE
    url: str | None
    api: str | None
    enabled: bool
    problems: tuple[str, ...] = ()

    @property
    def in_effect(self) -> bool:
        return self.enabled and not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "from": self.origin, "url": self.url, "api": self.api,
                "enabled": self.enabled, "problems": list(self.problems)}


@dataclass(frozen=True)
class Sites:
    """What ``in_effect`` found: ``settings`` holds the sites in effect (the configuration
    file's other settings unchanged), ``rows`` every site known, by where it comes from."""

    settings: Settings
    rows: list[SiteRow] = field(default_factory=list)

    def row(self, name: str) -> SiteRow | None:
        return next((row for row in self.rows if row.name == name), None)

    def problems(self) -> list[tuple[str, str]]:
        """(site, problem) of every site known."""
        return [(row.name, problem) for row in self.rows for problem in row.problems]

    def require(self, name: str) -> SiteSettings:
        """The site in effect of that name; else a ConfigError saying why it is not."""
        row = self.row(name)
        if row is not None and not row.enabled:
            raise ConfigError(f"site {name!r} is disabled; enable it with: "
                              f"wpnotify sites enable {name}")
        if row is not None and row.problems and row.origin == STATE:
            raise ConfigError(f"site {name!r}: {row.problems[0]}")
        return self.settings.site(name)

    def known(self, name: str) -> None:
        """Accepts the name of any site known, enabled or not (for `history`, `retry`);
        ConfigError for a name that is none (a typo)."""
        if self.row(name) is None:
            self.settings.site(name)  # raises, naming the known sites


def in_effect(configured: Settings, entries: Sequence[SiteEntry]) -> Sites:
    """The sites in effect, from the configuration file's and the stored ones."""
    disabled = {entry.name for entry in entries if entry.disabled}
    stored = {entry.name: entry for entry in entries if entry.config is not None}
    rows: list[SiteRow] = []
    sites: list[SiteSettings] = []
    for site in configured.sites:
        clash = (f"a stored site has this name too and is ignored; remove it with: "
                 f"wpnotify sites remove {site.name}",) if site.name in stored else ()
        rows.append(SiteRow(site.name, CONFIG, site.url, site.api,
                            site.name not in disabled, clash))
        if site.name not in disabled:
            sites.append(site)
    for name, entry in stored.items():
        row, built = _stored(configured, name, entry.config or {}, not entry.disabled)
        rows.append(row)
        if built is not None and row.enabled:
            sites.append(built)
    return Sites(dataclasses.replace(configured, sites=tuple(sites)), rows)


def _stored(configured: Settings, name: str, config: Mapping[str, Any], enabled: bool
            ) -> tuple[SiteRow, SiteSettings | None]:
    url, api = config.get("url"), config.get("api", "rest")
    shown = (url if isinstance(url, str) else None, api if isinstance(api, str) else None)
    if any(site.name == name for site in configured.sites):
        return SiteRow(name, STATE, *shown, False, (
            "the configuration file has a site of this name, which wins; remove this one "
            f"with: wpnotify sites remove {name}",)), None
    if "password" in config:  # only a hand-edited row has one: `sites add` takes none
        return SiteRow(name, STATE, *shown, enabled, (
            "a password is stored in the state for it (never its own value is shown): the "
            "state keeps no secret; replace the site: wpnotify sites remove "
            f"{name}, then wpnotify sites add {name} ... --password-file FILE",)), None
    try:
        site = site_settings({**config, "name": name})
    except InvalidSettings as exc:
        return SiteRow(name, STATE, *shown, enabled, (
            f"left out on this machine: {describe(exc.within(name))}; fix that (a password "
            "file must be readable by the user wpnotify runs as), or replace the site: "
            f"wpnotify sites remove {name}, then wpnotify sites add {name} ...",)), None
    return SiteRow(name, STATE, site.url, site.api, enabled), site


# --- the `sites` commands' work ----------------------------------------------------------------

@dataclass(frozen=True)
class Added:
    """A site stored; ``warnings``: it is stored, but look at these."""

    name: str
    warnings: list[str]


def add(store: SiteRegistry, configured: Settings, raw: Mapping[str, Any],
        now: datetime) -> Added:
    """Stores a site given as plain values (the keys of a [[sites]] table), checked as the
    file's sites are. Never a password: only a password file's path (made absolute) or a
    systemd credential's name."""
    name = str(raw.get("name", ""))
    if "password" in raw:
        raise ConfigError("a stored site takes no password: give --password-file or "
                          "--password-credential (the state database must hold no secret)")
    if any(site.name == name for site in configured.sites):
        raise ConfigError(f"site {name!r} is in the configuration file already; choose "
                          "another name, or change it in that file")
    values = dict(raw)
    if isinstance(values.get("password_file"), str):
        values["password_file"] = os.path.abspath(os.path.expanduser(values["password_file"]))
    try:
        checked = checked_site(values)
    except ConfigError as exc:
        raise ConfigError(f"site {name or '(no name)'}: {exc}") from None
    config = {key: _plain(value) for key, value in checked.items() if key != "name"}
    if not store.store_site(name, config, now):
        raise WpnotifyError(f"a site named {name!r} is stored already; remove it first "
                            f"(wpnotify sites remove {name}) or choose another name")
    return Added(name, _warnings(checked))


def _plain(value: Any) -> Any:
    """A checked value as JSON holds it: paths as text, tuples as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def _warnings(checked: Mapping[str, Any]) -> list[str]:
    path = checked.get("password_file")
    if isinstance(path, Path) and not os.access(path, os.R_OK):
        return [f"password_file {path} cannot be read here: the worker that polls the site "
                "must be able to read it (the site is left out wherever it cannot)"]
    return []


def remove(store: SiteRegistry, configured: Settings, name: str) -> None:
    """Removes a stored site; its notifications and history stay."""
    if any(site.name == name for site in configured.sites):
        raise ConfigError(f"site {name!r} comes from the configuration file: remove its "
                          "[[sites]] table there (or disable it: wpnotify sites disable "
                          f"{name}); its history stays")
    if not store.remove_site(name):
        raise WpnotifyError(f"no stored site is named {name!r} (see: wpnotify sites list)")


def set_disabled(store: SiteRegistry, configured: Settings, name: str, disabled: bool,
                 now: datetime) -> None:
    """Disables (or enables again) any site, of the configuration file or stored."""
    known = any(site.name == name for site in configured.sites) or any(
        entry.name == name and entry.config is not None for entry in store.stored_sites())
    if not known:
        raise WpnotifyError(f"no site is named {name!r} (see: wpnotify sites list)")
    store.set_site_disabled(name, disabled, now)


@dataclass(frozen=True)
class Change:
    """What ``Service.refresh_sites`` found: sites that came, went or changed (by name), and
    the problems of the sites left out."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    problems: list[tuple[str, str]]
