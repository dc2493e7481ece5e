"""Room at a host, handed over between workers on PostgreSQL: LISTEN and NOTIFY.

A worker whose claim finds the hosts of what it has ready full of other workers' requests
waits; a worker that records its last request to a host, leaving room there, tells the others
(``room_freed``) with its unit's commit. Three things make that exact:

- Every claiming unit LISTENs (again: it costs nothing) before its read of the hosts, so a
  rolled-back unit or a new connection never leaves a worker deaf; a wait that finds the
  connection changed since the claim's read (another thread opened a new one) ends at once,
  to claim, and listen, again.
- A word says which transaction freed the room and at which hosts. The claim's read takes
  the database's snapshot with it (``_seen_sql``), under the claiming lock that the telling
  units take too: a word from a transaction that snapshot already sees is stale (the read
  found that room), any other is news. A waiter wakes only for a host it waits at.
- The wait holds no lock: it watches the connection's socket (``poll``) in short slices,
  and takes the state's lock only to read what arrived, so the heartbeat and the metrics,
  on the same connection, go on; it ends as soon as ``stopping`` says so.

What arrives while nobody waits stays in psycopg's backlog until the next look or claim,
which reads it all: it holds no more than the words of the time between two of those (a pass,
at most a minute), and none once a run ends (``want_room(False)``, UNLISTEN).
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import psycopg

ROOM = "wpnotify_room"  # the channel (PostgreSQL's channels are per database)
SLICE = 0.05  # seconds: the longest a waiter goes without looking at what arrived, or a stop
ANY_HOST = "*"  # a word for every host (its list would not fit in a NOTIFY's payload)
PAYLOAD = 7000  # bytes: PostgreSQL takes up to 8000 in a NOTIFY's payload


class Snapshot:
    """A snapshot as ``pg_current_snapshot()::text`` gives it (``xmin:xmax:xip,...``): which
    transactions it sees (PostgreSQL's ``pg_visible_in_snapshot``)."""

    def __init__(self, text: str) -> None:
        xmin, xmax, xip = text.split(":")
        self.xmin, self.xmax = int(xmin), int(xmax)
        self.xip = frozenset(int(x) for x in xip.split(",") if x)

    def sees(self, xid: int) -> bool:
        return xid < self.xmin or (xid < self.xmax and xid not in self.xip)


class PgRoom:
    """The ``want_room`` part of ``Fleet`` for PostgresState (see the module's docstring)."""

    tells_room = True
    _wanted = False  # LISTENing, from the commit of the last unit that asked
    _snapshot: Snapshot | None = None  # the last claim's read saw what this saw
    _read_on: Any = None  # …on this connection
    _seen_sql: str | None = "SELECT pg_current_snapshot()::text"  # with ``claim_view``

    if TYPE_CHECKING:  # given by PgConnection
        conn: psycopg.Connection[Any]
        _lock: threading.RLock
        _closed: bool
        _depth: int

        def _defer(self, sql: str, params: Any = None, many: bool = False) -> None: ...

    def want_room(self, wanted: bool) -> None:
        """LISTEN (or UNLISTEN) with the unit's next statement (in effect at its commit):
        every claim asks again, so one whose unit rolled back, or a new connection, is not
        left out. What arrived before is dropped here (the claim's read comes after)."""
        self._in_a_unit("want_room")
        self._told(None)
        self._defer(f"LISTEN {ROOM}" if wanted else f"UNLISTEN {ROOM}")
        self._wanted = wanted

    def room_freed(self, hosts: Collection[str] = ()) -> None:
        """NOTIFY with the unit's COMMIT: this transaction's ID and the hosts (none given:
        any host), so a waiter tells news from what its claim already saw."""
        self._in_a_unit("room_freed")
        listed = "\n".join(sorted(hosts)) or ANY_HOST
        if len(listed.encode()) > PAYLOAD:
            listed = ANY_HOST
        self._defer("SELECT pg_notify(%s, pg_current_xact_id()::text || chr(10) || %s)",
                    (ROOM, listed))

    def _in_a_unit(self, what: str) -> None:
        """Deferred to a unit's commit, as the protocol says: outside one it would be lost,
        or go with another thread's statement (a caller's mistake, said at once)."""
        with self._lock:
            if not self._depth:
                raise RuntimeError(f"{what} outside a unit of work (see State.want_room)")

    def _seen(self, found: list[Any]) -> None:
        """The claim's read's snapshot (its last query's one row)."""
        self._snapshot = Snapshot(str(found[0][0])) if found else None
        self._read_on = self.conn

    def wait_for_room(self, seconds: float, hosts: Collection[str] | None = None,
                      stopping: Callable[[], bool] = lambda: False) -> bool:
        """Waits up to ``seconds`` for news of room at one of ``hosts`` (None: any), looking
        at what arrived every SLICE at most, and at once when the socket has something;
        False when the time passes, ``stopping`` says so, or this worker does not listen
        (then it sleeps, in slices). Never raises: a lost connection is the next unit's to
        find (and open again)."""
        deadline = time.monotonic() + seconds
        wanted = None if hosts is None else set(hosts)
        while True:
            told, socket = self._told(wanted)
            if told:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stopping():
                return False
            pause = min(remaining, SLICE)
            if socket is None:
                time.sleep(pause)
                continue
            try:
                watch = select.poll()
                watch.register(socket, select.POLLIN)
                watch.poll(pause * 1000)
            except (OSError, ValueError):  # the connection closed meanwhile
                time.sleep(pause)

    def _told(self, hosts: set[str] | None) -> tuple[bool, int | None]:
        """Reads what arrived (all of it: none is kept), under the state's lock: whether any
        is news of room at ``hosts``, and the socket to watch (None: none to watch)."""
        with self._lock:
            conn = self.conn
            if self._closed or conn.closed or conn.broken:
                return False, None
            try:
                words = list(conn.notifies(timeout=0))
                own, socket = conn.info.backend_pid, conn.fileno()
            except psycopg.Error:
                return False, None  # lost: the next unit finds it, and opens another
            snapshot, listening = self._snapshot, self._wanted
            moved = self._read_on is not None and conn is not self._read_on
        if not listening:
            return False, None
        if moved:  # a new connection since the claim's read: it does not listen yet
            return True, None
        return any(word.pid != own and _news(word.payload, snapshot, hosts)
                   for word in words), socket


def _news(payload: str, snapshot: Snapshot | None, hosts: set[str] | None) -> bool:
    """A word of room freed that the last claim's read did not see, at a host waited at."""
    xid, _, listed = payload.partition("\n")
    try:
        if snapshot is not None and snapshot.sees(int(xid)):
            return False
    except ValueError:
        return False  # not one of ours: someone else NOTIFYing on the channel
    return hosts is None or listed == ANY_HOST or not hosts.isdisjoint(listed.split("\n"))
