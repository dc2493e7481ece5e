"""The state's rows as records, for either backend (a row is read by column name). A value a
caller could not use (a damaged or hand-edited state) is a StateError naming the row and the
command that repairs it, never a traceback later or a guess."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from wpnotify.errors import StateError
from wpnotify.state.records import HostState, Notification, SiteState, Status
from wpnotify.times import parse_iso, wp_time


class Place(Protocol):
    """Where the rows are, for a message: ``label`` names the state ("state file PATH"),
    ``kept`` what a backup restores ("file"), ``repair(sql)`` the shell command that runs
    ``sql`` on it."""

    label: str
    kept: str

    def repair(self, sql: str) -> str: ...


def sql_text(value: str) -> str:
    """``value`` as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def shell_sql(command: str, sql: str) -> str:
    """``command`` (a client and its target, quoted) followed by ``sql`` as one argument: the
    shell command that repairs the state by hand, for an error message to name."""
    quoted = f'"{sql}"' if not set(sql) & set('"$`\\!') else shlex.quote(sql)
    return f"{command} {quoted}"


_TIMES = ("created_at", "updated_at", "sent_at", "next_attempt_at", "lease_until")


def notification(row: Any, place: Place) -> Notification:
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
        raise unreadable_notification(place, int(data["id"]), exc) from None
    return Notification(**data)


def unreadable_notification(place: Place, number: int, why: object) -> StateError:
    fix = place.repair(f"DELETE FROM notifications WHERE id = {number:d}")
    return StateError(
        f"{place.label}: notification {number} cannot be read ({why}); restore the "
        f"{place.kept} from a backup, or delete that row with: {fix} (a backfill of its post "
        "plans it again)")


def site_state(row: Any, place: Place) -> SiteState:
    """A ``sites`` row as a SiteState: a poll must not guess where it stands."""
    times: dict[str, datetime | None] = {}
    for column in ("cursor", "deletions_seen"):
        try:
            times[column] = _time(row[column], wp_time)
        except (ValueError, TypeError):
            raise _bad_site(place, row, column, row[column]) from None
    try:
        baseline = frozenset((int(i), wp_time(_text(m)))
                             for i, m in json.loads(row["baseline"] or "[]"))
    except (ValueError, TypeError):
        raise _bad_site(place, row, "baseline", row["baseline"]) from None
    bridge = None if row["bridge"] is None else bool(row["bridge"])
    return SiteState(row["name"], times["cursor"], baseline, times["deletions_seen"],
                     _loose_time(row["last_poll_at"]), _loose_time(row["last_ok_at"]),
                     row["last_error"], bridge)


def _bad_site(place: Place, row: Any, column: str, value: object) -> StateError:
    """Names the site, the column and how to start the site afresh (and send what it
    missed meanwhile, from its last good poll)."""
    name, last_ok = row["name"], _loose_time(row["last_ok_at"])
    since = f"--since {last_ok:%Y-%m-%d}" if last_ok else "--since DATE"
    reset = place.repair("UPDATE sites SET cursor = NULL, baseline = NULL, "
                           f"deletions_seen = NULL WHERE name = {sql_text(name)}")
    return StateError(
        f"{place.label}: site {name}'s {column} cannot be read "
        f"({str(value)[:40]!r}); start that site afresh with: {reset} (its next poll "
        f"watches from then on; send what it missed with: wpnotify backfill --site {name} "
        f"{since})")


def host_state(row: Any, place: Place) -> HostState:
    """A ``hosts`` row as a HostState; a hold that cannot be read names its repair."""
    try:
        not_before = _time(row["not_before"], parse_iso)
    except (ValueError, TypeError):
        fix = place.repair("UPDATE hosts SET not_before = NULL WHERE host = "
                             + sql_text(row["host"]))
        raise StateError(f"{place.label}: the hold on {row['host']} cannot be read "
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
