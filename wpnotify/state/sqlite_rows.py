"""The state file's rows as records. A value a caller could not use (a damaged or hand-edited
file) is a StateError naming the row and the command that repairs it, never a traceback later
or a guess."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from wpnotify.errors import StateError
from wpnotify.state.records import HostState, Notification, SiteState, Status
from wpnotify.state.sqlite_files import repair_command, sql_text
from wpnotify.times import parse_iso, wp_time

_TIMES = ("created_at", "updated_at", "sent_at", "next_attempt_at", "lease_until")


def notification(row: sqlite3.Row, path: Path) -> Notification:
    """A ``notifications`` row as a Notification."""
    data = dict(row)
    try:
        data["payload"] = json.loads(data["payload"] or "{}")
        if not isinstance(data["payload"], dict):
            raise ValueError("not an object")
        data["status"] = Status(data["status"])
        for column in _TIMES:
            data[column] = _time(data[column], parse_iso)
    except (ValueError, TypeError) as exc:
        raise unreadable_notification(path, int(data["id"]), exc) from None
    return Notification(**data)


def unreadable_notification(path: Path, number: int, why: object) -> StateError:
    fix = repair_command(path, f"DELETE FROM notifications WHERE id = {number:d}")
    return StateError(
        f"state file {path}: notification {number} cannot be read ({why}); restore the "
        f"file from a backup, or delete that row with: {fix} (a backfill of its post "
        "plans it again)")


def site_state(row: sqlite3.Row, path: Path) -> SiteState:
    """A ``sites`` row as a SiteState: a poll must not guess where it stands."""
    times: dict[str, datetime | None] = {}
    for column in ("cursor", "deletions_seen"):
        try:
            times[column] = _time(row[column], wp_time)
        except (ValueError, TypeError):
            raise _bad_site(path, row, column, row[column]) from None
    try:
        baseline = frozenset((int(i), wp_time(_text(m)))
                             for i, m in json.loads(row["baseline"] or "[]"))
    except (ValueError, TypeError):
        raise _bad_site(path, row, "baseline", row["baseline"]) from None
    bridge = None if row["bridge"] is None else bool(row["bridge"])
    return SiteState(row["name"], times["cursor"], baseline, times["deletions_seen"],
                     _loose_time(row["last_poll_at"]), _loose_time(row["last_ok_at"]),
                     row["last_error"], bridge)


def _bad_site(path: Path, row: sqlite3.Row, column: str, value: object) -> StateError:
    """Names the site, the column and how to start the site afresh (and send what it
    missed meanwhile, from its last good poll)."""
    name, last_ok = row["name"], _loose_time(row["last_ok_at"])
    since = f"--since {last_ok:%Y-%m-%d}" if last_ok else "--since DATE"
    reset = repair_command(path, "UPDATE sites SET cursor = NULL, baseline = NULL, "
                           f"deletions_seen = NULL WHERE name = {sql_text(name)}")
    return StateError(
        f"state file {path}: site {name}'s {column} cannot be read "
        f"({str(value)[:40]!r}); start that site afresh with: {reset} (its next poll "
        f"watches from then on; send what it missed with: wpnotify backfill --site {name} "
        f"{since})")


def host_state(row: sqlite3.Row, path: Path) -> HostState:
    """A ``hosts`` row as a HostState; a hold that cannot be read names its repair."""
    try:
        not_before = _time(row["not_before"], parse_iso)
    except (ValueError, TypeError):
        fix = repair_command(path, "UPDATE hosts SET not_before = NULL WHERE host = "
                             + sql_text(row["host"]))
        raise StateError(f"state file {path}: the hold on {row['host']} cannot be read "
                         f"({str(row['not_before'])[:40]!r}); remove it with: {fix}") from None
    return HostState(bool(row["wordpress"]), not_before)


def _text(value: object) -> str:
    """A value that must be text (SQLite keeps whatever type was written)."""
    if not isinstance(value, str):
        raise TypeError(f"not text: {value!r}")
    return value


def _time(value: object, parse: Callable[[str], datetime]) -> datetime | None:
    """A time column read with ``parse``; None stays None."""
    return None if value is None else parse(_text(value))


def _loose_time(value: object) -> datetime | None:
    """A time only shown to the user (last polls): unreadable reads as none, as before."""
    try:
        return _time(value, parse_iso)
    except (ValueError, TypeError):
        return None
