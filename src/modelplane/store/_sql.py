"""One SQL flow for both backends: the statements, the read snapshot and the write transaction.

The store's tables are the same on SQLite and PostgreSQL (``mp_objects``, ``mp_events``,
``mp_meta``, ``mp_leases``, ``mp_allowances``; each backend's module has its DDL), and so is every statement that
reads or writes them. What differs is a small :class:`Dialect`:

* how a query names its parameters (``?`` or ``%s``);
* how a read sees one snapshot (``BEGIN`` in WAL mode, or ``REPEATABLE READ READ ONLY``);
* where the current version lives and how a writer locks it (:meth:`Dialect.begin_write`): SQLite's
  ``BEGIN IMMEDIATE`` takes the file's write lock and the version is the newest event; PostgreSQL
  locks the one row of ``mp_meta`` (``FOR UPDATE``), and the new version is written back to that
  row at commit (:meth:`Dialect.versioned`, with the ``NOTIFY`` that wakes other processes' watches);
* how the writes reach the database at commit (:meth:`Dialect.send`: one statement after another,
  or one pipeline: a single round trip).

The write flow, the same for both: begin and lock (serialising the writers of every process that
shares the database), read what the object rules need, queue the writes, then send the writes, the
new version and COMMIT together. Because the lock is held until COMMIT and a database makes a
commit visible before it releases the lock, a version is only handed out after every lower one is
visible: a reader of "events with rv > N" never sees N+2 while N+1 is still to come, which is what
makes watches gap-free and ordered across processes. A write returns only after COMMIT, so an
acknowledged write survives the process being killed (durability beyond that is the backend's
setting; see its module). Neither backend needs ``RETURNING`` or JSON column types: objects are
stored as JSON text with their resourceVersion already inside, so a read is one parse.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from modelplane.store._allowances import Allowance
from modelplane.store._contract import EventType, Lease
from modelplane.store._hub import Record, record_from_row

#: one statement and its parameters
Statement = tuple[str, tuple[Any, ...]]


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """The part of a DB-API connection the flow uses (sqlite3's and psycopg's both have it)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...


class Dialect:
    """What differs between the databases; a subclass per backend fills it in."""

    #: how a query names its parameters; statements here are written with ``?``
    placeholder = "?"
    #: starts a read transaction in which every statement sees the same snapshot
    begin_read: str
    #: the current version, outside a write transaction
    current_rv_sql: str
    #: the compacted horizon (events up to it are gone)
    compacted_sql: str
    #: records a new compacted horizon (one parameter)
    set_compacted_sql: str

    def __init__(self) -> None:
        q = self.q
        self.current_rv = q(self.current_rv_sql)
        self.compacted = q(self.compacted_sql)
        self.set_compacted = q(self.set_compacted_sql)
        self.get_raw = q(
            "SELECT data FROM mp_objects WHERE kind = ? AND namespace = ? AND name = ?"
        )
        self.insert_object = q(
            "INSERT INTO mp_objects (kind, namespace, name, rv, data) VALUES (?, ?, ?, ?, ?)"
        )
        self.update_object = q(
            "UPDATE mp_objects SET rv = ?, data = ? WHERE kind = ? AND namespace = ? AND name = ?"
        )
        self.delete_object = q(
            "DELETE FROM mp_objects WHERE kind = ? AND namespace = ? AND name = ?"
        )
        self.insert_event = q(
            "INSERT INTO mp_events (rv, type, kind, namespace, name, object, prev_labels)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self.read_events = q(
            "SELECT rv, type, kind, namespace, object, prev_labels FROM mp_events"
            " WHERE rv > ? ORDER BY rv LIMIT ?"
        )
        self.delete_events = q("DELETE FROM mp_events WHERE rv <= ?")
        self.get_lease = q("SELECT holder, expires_at, transitions FROM mp_leases WHERE name = ?")
        self.put_lease = q(
            "INSERT INTO mp_leases (name, holder, expires_at, transitions) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
            " expires_at = excluded.expires_at, transitions = excluded.transitions"
        )
        self.get_allowances = q(
            "SELECT holder, slot, used, settled, granted, expires_at FROM mp_allowances"
            " WHERE pool = ?"
        )
        self.put_allowance = q(
            "INSERT INTO mp_allowances (pool, holder, slot, used, settled, granted, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pool, holder) DO UPDATE SET"
            " slot = excluded.slot, used = excluded.used, settled = excluded.settled,"
            " granted = excluded.granted, expires_at = excluded.expires_at"
        )
        # rows of windows before the current one count for nothing any more
        self.drop_allowances = q("DELETE FROM mp_allowances WHERE pool = ? AND slot < ?")

    def q(self, statement: str) -> str:
        """``statement`` (written with ``?``) in this dialect's placeholders."""
        return statement if self.placeholder == "?" else statement.replace("?", self.placeholder)

    def begin_write(self, conn: Connection) -> tuple[int, int]:
        """Begin a write transaction holding the lock that serialises every process's writers;
        returns the current version and the compacted horizon as of that lock."""
        raise NotImplementedError

    def versioned(self, rv: int) -> list[Statement]:
        """Statements that make ``rv`` the current version at commit; none where the version is
        read from the events table itself."""
        return []

    def send(self, conn: Connection, statements: list[Statement]) -> None:
        """Run the transaction's writes, then COMMIT."""
        for statement, args in statements:
            conn.execute(statement, args)
        conn.execute("COMMIT")


class Rows:
    """Reads over one connection (the caller owns the transaction, if any)."""

    __slots__ = ("conn", "dialect")

    def __init__(self, conn: Connection, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect

    def current_rv(self) -> int:
        return int(self.conn.execute(self.dialect.current_rv).fetchone()[0])

    def compacted(self) -> int:
        return int(self.conn.execute(self.dialect.compacted).fetchone()[0])

    def get_raw(self, kind: str, namespace: str, name: str) -> str | None:
        row = self.conn.execute(self.dialect.get_raw, (kind, namespace, name)).fetchone()
        return None if row is None else str(row[0])

    def rows(
        self, kind: str, namespace: str | None, after: tuple[str, str] | None, limit: int | None
    ) -> list[tuple[str, str, str]]:
        """``(namespace, name, data)`` ordered by (namespace, name), keys after ``after``."""
        query = "SELECT namespace, name, data FROM mp_objects WHERE kind = ?"
        args: list[object] = [kind]
        if namespace is not None:
            query += " AND namespace = ?"
            args.append(namespace)
        if after is not None:
            query += " AND (namespace, name) > (?, ?)"
            args.extend(after)
        query += " ORDER BY namespace, name"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        return self.conn.execute(self.dialect.q(query), args).fetchall()

    def lease(self, name: str) -> Lease | None:
        row = self.conn.execute(self.dialect.get_lease, (name,)).fetchone()
        return None if row is None else Lease(name, row[0], float(row[1]), int(row[2]))

    def allowances(self, pool: str) -> list[Allowance]:
        rows = self.conn.execute(self.dialect.get_allowances, (pool,)).fetchall()
        return [
            Allowance(h, int(s), float(u), float(d), float(g), float(e))
            for h, s, u, d, g, e in rows
        ]

    def events(self, after: int, limit: int) -> tuple[list[Record], int]:
        """Events after ``after`` (at most ``limit``), then the compacted horizon, read after the
        events so that a compaction in between is noticed."""
        rows = self.conn.execute(self.dialect.read_events, (after, limit)).fetchall()
        horizon = self.compacted()
        return [
            record_from_row(int(rv), t, k, ns, obj, prev) for rv, t, k, ns, obj, prev in rows
        ], horizon


class Transaction(Rows):
    """A write transaction holding the writers' lock; its writes are queued and sent at commit."""

    __slots__ = ("_compacted", "_rv", "new_rv", "pending")

    def __init__(self, conn: Connection, dialect: Dialect, rv: int, compacted: int) -> None:
        self.conn = conn  # Rows.__init__ written out: this runs once per write
        self.dialect = dialect
        self._rv = rv
        self._compacted = compacted
        self.new_rv = 0
        self.pending: list[Statement] = []

    def current_rv(self) -> int:
        return self._rv

    def compacted(self) -> int:
        return self._compacted

    def next_rv(self) -> int:
        """The version this transaction's write takes (called at most once)."""
        self.new_rv = self._rv + 1
        return self.new_rv

    def put(self, kind: str, namespace: str, name: str, rv: int, raw: str, *, exists: bool) -> None:
        d = self.dialect
        if exists:
            self.pending.append((d.update_object, (rv, raw, kind, namespace, name)))
        else:
            self.pending.append((d.insert_object, (kind, namespace, name, rv, raw)))

    def drop(self, kind: str, namespace: str, name: str) -> None:
        self.pending.append((self.dialect.delete_object, (kind, namespace, name)))

    def event(
        self,
        rv: int,
        type_: EventType,
        kind: str,
        namespace: str,
        name: str,
        raw: str,
        prev_labels: str | None,
    ) -> None:
        """Record an event; ``prev_labels``: the labels before the change as JSON, None when
        they are the same as the object's (always for a create)."""
        self.pending.append(
            (self.dialect.insert_event, (rv, type_, kind, namespace, name, raw, prev_labels))
        )

    def put_lease(self, lease: Lease) -> None:
        self.pending.append(
            (
                self.dialect.put_lease,
                (lease.name, lease.holder, lease.expires_at, lease.transitions),
            )
        )

    def put_allowance(self, pool: str, row: Allowance) -> None:
        """Write ``row`` and drop the pool's rows of windows before it."""
        d = self.dialect
        self.pending.append(
            (
                d.put_allowance,
                (
                    pool,
                    row.holder,
                    row.window,
                    row.used,
                    row.settled,
                    row.granted,
                    row.expires_at,
                ),
            )
        )
        self.pending.append((d.drop_allowances, (pool, row.window)))

    def compact(self, horizon: int) -> None:
        """Delete events with rv <= horizon and remember horizon as the compacted version."""
        self.pending.append((self.dialect.delete_events, (horizon,)))
        self.pending.append((self.dialect.set_compacted, (horizon,)))

    def commit(self) -> None:
        if self.new_rv:
            self.pending.extend(self.dialect.versioned(self.new_rv))
        self.dialect.send(self.conn, self.pending)


@contextmanager
def reading(conn: Connection, dialect: Dialect, snapshot: bool) -> Iterator[Rows]:
    """Reads on ``conn``; with ``snapshot`` every statement sees the same state (a read
    transaction), without it each statement is its own (cheaper for a one-row read)."""
    if not snapshot:
        yield Rows(conn, dialect)
        return
    conn.execute(dialect.begin_read)
    try:
        yield Rows(conn, dialect)
    finally:
        conn.execute("COMMIT")


def begin(conn: Connection, dialect: Dialect) -> Transaction:
    """Begin a write transaction on ``conn``, holding the writers' lock. The caller commits it
    when its block ends (:meth:`Transaction.commit`) and sends ROLLBACK when the block raises (a
    failed ROLLBACK raises the driver's error, which the backend turns into Unavailable)."""
    rv, compacted = dialect.begin_write(conn)
    return Transaction(conn, dialect, rv, compacted)
