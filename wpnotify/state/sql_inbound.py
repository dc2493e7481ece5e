"""The pings sites received (``protocols.InboundLog``), in SQL both backends run as written,
over the backend's unit of work (``sql_unit``). Rows are read by position, in the order of
``InboundPing``'s fields (``COLUMNS``); times are the state's sortable text (``times.iso``).

What a sender chose (the source URL, the author, the content) is capped when stored, so a
hostile ping costs the state a bounded row whatever it carried."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from wpnotify.errors import StateError
from wpnotify.state.records import Action, InboundPing, Verdict
from wpnotify.state.rows import sql_text
from wpnotify.times import iso, parse_iso

COLUMNS = tuple(field.name for field in fields(InboundPing))
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM inbound"
_TIMES = frozenset({"received_at", "seen_at", "next_attempt_at", "decided_at", "acted_at"})
# Characters kept of each text column (the spec's three, then what WordPress or wpnotify
# itself writes, bounded all the same).
CAPS = {"source": 2000, "author": 500, "content": 4000, "author_ip": 100, "kind": 50,
        "status_seen": 50, "code": 100, "reason": 1000, "status_after": 50}
_FIRST_READ = COLUMNS[:COLUMNS.index("status_seen") + 1]  # what add_pings takes of a ping


def cap(column: str, value: str | None) -> str | None:
    """``value`` cut to the column's cap (None stays None)."""
    return None if value is None else value[:CAPS[column]]


class InboundSql:
    """The ``InboundLog`` part of the state (see ``protocols.InboundLog``)."""

    if TYPE_CHECKING:  # given by the backend's unit of work (``sql_unit.SqlUnit``)
        label: str
        kept: str

        def _rows(self, sql: str, params: Any = ()) -> list[Any]: ...

        def _write(self, sql: str, params: Any = ()) -> int: ...

        def atomic(self) -> AbstractContextManager[None]: ...

        def repair(self, sql: str) -> str: ...

    def _pings(self, sql: str, params: Any = ()) -> list[InboundPing]:
        return [self._ping(row) for row in self._rows(sql, params)]

    def inbound_cursor(self, site: str) -> int | None:
        found = self._rows("SELECT inbound_cursor FROM sites WHERE name = ?", (site,))
        value = found[0][0] if found else None
        return None if value is None else int(value)

    def add_pings(self, site: str, pings: list[InboundPing], cursor: int | None) -> int:
        """In comment order (key order, as every unit that writes many rows: two such units
        never wait for each other). The ``sites`` row is made if the site has none yet."""
        marks = ", ".join("?" * len(_FIRST_READ))
        sql = (f"INSERT INTO inbound ({', '.join(_FIRST_READ)}) VALUES ({marks}) "
               "ON CONFLICT (site, comment_id) DO NOTHING")
        if strays := sorted({p.site for p in pings} - {site}):
            raise ValueError(f"pings of site {strays[0]!r} given as site {site!r}'s")
        added = 0
        with self.atomic():
            for ping in sorted(pings, key=lambda p: p.comment_id):
                added += self._write(sql, _first_read(site, ping))
            if cursor is not None:
                self._write("INSERT INTO sites (name) VALUES (?) ON CONFLICT (name) DO NOTHING",
                            (site,))
                self._write("UPDATE sites SET inbound_cursor = ? WHERE name = ? AND "
                            "(inbound_cursor IS NULL OR inbound_cursor < ?)",
                            (int(cursor), site, int(cursor)))
        return added

    def inbound_due(self, site: str, now: datetime, limit: int = 200) -> list[InboundPing]:
        return self._pings(f"{_SELECT} WHERE site = ? AND verdict = 'pending' AND "
                           "(next_attempt_at IS NULL OR next_attempt_at <= ?) "
                           "ORDER BY comment_id LIMIT ?", (site, iso(now), limit))

    def inbound_unacted(self, site: str, limit: int = 200) -> list[InboundPing]:
        """Found by inbound_unacted (site, action) in comment order: the pending ones among
        them are few, so the scan stops at ``limit`` however long the site's history."""
        return self._pings(f"{_SELECT} WHERE site = ? AND action = 'none' AND verdict IN "
                           "('verified', 'unverified') ORDER BY comment_id LIMIT ?",
                           (site, limit))

    def inbound_unconfirmed(self, site: str, limit: int = 200) -> list[InboundPing]:
        """Found by inbound_unacted (site, action) too: changes asked for and never
        confirmed are few (a lost answer, a killed process)."""
        return self._pings(f"{_SELECT} WHERE site = ? AND action IN ('spam', 'approved') "
                           "AND status_after IS NULL ORDER BY comment_id LIMIT ?",
                           (site, limit))

    def record_verdict(self, site: str, comment_id: int, *, verdict: Verdict,
                       code: str | None, reason: str | None, attempts: int,
                       next_attempt_at: datetime | None, now: datetime) -> None:
        verdict = Verdict(verdict)
        self._write(
            "UPDATE inbound SET verdict = ?, code = ?, reason = ?, attempts = ?, "
            "next_attempt_at = ?, decided_at = ? WHERE site = ? AND comment_id = ?",
            (verdict.value, cap("code", code), cap("reason", reason), int(attempts),
             None if next_attempt_at is None else iso(next_attempt_at),
             None if verdict is Verdict.PENDING else iso(now), site, comment_id))

    def record_action(self, site: str, comment_id: int, action: Action,
                      status_after: str | None, now: datetime) -> None:
        self._write("UPDATE inbound SET action = ?, status_after = ?, acted_at = ? "
                    "WHERE site = ? AND comment_id = ?",
                    (Action(action).value, cap("status_after", status_after), iso(now), site,
                     comment_id))

    def inbound_list(self, *, site: str | None = None, verdict: Verdict | None = None,
                     limit: int = 50) -> list[InboundPing]:
        clauses, params = [], list[Any]()
        if site is not None:
            clauses.append("site = ?")
            params.append(site)
        if verdict is not None:
            clauses.append("verdict = ?")
            params.append(Verdict(verdict).value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._pings(f"{_SELECT}{where} ORDER BY seen_at DESC, comment_id DESC LIMIT ?",
                           (*params, limit))

    def inbound_counts(self, site: str) -> dict[tuple[Verdict, Action], int]:
        counts = {(verdict, action): 0 for verdict in Verdict for action in Action}
        for verdict, action, count in self._rows(
                "SELECT verdict, action, COUNT(*) FROM inbound WHERE site = ? "
                "GROUP BY verdict, action", (site,)):
            counts[(Verdict(verdict), Action(action))] = int(count)
        return counts

    def _ping(self, row: Any) -> InboundPing:
        """A row (by position, in ``COLUMNS`` order) as an InboundPing; one that cannot be
        read is a StateError naming the row and its repair."""
        values: dict[str, Any] = dict(zip(COLUMNS, row, strict=True))
        try:
            values["verdict"] = Verdict(values["verdict"])
            values["action"] = Action(values["action"])
            for column in _TIMES:
                if values[column] is not None:
                    values[column] = parse_iso(_text(values[column]))
        except (ValueError, TypeError) as exc:
            fix = self.repair(f"DELETE FROM inbound WHERE site = {sql_text(values['site'])} "
                              f"AND comment_id = {int(values['comment_id']):d}")
            raise StateError(
                f"{self.label}: the received ping {values['comment_id']} of site "
                f"{values['site']} cannot be read ({exc}); restore the {self.kept} from a "
                f"backup, or delete that row with: {fix} (that ping is then neither judged "
                "nor listed again)") from None
        return InboundPing(**values)


def _first_read(site: str, ping: InboundPing) -> tuple[Any, ...]:
    """The values of a ping as first read, in ``_FIRST_READ`` order, capped."""
    return (site, int(ping.comment_id), int(ping.post_id), cap("kind", ping.kind),
            cap("source", ping.source), cap("author", ping.author),
            cap("author_ip", ping.author_ip), cap("content", ping.content),
            iso(ping.received_at), iso(ping.seen_at), cap("status_seen", ping.status_seen))


def _text(value: object) -> str:
    """A value that must be text (SQLite keeps whatever type was written)."""
    if not isinstance(value, str):
        raise TypeError(f"not text: {value!r}")
    return value
