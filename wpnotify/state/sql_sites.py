"""Sites kept in the state (`wpnotify sites`), in SQL both backends run as written (see
``sql_fleet`` for what the backend gives).

A row's ``config`` is the JSON of a site's settings (never a password: the path of a password
file or the name of a systemd credential); NULL marks a row that only holds the disabled flag
of a site from the configuration file. ``disabled`` is 0 or 1 (an integer in every backend).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from wpnotify.errors import StateError
from wpnotify.state.records import SiteEntry
from wpnotify.times import iso, parse_iso


class SitesSql:
    """The ``SiteRegistry`` part of the state (see ``protocols.SiteRegistry``)."""

    if TYPE_CHECKING:  # given by the backend's unit of work
        def _rows(self, sql: str, params: Any = ()) -> list[Any]: ...

        def _write(self, sql: str, params: Any = ()) -> int: ...

        def atomic(self) -> AbstractContextManager[None]: ...

    def stored_sites(self) -> list[SiteEntry]:
        rows = self._rows("SELECT name, config, disabled, added_at, updated_at "
                          "FROM site_settings ORDER BY name")
        return [_entry(row) for row in rows]

    def store_site(self, name: str, config: dict[str, Any], now: datetime) -> bool:
        # A row holding only the flag of a configuration file's site (config NULL) is taken
        # over: that site has left the file, and a fresh `sites add` starts enabled.
        return self._write(
            "INSERT INTO site_settings (name, config, disabled, added_at, updated_at) "
            "VALUES (?, ?, 0, ?, ?) ON CONFLICT (name) DO UPDATE SET config = excluded.config, "
            "disabled = 0, added_at = excluded.added_at, updated_at = excluded.updated_at "
            "WHERE site_settings.config IS NULL",
            (name, json.dumps(config, sort_keys=True), iso(now), iso(now))) == 1

    def remove_site(self, name: str) -> bool:
        return self._write("DELETE FROM site_settings WHERE name = ? AND config IS NOT NULL",
                           (name,)) == 1

    def set_site_disabled(self, name: str, disabled: bool, now: datetime) -> None:
        with self.atomic():
            self._write(
                "INSERT INTO site_settings (name, config, disabled, added_at, updated_at) "
                "VALUES (?, NULL, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "disabled = excluded.disabled, updated_at = excluded.updated_at",
                (name, int(disabled), iso(now), iso(now)))
            # An enabled site of the configuration file needs no row at all.
            self._write("DELETE FROM site_settings WHERE name = ? AND config IS NULL AND "
                        "disabled = 0", (name,))


def _entry(row: Any) -> SiteEntry:
    """A ``site_settings`` row (by position) as a SiteEntry; a row that cannot be read is a
    StateError naming the site and the commands that replace it."""
    name = row[0]
    try:
        config = None if row[1] is None else json.loads(_text(row[1]))
        if config is not None and not isinstance(config, dict):
            raise ValueError("its settings are not a JSON object")
        return SiteEntry(name, config, bool(int(row[2])), parse_iso(_text(row[3])),
                         parse_iso(_text(row[4])))
    except (ValueError, TypeError) as exc:
        raise StateError(
            f"the state's stored site {name!r} cannot be read ({str(exc)[:60]}); remove it "
            f"with: wpnotify sites remove {name} (its history stays), then add it again "
            "with: wpnotify sites add") from None


def _text(value: object) -> str:
    """A value that must be text (SQLite keeps whatever type was written)."""
    if not isinstance(value, str):
        raise TypeError(f"not text: {type(value).__name__}")
    return value
