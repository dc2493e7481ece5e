"""The one time type: an aware ``datetime`` in UTC. Records, the state and the service hold
only that; text exists only at the edges, in the two forms below, each with its reader.

- WordPress's ``*_gmt`` form, ``2026-11-26T12:39:34``: whole seconds, no zone (UTC by name).
  Sources read and send it; the state file keeps cursors in it, as WordPress wrote them.
- The state file's own form, ``2026-11-26T12:39:34.123456Z``: UTC, microseconds, sorting as
  text, so SQL can compare it.
"""

from __future__ import annotations

from datetime import UTC, datetime


def wp_time(text: str) -> datetime:
    """A WordPress ``*_gmt`` value (or any ISO 8601 text without a zone, read as UTC)."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def wp_text(moment: datetime) -> str:
    """``moment`` as WordPress writes a ``*_gmt`` value: to the second, UTC, no zone."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso(moment: datetime) -> str:
    """``moment`` in the state file's form: UTC, microseconds, 'Z'. Sorts as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    """The state file's form (or any ISO 8601 text with a zone) as an aware UTC datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def http_date(header: str | None) -> datetime | None:
    """An HTTP ``Date`` header; None when missing, unreadable or without a zone."""
    if not header:
        return None
    # Imported here: email.utils brings socket and more, which a command that only reads
    # the state (history, status) never needs; the sources call this for every answer.
    from email.utils import parsedate_to_datetime

    try:  # moving to UTC can overflow too: a year 9999 -2359, say
        moment = parsedate_to_datetime(header)
        return moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def whole_second(moment: datetime) -> datetime:
    """``moment`` cut to its second: WordPress keeps times to the second and compares them
    so, and a bound sent to it (``wp_text``) is cut the same way."""
    return moment.replace(microsecond=0)
