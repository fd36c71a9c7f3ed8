"""The shared backend: PostgreSQL, for many processes on many machines.

Tables are created on open in the connection's current schema (the first existing schema of its
``search_path``; ``?options=-csearch_path=myschema`` in the URL chooses one), so several
installations can share one database in separate schemas. Text columns that order objects use the
``"C"`` collation, so paging order is byte order as in the SQLite backend.

Versions: ``mp_meta`` holds one row with the current version. Every write transaction starts by
locking that row (``SELECT ... FOR UPDATE``), reads what it needs, and commits the object, its event
and the new counter together. The lock serialises writers of every process, and PostgreSQL makes a
commit visible before it releases the transaction's locks; so a version is only handed out after
every lower one is visible, and a reader of "events with rv > N" can never see N+2 while N+1 is
still to come. The write statements, the ``pg_notify`` and the COMMIT go to the server in one
pipeline (three round trips per write in all). The flow itself is shared with SQLite
(:mod:`modelplane.store._sql`); :class:`PostgresDialect` is what is PostgreSQL's own.

``mp_events.prev_labels`` holds the object's labels before the change (JSON) when they differ
from its labels after, else NULL; a schema from before that column gets it on open.

Watches are woken by ``LISTEN``/``NOTIFY`` on a channel named after the schema (a listener thread
per store, started with the first watch), with a fallback poll every second in case a notification
is lost (a reconnect, a restart of the server). Durability is PostgreSQL's: with the default
``synchronous_commit=on`` an acknowledged write is on disk.

Connections come from a small pool of our own (up to 16, made on demand); a connection that failed
is dropped, not reused.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from modelplane.api.errors import Unavailable
from modelplane.store._codec import Codec
from modelplane.store._pool import Pool
from modelplane.store._sql import Connection, Dialect, Statement
from modelplane.store._store import DEFAULT_HISTORY, DEFAULT_WATCH_BUFFER, BaseStore

log = logging.getLogger("modelplane.store")

SCHEMA_VERSION = 1

Conn = psycopg.Connection[Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mp_objects (
    kind text COLLATE "C" NOT NULL,
    namespace text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    rv bigint NOT NULL,
    data text NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS mp_events (
    rv bigint PRIMARY KEY,
    type text NOT NULL,
    kind text NOT NULL,
    namespace text NOT NULL,
    name text NOT NULL,
    object text NOT NULL,
    prev_labels text
);
CREATE TABLE IF NOT EXISTS mp_meta (
    id int PRIMARY KEY CHECK (id = 1),
    rv bigint NOT NULL,
    compacted bigint NOT NULL,
    schema_version int NOT NULL
);
-- the empty store is version 1, so that no list ever reports 0 ("watch from now")
INSERT INTO mp_meta (id, rv, compacted, schema_version) VALUES (1, 1, 1, 1)
    ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS mp_leases (
    name text PRIMARY KEY,
    holder text NOT NULL,
    expires_at double precision NOT NULL,
    transitions bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS mp_allowances (
    pool text NOT NULL,
    holder text NOT NULL,
    slot bigint NOT NULL,
    used double precision NOT NULL,
    settled double precision NOT NULL,
    granted double precision NOT NULL,
    expires_at double precision NOT NULL,
    PRIMARY KEY (pool, holder)
);
"""


#: how long a session of ours may sit in an open transaction before the server ends it: ours
#: last milliseconds, so only a client cut off by the network (or stopped) ever reaches it, and
#: its row locks (a lease, a shard's fencing token) must not stall every other process
IDLE_IN_TRANSACTION_TIMEOUT = "10s"


_C = TypeVar("_C", bound="psycopg.Connection[Any]")


def guard_session(conn: _C) -> _C:
    """``conn`` (an autocommit psycopg connection) with the session settings every process of
    ours uses on PostgreSQL: :data:`IDLE_IN_TRANSACTION_TIMEOUT`."""
    conn.execute(f"SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_TIMEOUT}'")
    return conn


class PostgresDialect(Dialect):
    """PostgreSQL's part of the SQL flow: the version is a counter row, locked by every writer and
    written back at commit with a NOTIFY on ``channel``; the writes go as one pipeline."""

    placeholder = "%s"
    begin_read = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
    current_rv_sql = "SELECT rv FROM mp_meta WHERE id = 1"
    compacted_sql = "SELECT compacted FROM mp_meta WHERE id = 1"
    set_compacted_sql = "UPDATE mp_meta SET compacted = ? WHERE id = 1"

    def __init__(self, channel: str) -> None:
        super().__init__()
        self.channel = channel
        self._bump = self.q("UPDATE mp_meta SET rv = ? WHERE id = 1")
        self._notify = self.q("SELECT pg_notify(?, ?)")

    def begin_write(self, conn: Connection) -> tuple[int, int]:
        # BEGIN and the lock in one round trip (a simple query may hold two statements)
        cur = cast(Conn, conn).execute(
            "BEGIN; SELECT rv, compacted FROM mp_meta WHERE id = 1 FOR UPDATE"
        )
        cur.nextset()
        row = cur.fetchone()
        assert row is not None, "mp_meta lost its row"
        return int(row[0]), int(row[1])

    def versioned(self, rv: int) -> list[Statement]:
        return [(self._bump, (rv,)), (self._notify, (self.channel, str(rv)))]

    def send(self, conn: Connection, statements: list[Statement]) -> None:
        pg = cast(Conn, conn)
        with pg.pipeline():  # the writes, the counter, the NOTIFY and COMMIT in one round trip
            for statement, args in statements:
                pg.execute(statement, args)  # type: ignore[arg-type]
            pg.execute("COMMIT")


class PostgresStore(BaseStore):
    """The Store on PostgreSQL (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        history: int = DEFAULT_HISTORY,
        watch_buffer: int = DEFAULT_WATCH_BUFFER,
        poll_interval: float = 1.0,
        connect_timeout: float = 5.0,
        codec: Codec | None = None,
    ) -> None:
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise Unavailable(
                f"the PostgreSQL URL is not valid ({exc}): write"
                " postgresql://user@host:port/database"
            ) from None
        host = str(params.get("host") or "localhost")
        self._where = (
            f"{host}:{params.get('port') or 5432} (database {params.get('dbname') or '?'})"
        )
        super().__init__(
            url,
            history=history,
            watch_buffer=watch_buffer,
            poll_interval=poll_interval,
            name=host,
            codec=codec,
        )
        self._connect_kwargs: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in params:
            self._connect_kwargs["connect_timeout"] = max(1, round(connect_timeout))
        self._pool: Pool[Conn] = Pool(
            self._connect, Conn.close, size=16, wait=30.0, what=f"PostgreSQL at {self._where}"
        )
        self.schema, self.channel = self._init_schema()
        self.dialect = PostgresDialect(self.channel)
        self._listener: threading.Thread | None = None
        self._listening = threading.Event()
        self._stop = threading.Event()

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> Conn:
        try:
            return guard_session(psycopg.connect(self.url, **self._connect_kwargs))
        except psycopg.Error as exc:
            raise Unavailable(
                f"cannot reach PostgreSQL at {self._where}: {_first_line(exc)}; check that the"
                " server is running and reachable and that the database URL"
                " (MODELPLANE_DATABASE_URL) is right",
                retry_after=5,
            ) from None

    def _unavailable(self, exc: psycopg.Error) -> Unavailable:
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return Unavailable(
                f"lost the connection to PostgreSQL at {self._where}: {_first_line(exc)}; retry"
                " when the server is back",
                retry_after=5,
            )
        return Unavailable(f"PostgreSQL at {self._where} refused the request: {_first_line(exc)}")

    def _init_schema(self) -> tuple[str, str]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                schema = conn.execute("SELECT current_schema()").fetchone()
                if schema is None or schema[0] is None:
                    raise Unavailable(
                        f"PostgreSQL at {self._where}: the search_path names no existing schema;"
                        " create the schema first, or fix options=-csearch_path=... in the URL"
                    )
                name = str(schema[0])
                # processes opening a fresh schema at once must not race on CREATE TABLE
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext('modelplane.store.' || %s))", (name,)
                )
                conn.execute(_SCHEMA)
                # a schema made before mp_events.prev_labels existed (NULL: labels unchanged);
                # looked up first, as ALTER TABLE locks the table even when there is nothing to do
                has_prev = conn.execute(
                    "SELECT 1 FROM information_schema.columns WHERE table_schema = %s"
                    " AND table_name = 'mp_events' AND column_name = 'prev_labels'",
                    (name,),
                ).fetchone()
                if has_prev is None:
                    conn.execute("ALTER TABLE mp_events ADD COLUMN IF NOT EXISTS prev_labels text")
                version = conn.execute("SELECT schema_version FROM mp_meta WHERE id = 1").fetchone()
        except psycopg.Error as exc:
            raise self._unavailable(exc) from None
        if version is not None and int(version[0]) > SCHEMA_VERSION:
            raise Unavailable(
                f"the schema {name} at {self._where} was written by a newer Modelplane (schema"
                f" {version[0]}, this one knows {SCHEMA_VERSION}): upgrade Modelplane"
            )
        channel = "modelplane_" + hashlib.sha1(name.encode()).hexdigest()[:20]
        return name, channel

    # -- BaseStore primitives ----------------------------------------------------------------

    @contextmanager
    def _connection(self, *, write: bool) -> Iterator[Connection]:
        # readers and writers share the pool: a writer's lock is the counter row, not a connection
        try:
            with self._pool.connection() as conn:
                yield cast(Connection, conn)
        except psycopg.Error as exc:
            raise self._unavailable(exc) from None

    def _start_watching(self) -> None:
        if self._listener is None:
            with self._write_lock:
                if self._listener is None:
                    self._listener = threading.Thread(
                        target=self._listen, name="modelplane-listen", daemon=True
                    )
                    self._listener.start()
        # a NOTIFY sent before LISTEN took effect would be lost: wait until it has
        self._listening.wait(timeout=5)

    def _listen(self) -> None:
        failures = 0
        while not self._stop.is_set():
            conn: Conn | None = None
            try:
                conn = psycopg.connect(self.url, **self._connect_kwargs)
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                self._listening.set()
                failures = 0
                self._hub.wake()  # whatever was committed while we were not listening
                while not self._stop.is_set():
                    for note in conn.notifies(timeout=1.0):
                        if self._stop.is_set():
                            break
                        self._hub.wake(int(note.payload) if note.payload.isdigit() else None)
            except psycopg.Error as exc:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("cannot listen for changes at %s: %s", self._where, exc)
                self._stop.wait(min(5.0, 0.2 * failures))
            finally:
                if conn is not None:
                    conn.close()

    def _close_backend(self) -> None:
        self._stop.set()
        if self._listener is not None:
            try:  # wake the listener out of its wait at once
                with self._pool.connection() as conn:
                    conn.execute("SELECT pg_notify(%s, 'close')", (self.channel,))
            except Exception:
                pass  # it also notices within a second by itself
            self._listener.join(timeout=5)
        self._pool.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
