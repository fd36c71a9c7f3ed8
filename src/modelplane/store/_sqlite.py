"""The embedded backend: one SQLite file, shared by the processes of one machine.

Layout (tables are prefixed ``mp_`` so that other subsystems may keep their own in the same file):

* ``mp_objects(kind, namespace, name, rv, data)`` — the current objects; ``data`` is the JSON text
  with ``metadata.resourceVersion`` already inside, so a read is one parse.
* ``mp_events(rv INTEGER PRIMARY KEY, type, kind, namespace, name, object, prev_labels)`` — the
  history that watches replay; the current version is ``max(rv)`` (or the compacted horizon when
  the table is empty), so no counter row is written per change. ``prev_labels`` (JSON) holds the
  object's labels before the change when they differ from its labels after, else NULL; a database
  from before that column gets it added on open (its old rows read as "labels unchanged").
* ``mp_meta(key, value)`` — the compacted horizon and the schema version.
* ``mp_leases(name, holder, expires_at, transitions)``.

Concurrency: the file is in WAL mode, so readers (a small pool of connections) never wait for the
writer. Writes go through one connection per process under a lock, each in ``BEGIN IMMEDIATE``:
SQLite's own write lock then serialises the writers of every process on the file, which is what
makes versions dense and committed in order. A process sees the writes of others through the
watch poller, which reads the events table every ``poll_interval`` (50 ms by default).

Durability: a write returns only after COMMIT. With ``synchronous=NORMAL`` (the default here) a
commit in WAL mode is in the operating system's hands before the call returns, so killing the
process at any instant (kill -9, a crash, an OOM kill) loses nothing acknowledged; what NORMAL
gives up is the last commits before a *power loss or kernel crash* (the WAL is fsynced at
checkpoints, not at each commit), and the database stays consistent either way.
``synchronous=FULL`` (``?synchronous=full`` in the URL) fsyncs the WAL at every commit and also
survives power loss, at a cost measured in ``docs/benchmarks.md`` (Store section: 1,300-3,800
updates/s against 7,300-18,000 with NORMAL on the reference machine). For shared or
power-sensitive deployments use PostgreSQL, which fsyncs every commit by default.

URL: ``sqlite:///absolute/path.db`` or a plain path, with optional query parameters
``timeout`` (seconds a writer waits for another process's lock before Unavailable, default 5) and
``synchronous`` (``normal`` or ``full``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modelplane.api.errors import Unavailable
from modelplane.store._codec import Codec
from modelplane.store._contract import EventType, Lease
from modelplane.store._hub import Record, record_from_row
from modelplane.store._pool import Pool
from modelplane.store._store import DEFAULT_HISTORY, DEFAULT_WATCH_BUFFER, BaseStore

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mp_objects (
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    rv INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
CREATE TABLE IF NOT EXISTS mp_events (
    rv INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    object TEXT NOT NULL,
    prev_labels TEXT
);
CREATE TABLE IF NOT EXISTS mp_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS mp_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL,
    transitions INTEGER NOT NULL
);
-- the empty store is version 1, so that no list ever reports 0 ("watch from now")
INSERT OR IGNORE INTO mp_meta (key, value) VALUES ('compacted', 1);
INSERT OR IGNORE INTO mp_meta (key, value) VALUES ('schema', 1);
"""

_CURRENT_RV = (
    "SELECT coalesce((SELECT max(rv) FROM mp_events),"
    " (SELECT value FROM mp_meta WHERE key = 'compacted'))"
)
_COMPACTED = "SELECT value FROM mp_meta WHERE key = 'compacted'"


class _Rows:
    """Reader and Writer over one connection (the caller owns the transaction)."""

    __slots__ = ("conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # -- Reader --
    def current_rv(self) -> int:
        return int(self.conn.execute(_CURRENT_RV).fetchone()[0])

    def compacted(self) -> int:
        return int(self.conn.execute(_COMPACTED).fetchone()[0])

    def get_raw(self, kind: str, namespace: str, name: str) -> str | None:
        row = self.conn.execute(
            "SELECT data FROM mp_objects WHERE kind = ? AND namespace = ? AND name = ?",
            (kind, namespace, name),
        ).fetchone()
        return None if row is None else str(row[0])

    def rows(
        self, kind: str, namespace: str | None, after: tuple[str, str] | None, limit: int | None
    ) -> list[tuple[str, str, str]]:
        sql = "SELECT namespace, name, data FROM mp_objects WHERE kind = ?"
        args: list[object] = [kind]
        if namespace is not None:
            sql += " AND namespace = ?"
            args.append(namespace)
        if after is not None:
            sql += " AND (namespace, name) > (?, ?)"
            args.extend(after)
        sql += " ORDER BY namespace, name"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return self.conn.execute(sql, args).fetchall()

    def lease(self, name: str) -> Lease | None:
        row = self.conn.execute(
            "SELECT holder, expires_at, transitions FROM mp_leases WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else Lease(name, row[0], float(row[1]), int(row[2]))

    # -- Writer --
    def next_rv(self) -> int:
        return self.current_rv() + 1

    def put(self, kind: str, namespace: str, name: str, rv: int, raw: str, *, exists: bool) -> None:
        if exists:
            self.conn.execute(
                "UPDATE mp_objects SET rv = ?, data = ? WHERE kind = ? AND namespace = ? AND name = ?",
                (rv, raw, kind, namespace, name),
            )
        else:
            self.conn.execute(
                "INSERT INTO mp_objects (kind, namespace, name, rv, data) VALUES (?, ?, ?, ?, ?)",
                (kind, namespace, name, rv, raw),
            )

    def drop(self, kind: str, namespace: str, name: str) -> None:
        self.conn.execute(
            "DELETE FROM mp_objects WHERE kind = ? AND namespace = ? AND name = ?",
            (kind, namespace, name),
        )

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
        self.conn.execute(
            "INSERT INTO mp_events (rv, type, kind, namespace, name, object, prev_labels)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rv, type_, kind, namespace, name, raw, prev_labels),
        )

    def put_lease(self, lease: Lease, *, exists: bool) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO mp_leases (name, holder, expires_at, transitions)"
            " VALUES (?, ?, ?, ?)",
            (lease.name, lease.holder, lease.expires_at, lease.transitions),
        )

    def compact(self, horizon: int) -> None:
        self.conn.execute("DELETE FROM mp_events WHERE rv <= ?", (horizon,))
        self.conn.execute("UPDATE mp_meta SET value = ? WHERE key = 'compacted'", (horizon,))


class SQLiteStore(BaseStore):
    """The Store on a SQLite file (see the module docstring for layout and durability)."""

    def __init__(
        self,
        url: str,
        path: Path,
        *,
        timeout: float = 5.0,
        synchronous: str = "normal",
        history: int = DEFAULT_HISTORY,
        watch_buffer: int = DEFAULT_WATCH_BUFFER,
        poll_interval: float = 0.05,
        codec: Codec | None = None,
    ) -> None:
        super().__init__(
            url,
            history=history,
            watch_buffer=watch_buffer,
            poll_interval=poll_interval,
            name=path.name,
            codec=codec,
        )
        self.path = path
        self.timeout = timeout
        if synchronous.lower() not in ("normal", "full"):
            raise Unavailable(
                f"synchronous={synchronous!r} in the database URL is not supported: use normal"
                " (survives process crashes) or full (also survives power loss)"
            )
        self._synchronous = synchronous.upper()
        self._writer_lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Unavailable(
                f"cannot create the folder {path.parent} for the database ({exc.strerror or exc}):"
                " choose a writable place with MODELPLANE_HOME or MODELPLANE_DATABASE_URL"
            ) from None
        self._writer = self._connect()
        try:
            self._init_schema()
        except BaseException:
            self._writer.close()
            raise
        self._readers: Pool[sqlite3.Connection] = Pool(
            self._connect, sqlite3.Connection.close, size=16, wait=30.0, what=str(path)
        )

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # a pooled connection moves between threads
                cached_statements=256,
            )
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("PRAGMA cache_size = -32000")  # 32 MB of page cache per connection
            return conn
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            raise self._unavailable(exc) from None

    def _init_schema(self) -> None:
        conn = self._writer
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise Unavailable(
                    f"the database {self.path} cannot use write-ahead logging (journal mode"
                    f" {mode}): put it on a local file system"
                )
            try:
                # executescript commits on its own terms, so the transaction is part of the script
                conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
                self._add_missing_columns()
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            version = conn.execute("SELECT value FROM mp_meta WHERE key = 'schema'").fetchone()[0]
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None
        if int(version) > SCHEMA_VERSION:
            raise Unavailable(
                f"the database {self.path} was written by a newer Modelplane (schema {version},"
                f" this one knows {SCHEMA_VERSION}): upgrade Modelplane"
            )

    def _add_missing_columns(self) -> None:
        """Upgrade a database made before ``mp_events.prev_labels`` existed (NULL: unchanged)."""
        conn = self._writer
        columns = {row[1] for row in conn.execute("PRAGMA table_info(mp_events)")}
        if "prev_labels" in columns:
            return
        conn.execute("BEGIN IMMEDIATE")  # another process may be adding it right now
        columns = {row[1] for row in conn.execute("PRAGMA table_info(mp_events)")}
        if "prev_labels" not in columns:
            conn.execute("ALTER TABLE mp_events ADD COLUMN prev_labels TEXT")
        conn.execute("COMMIT")

    def _unavailable(self, exc: sqlite3.Error) -> Unavailable:
        """Turn a SQLite error into a sentence naming the file and what to do."""
        message = str(exc)
        code = getattr(exc, "sqlite_errorname", "")
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in message:
            return Unavailable(
                f"the database {self.path} is locked: another process has held it for more than"
                f" {self.timeout:g} s; wait for it to finish, or stop the other program using this"
                " file, then retry",
                retry_after=1,
            )
        if code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in message:
            return Unavailable(
                f"{self.path} is not a usable database ({message}): the file is corrupt or is not"
                " a SQLite database; move it aside (or restore a backup) and start again, which"
                " creates a new empty database"
            )
        if code.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")):
            return Unavailable(
                f"cannot open the database {self.path} for writing ({message}): check that the"
                " folder exists and that this user may write to it, or choose another place with"
                " MODELPLANE_HOME or MODELPLANE_DATABASE_URL"
            )
        if code.startswith("SQLITE_FULL"):
            return Unavailable(f"the disk holding {self.path} is full: free some space and retry")
        return Unavailable(f"the database {self.path} failed: {message}")

    # -- BaseStore primitives ----------------------------------------------------------------

    @contextmanager
    def _reading(self, snapshot: bool = True) -> Iterator[_Rows]:
        try:
            with self._readers.connection() as conn:
                if not snapshot:
                    yield _Rows(conn)
                    return
                conn.execute("BEGIN")  # one snapshot for every statement of this read
                try:
                    yield _Rows(conn)
                finally:
                    conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from None

    @contextmanager
    def _transaction(self) -> Iterator[_Rows]:
        conn = self._writer
        with self._writer_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield _Rows(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    # the original error is the one worth reporting
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise self._unavailable(exc) from None

    def _read_events(self, after: int, limit: int) -> tuple[list[Record], int]:
        with self._reading(snapshot=False) as r:
            rows = r.conn.execute(
                "SELECT rv, type, kind, namespace, object, prev_labels FROM mp_events"
                " WHERE rv > ? ORDER BY rv LIMIT ?",
                (after, limit),
            ).fetchall()
            horizon = r.compacted()
        return [record_from_row(*row) for row in rows], horizon

    def _close_backend(self) -> None:
        self._readers.close()
        with self._writer_lock:
            self._writer.close()
