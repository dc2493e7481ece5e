"""Workers sharing the state, in SQL both backends run as written: the workers' rows, their
heartbeats, the sites' poll leases and the leases on what each sends (what is in flight
under a live lease is read with the hosts, by ``StateSql.claim_view``).

A backend mixes this in over its unit of work, which gives ``_rows`` (rows readable by
position), ``_write`` and ``atomic``, whose ``exclusive`` units wait for, then hold until
commit, the one lock every ``claiming`` unit takes. Placeholders are ``?``; times are
the state's sortable text (``times.iso``), so SQL compares them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from wpnotify.state.records import WorkerState
from wpnotify.times import iso, parse_iso


class FleetSql:
    """The ``Fleet`` part of the state (see ``protocols.Fleet``)."""

    if TYPE_CHECKING:  # given by the backend's unit of work (see the module's docstring)
        def _rows(self, sql: str, params: Any = ()) -> list[Any]: ...

        def _write(self, sql: str, params: Any = ()) -> int: ...

        def atomic(self, *, exclusive: bool = False) -> AbstractContextManager[None]: ...

    @contextmanager
    def claiming(self) -> Iterator[None]:
        with self.atomic(exclusive=True):
            yield

    def join(self, worker: str, now: datetime, *, daemon: bool = False) -> None:
        self._write("INSERT INTO workers (id, started_at, seen_at, daemon) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                    (worker, iso(now), iso(now), int(daemon)))

    def renew(self, worker: str, now: datetime, until: datetime, *,
              daemon: bool = False) -> list[str]:
        with self.atomic():
            self.join(worker, now, daemon=daemon)
            self._write("UPDATE notifications SET lease_until = ? WHERE status = 'sending' "
                        "AND claimed_by = ?", (iso(until), worker))
            self._write("UPDATE sites SET lease_until = ? WHERE lease_holder = ?",
                        (iso(until), worker))
            rows = self._rows("SELECT name FROM sites WHERE lease_holder = ? ORDER BY name",
                              (worker,))
        return [row[0] for row in rows]

    def leave(self, worker: str) -> None:
        with self.atomic():
            self._write("UPDATE sites SET lease_holder = NULL, lease_until = NULL "
                        "WHERE lease_holder = ?", (worker,))
            self._write("DELETE FROM workers WHERE id = ?", (worker,))

    def take_site(self, site: str, worker: str, now: datetime, until: datetime) -> bool:
        with self.atomic():
            self._write("INSERT INTO sites (name) VALUES (?) ON CONFLICT (name) DO NOTHING",
                        (site,))
            return self._write(
                "UPDATE sites SET lease_holder = ?, lease_until = ? WHERE name = ? AND "
                "(lease_holder IS NULL OR lease_holder = ? OR lease_until IS NULL OR "
                "lease_until <= ?)", (worker, iso(until), site, worker, iso(now))) == 1

    def release_site(self, site: str, worker: str) -> None:
        self._write("UPDATE sites SET lease_holder = NULL, lease_until = NULL "
                    "WHERE name = ? AND lease_holder = ?", (site, worker))

    def workers(self, now: datetime) -> list[WorkerState]:
        # Three reads, no unit of work: `status` reads a state it may not write. A worker
        # that changes in between shows as it was at one of them.
        rows = self._rows("SELECT id, started_at, seen_at, daemon FROM workers "
                          "ORDER BY seen_at DESC, id")
        held: dict[str, list[str]] = {}
        for holder, name in self._rows(
                "SELECT lease_holder, name FROM sites WHERE lease_holder IS NOT NULL AND "
                "lease_until > ? ORDER BY name", (iso(now),)):
            held.setdefault(holder, []).append(name)
        sending = Counter({row[0]: row[1] for row in self._rows(
            "SELECT claimed_by, COUNT(*) FROM notifications WHERE status = 'sending' "
            "AND claimed_by IS NOT NULL GROUP BY claimed_by")})
        return [WorkerState(row[0], parse_iso(row[1]), parse_iso(row[2]),
                            tuple(held.get(row[0], ())), int(sending[row[0]]), bool(row[3]))
                for row in rows]

    def server_time(self) -> datetime | None:
        """One machine's state (a file): its clock is this machine's. A database server's
        backend reads the server's."""
        return None

    def forget_workers(self, seen_before: datetime) -> int:
        with self.atomic():
            gone = [row[0] for row in self._rows("SELECT id FROM workers WHERE seen_at < ?",
                                                 (iso(seen_before),))]
            for worker in gone:
                self.leave(worker)
        return len(gone)
