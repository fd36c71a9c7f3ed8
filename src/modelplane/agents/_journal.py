"""The runtime's own tables and the group-commit writer; SQLite and PostgreSQL.

Tables (prefixed ``agent_``; instances are not API objects):

* ``agent_instances`` — one row per instance: key (namespace, agent, name), uid, the version it
  started on, shard, status, wake-up time of a durable timer, the prompt it waits on, result or error,
  and the latest committed ``state`` (what ``GET .../state`` shows);
* ``agent_journal`` — append-only records ``(iid, seq, kind, name, data, crc)``; ``crc`` is CRC-32 of
  kind, name and data, checked on every load;
* ``agent_snapshots`` — per instance, the state at the start of the current turn and the journal
  position it covers: a resume reads the snapshot and the records after it (the tail), never the
  history; records behind the snapshot are compacted away;
* ``agent_memory`` — conversation entries ``(iid, n)``: an append is one row (O(1));
* ``agent_inbox`` — messages, inputs and cancellations not yet consumed;
* ``agent_audit`` — who did what, when: API calls and every tool-call decision;
* ``agent_approvals`` — tool calls waiting for (or given) a person's decision;
* ``agent_shards`` — per shard, the fencing token of the runtime allowed to write its instances
  (the ``transitions`` of its shard lease, see :mod:`modelplane.agents._shards`).

Durability: every write goes through :class:`GroupCommit`, one writer thread per process that takes
every submission queued while the previous transaction committed and writes them in one
transaction. SQLite runs in WAL mode with ``synchronous=FULL`` (the WAL is fsync'd at every
commit), PostgreSQL with its default ``synchronous_commit=on``; a submission's future resolves only
after its commit returned, so an acknowledged record survives kill -9 and power loss.

A lost database connection (PostgreSQL restarted, a failover) is opened again: reads retry once
on the new connection; the writer holds its batch, reconnects with backoff until the server
answers, and writes the batch again. A commit whose answer was lost is ambiguous — it may have
landed — and a batch carries journal records keyed by ``(iid, seq)``, so writing it again either
lands it or fails on that key, which means the first commit landed: both resolve the batch as
durable, and nothing is journaled twice.

Fencing: a runtime on shard leases claims each shard it gains in ``agent_shards`` with its lease's
token (a claim only ever raises the token), before it reads any instance of that shard. Its
submissions carry ``(shard, token)``, and the writer checks, inside the commit's transaction, that
the shard's token is still that one (on PostgreSQL the check locks the row, so a new owner's claim
waits for a commit in flight and then reads what it wrote). A worker that stalled past its lease
and woke up after another claimed the shard has its commit refused with :class:`Fenced`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from modelplane.agents.errors import Fenced
from modelplane.api.errors import Unavailable

Op = tuple[str, Sequence[Any]]

logger = logging.getLogger("modelplane.agents")

_SQLITE_DDL = """
CREATE TABLE IF NOT EXISTS agent_instances (
  iid INTEGER PRIMARY KEY,
  namespace TEXT NOT NULL, agent TEXT NOT NULL, name TEXT NOT NULL,
  uid TEXT NOT NULL, version TEXT NOT NULL, shard INTEGER NOT NULL,
  status TEXT NOT NULL, wake_at REAL, prompt TEXT, result BLOB, error TEXT, state BLOB,
  created REAL NOT NULL, updated REAL NOT NULL, finished REAL,
  UNIQUE (namespace, agent, name));
CREATE INDEX IF NOT EXISTS agent_instances_status ON agent_instances (namespace, agent, status, name);
CREATE INDEX IF NOT EXISTS agent_instances_wake ON agent_instances (wake_at) WHERE wake_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS agent_journal (
  iid INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
  data BLOB NOT NULL, crc INTEGER NOT NULL, at REAL NOT NULL,
  PRIMARY KEY (iid, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agent_snapshots (
  iid INTEGER PRIMARY KEY, turn INTEGER NOT NULL, seq INTEGER NOT NULL,
  memory_len INTEGER NOT NULL, state BLOB NOT NULL, crc INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS agent_memory (
  iid INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL,
  PRIMARY KEY (iid, n)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agent_inbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT, iid INTEGER NOT NULL, kind TEXT NOT NULL,
  data BLOB NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS agent_inbox_iid ON agent_inbox (iid, id);
CREATE TABLE IF NOT EXISTS agent_audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, namespace TEXT NOT NULL, agent TEXT NOT NULL,
  name TEXT NOT NULL, at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  detail BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS agent_audit_instance ON agent_audit (namespace, agent, name, id);
CREATE TABLE IF NOT EXISTS agent_shards (shard INTEGER PRIMARY KEY, token INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS agent_approvals (
  id TEXT PRIMARY KEY, iid INTEGER NOT NULL,
  namespace TEXT NOT NULL, agent TEXT NOT NULL, name TEXT NOT NULL,
  server TEXT NOT NULL, tool TEXT NOT NULL, arguments BLOB NOT NULL, reason TEXT NOT NULL,
  requested REAL NOT NULL, decision TEXT, decided_by TEXT, decided_reason TEXT, decided REAL,
  token TEXT);
CREATE INDEX IF NOT EXISTS agent_approvals_open ON agent_approvals (decision, requested);
"""

_POSTGRES_DDL = (
    _SQLITE_DDL.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
    .replace("iid INTEGER PRIMARY KEY,\n  namespace", "iid BIGSERIAL PRIMARY KEY,\n  namespace")
    .replace("BLOB", "BYTEA")
    .replace("REAL", "DOUBLE PRECISION")
    .replace("INTEGER", "BIGINT")
    .replace(") WITHOUT ROWID", ")")
)

#: the table the DDL creates last (see :class:`Database`: its presence means the schema is there)
_LAST_TABLE = "agent_approvals"


#: a claim only ever raises a shard's token: a stale holder's late claim changes nothing
_CLAIM = (
    "INSERT INTO agent_shards (shard, token) VALUES (?, ?) ON CONFLICT (shard) DO UPDATE"
    " SET token = excluded.token WHERE agent_shards.token < excluded.token"
)
_TOKEN = "SELECT token FROM agent_shards WHERE shard = ?"

#: (shard, fencing token) a submission is written under; None: unfenced (a runtime without leases)
Fence = tuple[int, int] | None


def checksum(kind: str, name: str, data: bytes) -> int:
    """CRC-32 of one journal record (kind, name and payload)."""
    return zlib.crc32(data, zlib.crc32(name.encode(), zlib.crc32(kind.encode())))


@dataclass(slots=True)
class InstanceIdentity:
    """What a stored row and an instance in memory both say first: which instance it is (its
    ``iid``, names, ``uid`` and code version), the shard that runs it, and its status."""

    iid: int
    namespace: str
    agent: str
    name: str
    uid: str
    version: str
    shard: int
    status: str


@dataclass(slots=True)
class Row(InstanceIdentity):
    """An instance row as read from ``agent_instances``."""

    wake_at: float | None
    prompt: str | None
    result: bytes | None
    error: str | None
    state: bytes | None
    created: float
    updated: float
    finished: float | None


ROW_COLUMNS = (
    "iid, namespace, agent, name, uid, version, shard, status, wake_at, prompt, result, error,"
    " state, created, updated, finished"
)


def _row(values: Sequence[Any]) -> Row:
    v = list(values)
    for i in (10, 12):  # psycopg returns memoryview-free bytes; sqlite bytes already
        if v[i] is not None:
            v[i] = bytes(v[i])
    return Row(*v)


class Database:
    """One backend: DDL, a read connection for the event loop, a write connection for the writer.

    SQL is written with ``?`` placeholders and the SQLite/PostgreSQL common subset; the PostgreSQL
    backend rewrites placeholders. Reads are short indexed lookups.
    """

    url: str
    dialect: str

    def __init__(self, url: str) -> None:
        self.url = url
        self._read_lock = threading.Lock()
        if url.startswith("sqlite:"):
            self.dialect = "sqlite"
            self._path = _sqlite_path(url)
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._read = self._sqlite_connect()
            self._read.executescript(_SQLITE_DDL)
        elif url.startswith(("postgresql:", "postgres:")):
            self.dialect = "postgres"
            self._read = self._pg_connect()
            with self._read.transaction():
                self._read.execute("SELECT pg_advisory_xact_lock(727274)")
                # CREATE INDEX takes a SHARE lock on its table even when the index exists: run
                # against a live schema, the DDL would deadlock with writers (a commit holding
                # one table and waiting for another). The tables are created in one transaction,
                # so the last one existing means all do (new tables go at the end of the DDL).
                found = self._read.execute("SELECT to_regclass(%s)", (_LAST_TABLE,)).fetchone()
                if found is None or found[0] is None:
                    for statement in _POSTGRES_DDL.split(";"):
                        if statement.strip():
                            self._read.execute(statement)
        else:
            raise Unavailable(
                f"agent runtime: unsupported database URL {url.split(':', 1)[0]!r}; use"
                " sqlite:///path/agents.db or postgresql://host/db"
            )

    # -- connections ---------------------------------------------------------------------

    def _sqlite_connect(self) -> Any:
        try:
            conn = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise Unavailable(
                f"agent runtime: cannot open SQLite database {self._path}: {exc}; check the path"
                " and its permissions"
            ) from None
        return conn

    def _pg_connect(self) -> Any:
        import psycopg

        from modelplane.store import guard_session

        try:
            return guard_session(psycopg.connect(self.url, autocommit=True))
        except psycopg.Error as exc:
            raise Unavailable(
                f"agent runtime: cannot reach PostgreSQL: {exc}; check --database-url"
            ) from None

    def writer_connection(self) -> Any:
        return self._sqlite_connect() if self.dialect == "sqlite" else self._pg_connect()

    def sql(self, text: str) -> str:
        return text if self.dialect == "sqlite" else _pg_sql(text)

    # -- reads ---------------------------------------------------------------------------

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock:
            try:
                return list(self._read.execute(self.sql(text), params).fetchall())
            except Exception:
                if not self._reopen_read():
                    raise
            # a read is safe to run again on the new connection
            return list(self._read.execute(self.sql(text), params).fetchall())

    def _reopen_read(self) -> bool:
        """Open the read connection again when the last statement found it lost (PostgreSQL
        restarted); False when it is not lost (the statement itself failed)."""
        if not lost(self._read):
            return False
        with contextlib.suppress(Exception):
            self._read.close()
        self._read = self._pg_connect()
        return True

    def one(self, text: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.query(text, params)
        return rows[0] if rows else None

    def instance(self, namespace: str, agent: str, name: str) -> Row | None:
        r = self.one(
            f"SELECT {ROW_COLUMNS} FROM agent_instances WHERE namespace=? AND agent=? AND name=?",
            (namespace, agent, name),
        )
        return _row(r) if r else None

    def instance_by_iid(self, iid: int) -> Row | None:
        r = self.one(f"SELECT {ROW_COLUMNS} FROM agent_instances WHERE iid=?", (iid,))
        return _row(r) if r else None

    # -- writes outside the group commit (creation needs the new iid back) ---------------

    def execute_now(self, ops: Sequence[Op]) -> list[Any]:
        """Run ``ops`` in one transaction on the read connection; returns each op's first row."""
        out: list[Any] = []
        with self._read_lock:
            if lost(self._read):
                self._reopen_read()
            conn = self._read
            with self.transaction(conn):
                for text, params in ops:
                    cur = conn.execute(self.sql(text), params)
                    out.append(cur.fetchone() if cur.description else None)
        return out

    @contextlib.contextmanager
    def transaction(self, conn: Any) -> Iterator[None]:
        """One write transaction on ``conn``: SQLite's takes the file's write lock at once
        (IMMEDIATE), so writers queue before they read; PostgreSQL's is the driver's."""
        if self.dialect != "sqlite":
            with conn.transaction():
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def claim_shards(self, tokens: dict[int, int], *, force: bool = False) -> set[int]:
        """Record ``tokens`` (shard -> lease token) as the shards' fencing tokens; the shards
        claimed. A shard whose token is already higher belongs to a newer holder: not claimed,
        unless ``force`` (the lease store was reset: its tokens started again from 0). Either
        way one token at a time is current, and every commit must hold it."""
        claim = _CLAIM.partition(" WHERE ")[0] if force else _CLAIM
        ops: list[Op] = []
        # one order for every process: two claims (or a claim and a commit) never deadlock
        for shard in sorted(tokens):
            ops += [(claim, (shard, tokens[shard])), (_TOKEN, (shard,))]
        rows = self.execute_now(ops)
        return {
            shard
            for i, shard in enumerate(sorted(tokens))
            if rows[2 * i + 1] is not None and rows[2 * i + 1][0] == tokens[shard]
        }

    def close(self) -> None:
        with self._read_lock:
            self._read.close()


def _sqlite_path(url: str) -> Path:
    """``sqlite:///abs/agents.db`` -> ``/abs/agents.db`` (the path part of the URL, as the store
    reads it)."""
    return Path(unquote(urlsplit(url).path))


_PLACEHOLDER = re.compile(r"\?")
_PG_CACHE: dict[str, str] = {}


def _pg_sql(text: str) -> str:
    out = _PG_CACHE.get(text)
    if out is None:
        out = _PLACEHOLDER.sub("%s", text).replace("INSERT OR IGNORE", "INSERT")
        _PG_CACHE[text] = out
    return out


@dataclass(slots=True)
class _Submission:
    ops: Sequence[Op]
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[None] | None
    done: threading.Event | None
    fence: Fence = None
    error: BaseException | None = None


class GroupCommit:
    """The single writer: batches submissions into one fsync'd transaction.

    :meth:`submit` queues ops and returns a future that resolves once they are durable (or fails
    with :class:`Fenced` when ``fence`` is no longer current, module docstring). While one
    transaction commits, later submissions wait in the queue and go together in the next one, so
    the number of fsyncs per second stays bounded while records per second grows with concurrency.
    A batch that fails is retried one submission at a time, so one bad write fails only its own
    future.
    """

    def __init__(self, db: Database, *, max_batch: int = 4096) -> None:
        self._db = db
        self._queue: deque[_Submission] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._max_batch = max_batch
        self.batches = 0
        self.records = 0
        self._thread = threading.Thread(target=self._run, name="agent-journal-writer", daemon=True)
        self._thread.start()

    def submit(self, ops: Sequence[Op], fence: Fence = None) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._closed:
                raise Unavailable("agent runtime: the journal writer is closed")
            self._queue.append(_Submission(ops, loop, future, None, fence))
            self._cond.notify()
        return future

    def submit_sync(self, ops: Sequence[Op], timeout: float = 30.0, fence: Fence = None) -> None:
        """Like :meth:`submit`, blocking; raises what the commit raised."""
        done = threading.Event()
        sub = _Submission(ops, None, None, done, fence)
        with self._cond:
            self._queue.append(sub)
            self._cond.notify()
        if not done.wait(timeout):
            raise Unavailable("agent runtime: the journal writer did not commit in time")
        if sub.error is not None:
            raise sub.error

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        conn: Any = self._db.writer_connection()
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closed:
                        self._cond.wait()
                    if not self._queue and self._closed:
                        return
                    batch: list[_Submission] = []
                    while self._queue and len(batch) < self._max_batch:
                        batch.append(self._queue.popleft())
                try:
                    self._write(conn, batch)
                    results: list[BaseException | None] = [None] * len(batch)
                except Exception:
                    again: list[BaseException | None] | None = None
                    while again is None and lost(conn):
                        conn = self._reconnect(conn)
                        if conn is None:  # closed while the database was away
                            gone = Unavailable("agent runtime: the journal writer is closed")
                            for sub in batch:
                                _resolve(sub, gone)
                            return
                        again = self._write_again(conn, batch)
                    results = again if again is not None else self._one_by_one(conn, batch)
                self.batches += 1
                for sub, error in zip(batch, results, strict=True):
                    _resolve(sub, error)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def _one_by_one(self, conn: Any, batch: Sequence[_Submission]) -> list[BaseException | None]:
        """A failed batch, one submission at a time: one bad write fails only its own future."""
        results: list[BaseException | None] = []
        for sub in batch:
            try:
                self._write(conn, [sub])
                results.append(None)
            except Exception as exc:
                if isinstance(exc, Fenced):
                    # said here: the instance's turn may be cancelled meanwhile (its lease
                    # tick noticed too), and nobody waits on the refusal
                    logger.warning("agent journal writer: %s", exc)
                results.append(exc)
        return results

    def _reconnect(self, conn: Any) -> Any:
        """A new connection once the database answers again (backoff up to 2 s), or None when
        the writer is closed meanwhile."""
        with contextlib.suppress(Exception):
            conn.close()
        delay = 0.05
        while True:
            try:
                fresh = self._db.writer_connection()
                logger.warning("agent journal writer: the database connection was lost; reopened")
                return fresh
            except Unavailable as exc:
                logger.warning("agent journal writer: %s; retrying in %.2fs", exc.message, delay)
            with self._cond:
                if self._closed:
                    return None
                self._cond.wait(delay)
            delay = min(delay * 2, 2.0)

    def _write_again(
        self, conn: Any, batch: Sequence[_Submission]
    ) -> list[BaseException | None] | None:
        """The batch whose commit lost its connection, on a new one (module docstring: a key
        violation means the first commit landed); None when this connection is lost too."""
        try:
            self._write(conn, batch)
        except Exception as exc:
            if type(exc).__name__ == "UniqueViolation":
                logger.warning("agent journal writer: the lost commit had landed")
                return [None] * len(batch)
            if lost(conn):
                return None
            return self._one_by_one(conn, batch)
        return [None] * len(batch)

    def _write(self, conn: Any, batch: Sequence[_Submission]) -> None:
        sql = self._db.sql
        with self._db.transaction(conn):
            self._check_fences(conn, batch)
            for sub in batch:
                for text, params in sub.ops:
                    conn.execute(sql(text), params)
        self.records += sum(len(s.ops) for s in batch)

    def _check_fences(self, conn: Any, batch: Sequence[_Submission]) -> None:
        """Inside the transaction: every fenced submission's token is its shard's current one.

        SQLite's ``BEGIN IMMEDIATE`` already serialises every writer of the file; PostgreSQL's
        ``FOR SHARE`` makes a new owner's claim of the shard wait until this transaction ends.
        Shards are checked in ascending order, as claims take them (no deadlock).
        """
        wanted: dict[int, set[int]] = {}
        for sub in batch:
            if sub.fence is not None:
                wanted.setdefault(sub.fence[0], set()).add(sub.fence[1])
        if not wanted:
            return
        query = _TOKEN if self._db.dialect == "sqlite" else _pg_sql(_TOKEN) + " FOR SHARE"
        for shard in sorted(wanted):
            row = conn.execute(query, (shard,)).fetchone()
            current = None if row is None else int(row[0])
            for token in wanted[shard]:
                if token != current:
                    raise Fenced(shard, token, current)


def lost(conn: Any) -> bool:
    """Whether ``conn`` (psycopg) lost its server; SQLite connections are never lost."""
    return bool(getattr(conn, "closed", False) or getattr(conn, "broken", False))


def _resolve(sub: _Submission, error: BaseException | None) -> None:
    if sub.done is not None:
        sub.error = error
        sub.done.set()
        return
    assert sub.loop is not None and sub.future is not None
    future = sub.future

    def _set() -> None:
        if future.done():
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
        sub.loop.call_soon_threadsafe(_set)


def now_wall() -> float:
    return time.time()
