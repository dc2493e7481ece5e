"""A unit of work on PostgreSQL: the shared unit (``sql_unit``) on one psycopg connection,
the shared SQL's placeholders in psycopg's form, rows readable by position and by name, a
connection lost between units opened again once, and PostgreSQL's errors turned into
one-line StateErrors that name the database (its URL without the password) and the fix."""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.abc import Buffer
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.string import StrDumperUnknown

from wpnotify.errors import StateError
from wpnotify.state.rows import shell_sql
from wpnotify.state.sql_unit import SqlUnit
from wpnotify.urls import scrub_dsn, shown_dsn

T = TypeVar("T")
CONNECT_TIMEOUT = 10  # seconds, for a server that does not answer at all
# TCP keepalives, unless the URL sets its own: a server that vanished without closing the
# connection (a crash, a network cut) is noticed within about 30 s instead of the kernel's
# two hours, so the unit waiting on it fails (a StateError) and the connection is opened
# again, rather than the worker hanging while its leases pass.
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "15", "keepalives_interval": "5",
              "keepalives_count": "3"}
START = "is PostgreSQL running and listening there? start it (e.g. pg_ctlcluster 15 main " \
        "start, or systemctl start postgresql)"
LOGIN = "check the user name and its password (in PGPASSFILE or ~/.pgpass, or passfile= in " \
        "state_url; never in the URL itself) and the server's pg_hba.conf"
# A string literal (kept as it is), a "?" or ":name" placeholder, or a literal "%".
_TOKENS = re.compile(r"'(?:[^']|'')*'|\?|(?<![:\w]):([A-Za-z_]\w*)|%")


@functools.lru_cache(maxsize=1024)
def placeholders(sql: str) -> str:
    """The shared SQL (``?`` and ``:name``) in psycopg's form (``%s``, ``%(name)s``), a
    literal ``%`` escaped; cached per statement."""
    def one(found: re.Match[str]) -> str:
        token = found.group(0)
        if token == "?":
            return "%s"
        if token.startswith("'") or token == "%":
            return token.replace("%", "%%")  # psycopg reads "%" inside literals too
        return f"%({found.group(1)})s"
    return _TOKENS.sub(one, sql)


class NulFreeText(StrDumperUnknown):
    """Text as psycopg sends it (its type left to the server), less NUL characters, which
    PostgreSQL's text cannot hold and SQLite's can: one from the network (a receiver's
    reply, a link) becomes U+FFFD instead of an error that would leave an outcome
    unrecorded."""

    def dump(self, obj: str) -> Buffer | None:
        return super().dump(obj.replace("\0", "\ufffd") if "\0" in obj else obj)


class PgRow:
    """A row readable by position and by column name (as sqlite3.Row is), and as a mapping
    (``dict(row)``)."""

    __slots__ = ("_names", "_values")

    def __init__(self, values: Sequence[Any], names: dict[str, int]) -> None:
        self._values = values
        self._names = names

    def __getitem__(self, key: int | str) -> Any:
        return self._values[self._names[key] if isinstance(key, str) else key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._names)


def pg_rows(cursor: Any) -> Callable[[Sequence[Any]], PgRow]:
    """psycopg's row factory for PgRow: the column names are read once per result."""
    names = {column.name: i for i, column in enumerate(cursor.description or ())}
    return lambda values: PgRow(values, names)


def connect_error(url: str, exc: psycopg.Error) -> StateError:
    """A connection that could not be made, with the fix its reason asks for. libpq quotes
    the URL, or the part of it it could not read (a password with a stray "%"), in its
    message: both are taken out."""
    shown = shown_dsn(url)
    reason = scrub_dsn(one_line(exc), url)
    if isinstance(exc, psycopg.ProgrammingError) or reason.startswith("connection is bad:"):
        fix = ("state_url cannot be read as a PostgreSQL URL: fix it in the configuration "
               "(postgresql://USER@HOST:PORT/DATABASE; percent-encode a \"%\", \"@\" or "
               "\"/\" in a name)")
    elif re.search(r'database "[^"]*" does not exist', reason):
        fix = f"create the database: {create_command(shown)}"
    elif re.search(r"password|authentication|role \"|pg_hba", reason):
        fix = LOGIN
    else:
        fix = START
    return StateError(f"cannot connect to state database {shown}: {reason}; {fix}")


def create_command(shown: str) -> str:
    """``createdb`` for the database a URL names (what the user may have to run)."""
    found = re.match(r"^[^:]*://(?:([^@/]*)@)?([^/?:]*)(?::(\d+))?/([^?]*)", shown)
    if not found:
        return "createdb NAME"
    user, host, port, name = found.groups()
    words = ["createdb"] + (["-h", host] if host else []) + (["-p", port] if port else [])
    words += (["-U", user] if user else []) + [name or "NAME"]
    return " ".join(shlex.quote(word) for word in words)


def one_line(exc: BaseException) -> str:
    """psycopg's message on one line, without its prefix."""
    text = " ".join(str(exc).split())
    return text.removeprefix("connection failed: ") or type(exc).__name__


class PgConnection(SqlUnit):
    """The open state database, one connection per process (see ``SqlUnit``). ``url`` never
    leaves this object: messages name ``shown`` (no password)."""

    kept = "database"
    _errors = (psycopg.Error,)
    _migrating = False  # creating or changing the tables (which takes their owner)

    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._pending: list[tuple[str, Any, bool]] = []  # see ``_begin``
        self._opening = 0  # how many of them open the unit (its BEGIN and lock), if unsent
        self.shown = shown_dsn(url)
        self.label = f"state database {self.shown}"
        self.conn = self._connect()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.shown}>"

    def _connect(self) -> psycopg.Connection[Any]:
        """Autocommit: a read outside a unit is its own statement; a unit is BEGIN … COMMIT."""
        try:
            given = conninfo_to_dict(self._url)
            defaults = {"connect_timeout": str(CONNECT_TIMEOUT), **KEEPALIVES}
            conninfo = make_conninfo(self._url, **{key: value for key, value in
                                                   defaults.items() if key not in given})
            conn = psycopg.connect(conninfo, autocommit=True, row_factory=pg_rows)
        except psycopg.Error as exc:
            raise connect_error(self._url, exc) from None
        conn.adapters.register_dumper(str, NulFreeText)
        return conn

    def repair(self, sql: str) -> str:
        return shell_sql(f"psql {shlex.quote(self.shown)} -c", sql)

    def close(self) -> None:
        """Closes the connection, after the unit of work in progress (it holds the lock)."""
        with self._lock:
            self._closed = True
            self.conn.close()

    def _lost(self, exc: Exception) -> bool:
        return isinstance(exc, psycopg.OperationalError) and (self.conn.broken or
                                                             self.conn.closed)

    def _once_more(self, step: Callable[[], T], *, harmless: bool = True) -> T:
        """``step``, and, when the connection turns out lost (the server restarted, or ended
        this session, since the last unit), ``step`` again on a new one. For what starts
        afresh: a unit's first send (its BEGIN goes with it) and a read (``harmless``); a
        write of its own, or a unit's first send that carries its COMMIT, only when the
        server says it had ended the session before it (else it may have been done)."""
        if self.conn.broken or self.conn.closed:
            self.conn = self._connect()
        try:
            return step()
        except psycopg.OperationalError as exc:
            ended = getattr(exc, "sqlstate", None) in ENDED
            if not self._lost(exc) or not (harmless or ended):
                raise
        self.conn = self._connect()
        return step()

    # A unit's BEGIN, its lock, and writes whose answer nobody waits for are not sent on
    # their own: they go with the unit's next statement, or its COMMIT, in one round trip
    # (pipeline mode); a unit that ends having sent nothing costs none.

    def _begin(self, exclusive: bool = False) -> None:
        self._pending = [("BEGIN", None, False)]
        if exclusive:
            self._pending.append((LOCK, (CLAIM_LOCK,), False))
        self._opening = len(self._pending)  # BEGIN and the lock only: nothing asked yet

    def _defer(self, sql: str, params: Any = None, many: bool = False) -> None:
        """A statement of the open unit sent with its next one (or its COMMIT)."""
        self._pending.append((sql, params, many))

    def _send(self, last: Callable[[psycopg.Cursor[Any]], object], *,
              harmless: bool = True, together: bool = False) -> psycopg.Cursor[Any]:
        """What is pending, then ``last`` on a new cursor, in one round trip; the cursor.
        The unit's first send is sent again on a new connection if the one it went on turns
        out lost (nothing of the unit can have been done: its BEGIN went with it), unless
        it carries the COMMIT (``harmless`` False: it may have been done, whole)."""
        def send() -> psycopg.Cursor[Any]:
            pending, self._pending, self._opening = self._pending, [], 0
            cursor = self.conn.cursor()
            if not pending and not together:  # ``together``: ``last`` sends several
                last(cursor)
                return cursor
            with self.conn.pipeline():
                for sql, params, many in pending:
                    if many:
                        self.conn.cursor().executemany(sql, params)
                    else:
                        self.conn.execute(sql, params)
                last(cursor)
            return cursor
        if self._opening:  # the unit's BEGIN goes too: nothing of it reached the server yet
            pending = list(self._pending)

            def again() -> psycopg.Cursor[Any]:
                self._pending, self._opening = list(pending), len(pending)
                return send()
            return self._once_more(again, harmless=harmless)
        return send()

    def _commit(self) -> None:
        if self._opening and len(self._pending) == self._opening:
            self._pending, self._opening = [], 0  # nothing was asked: nothing to send
            return
        self._send(lambda cursor: cursor.execute("COMMIT"), harmless=False)

    def _rollback(self) -> None:
        unsent, self._pending, self._opening = bool(self._opening), [], 0
        if unsent or self.conn.broken or self.conn.closed:
            return
        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            self.conn.execute("ROLLBACK")

    def _exclusive(self) -> None:
        """The claiming lock: an advisory lock held until the unit ends (any fixed key)."""
        self._defer(LOCK, (CLAIM_LOCK,))

    def _flush(self) -> None:
        """Sends the writes waiting for the unit's next statement now (a savepoint's
        rollback must not be taken for one of theirs)."""
        if len(self._pending) > self._opening:
            self._send(lambda cursor: None)

    def _statement(self, sql: str) -> None:
        """A statement without parameters (a savepoint's), in the open unit."""
        self._send(lambda cursor: cursor.execute(sql))

    def _execute(self, sql: str, params: Any) -> psycopg.Cursor[Any]:
        """Statements with parameters in psycopg's form; one without runs as it is written
        (a migration: several statements, ``%`` in its text), on its own."""
        if not params:
            if self._pending:
                self._send(lambda cursor: None)
            return self.conn.execute(sql)
        return self._send(lambda cursor: cursor.execute(placeholders(sql), params))

    def _fetch(self, sql: str, params: Any) -> list[Any]:
        def fetch() -> list[Any]:
            cursor = self._execute(sql, params)
            return cursor.fetchall() if cursor.description else []
        return fetch() if self._depth else self._once_more(fetch)

    def _run(self, sql: str, params: Any) -> int:
        return self._execute(sql, params).rowcount

    def _write(self, sql: str, params: Any = ()) -> int:
        """One statement outside a unit is a unit by itself (autocommit): one round trip to
        the server instead of three (BEGIN, it, COMMIT)."""
        with self._lock:
            if self._depth:
                return self._run(sql, params)
            self._require_open()
            try:
                return self._once_more(lambda: self._run(sql, params), harmless=False)
            except psycopg.Error as exc:
                raise self._error(exc) from None

    def _run_many(self, sql: str, params: list[Any]) -> None:
        """In a unit (``_write_many`` opens one), sent with its next statement."""
        self._defer(placeholders(sql), params, many=True)

    def _rows_together(self, queries: list[tuple[str, Any]]) -> list[list[Any]]:
        with self._lock:
            self._require_open()
            try:
                return self._fetch_together(queries) if self._depth else self._once_more(
                    lambda: self._fetch_together(queries))
            except psycopg.Error as exc:
                raise self._error(exc, "read") from None

    def _fetch_together(self, queries: list[tuple[str, Any]]) -> list[list[Any]]:
        """The first query with what is pending, the others after it, in one pipeline."""
        cursors: list[psycopg.Cursor[Any]] = []

        def rest(first: psycopg.Cursor[Any]) -> None:
            cursors.clear()  # sent again on a new connection: that one's cursors only
            sql, params = queries[0]
            first.execute(placeholders(sql), params)
            for sql, params in queries[1:]:
                cursors.append(self.conn.cursor())
                cursors[-1].execute(placeholders(sql), params)
        first = self._send(rest, together=len(queries) > 1)
        return [cursor.fetchall() for cursor in [first, *cursors]]

    def _fetch_many(self, sql: str, params: list[Any]) -> list[Any]:
        """psycopg sends the batch in pipeline mode (one round trip, the statements run in
        order) and keeps each one's result."""
        found: list[Any] = []
        cursor = self._send(lambda cursor: cursor.executemany(placeholders(sql), params,
                                                              returning=True))
        with cursor:
            while True:
                found += cursor.fetchall() if cursor.description else []
                if not cursor.nextset():
                    return found

    def _error(self, exc: Exception, doing: str = "write") -> StateError:
        reason = one_line(exc)
        code = getattr(exc, "sqlstate", None) or ""
        if self._lost(exc) or code.startswith("08") or code in ENDED:
            fix = (f"the connection to PostgreSQL was lost (nothing of this unit of work was "
                   f"kept); {START}")
        elif code == "42501" and self._migrating:
            fix = ("the first wpnotify command on a database creates its tables: run it as "
                   "the database's owner (createdb -O USER NAME makes one), or as the owner "
                   "run: GRANT CREATE ON SCHEMA public TO USER")
        elif code == "42501":
            fix = grants_fix(self.shown)
        elif code == "25006":
            fix = "the server is read-only (a standby?); point state_url at the primary"
        elif code.startswith("53"):
            fix = "the server is out of disk space or memory: see its log (nothing was " \
                  "half-written)"
        else:
            fix = "see the server's log"
        return StateError(f"cannot {doing} {self.label}: {reason}; {fix}")


# The server ended the session (an administrator, a shutdown, a restart): a statement that
# meets one of these was never run.
ENDED = frozenset({"57P01", "57P02", "57P03"})
CLAIM_LOCK = 0x77706E63  # "wpnc": the claiming units' advisory lock (migrations use "wpnm")
LOCK = "SELECT pg_advisory_xact_lock(%s)"


def grants_fix(shown: str) -> str:
    """The grants that let a user write the state's tables (run by their owner)."""
    found = re.match(r"^[^:]*://([^@/]*)@", shown)
    user = found.group(1) if found else "USER"
    grants = (f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {user}; "
              f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {user}")
    return (f"this user may not write the state's tables; as their owner (the user who "
            f"created them) run: psql {shlex.quote(shown)} -c {shlex.quote(grants)}")
