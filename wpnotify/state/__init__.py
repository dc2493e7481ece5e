"""The state: what wpnotify remembers between runs (sites' cursors, the notifications and
their history, hosts' pacing, WordPress's pinged lists and statuses still to be told,
the Send again requests taken, the pings sites received and their verdicts).

Callers use the records and the protocols here, and get a state from ``open_state``; a
backend's connection, SQL and errors stay inside it (only ``sqlite*.py`` know SQLite, only
``postgres*.py`` know PostgreSQL; ``sql_*.py`` hold the SQL both run as written).
"""

from __future__ import annotations

from pathlib import Path

from wpnotify.state.protocols import (
    Fleet,
    History,
    HostPacing,
    InboundLog,
    PingedOutbox,
    Queue,
    Resends,
    SiteLog,
    SiteRegistry,
    State,
    StatusMark,
    StatusOutbox,
    UnitOfWork,
)
from wpnotify.state.records import (
    Action,
    Finished,
    HostState,
    InboundPing,
    Notification,
    Queued,
    SiteEntry,
    SiteState,
    Status,
    Verdict,
    WorkerState,
)

__all__ = ["Action", "Finished", "Fleet", "History", "HostPacing", "HostState", "InboundLog",
           "InboundPing", "Notification", "PingedOutbox", "Queue", "Queued", "Resends",
           "SiteEntry", "SiteLog", "SiteRegistry", "SiteState", "State", "Status", "StatusMark",
           "StatusOutbox", "UnitOfWork", "Verdict", "WorkerState", "open_state"]


def open_state(location: Path | str) -> State:
    """Opens (or creates) the state at ``location`` (``Settings.state_location``), brought to
    the latest schema: a Path is the SQLite file, read-only when this user may not write it
    (`status` and `history` still work); a ``postgresql://`` URL is the PostgreSQL database.
    The one place a backend is chosen; each is imported only when asked for (psycopg costs
    SQLite's users nothing)."""
    if isinstance(location, str):
        from wpnotify.state.postgres import PostgresState

        return PostgresState.open(location)
    from wpnotify.state.sqlite import SqliteState

    return SqliteState.open(location)
