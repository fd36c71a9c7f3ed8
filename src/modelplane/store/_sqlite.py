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
* ``mp_allowances(pool, holder, slot, used, settled, granted, expires_at)`` — slices of per-window limits
  (:mod:`~modelplane.store._allowances`).

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
from modelplane.store._pool import Pool
from modelplane.store._sql import Connection, Dialect
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
CREATE TABLE IF NOT EXISTS mp_allowances (
    pool TEXT NOT NULL,
    holder TEXT NOT NULL,
    slot INTEGER NOT NULL,
    used REAL NOT NULL,
    settled REAL NOT NULL,
    granted REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (pool, holder)
);
-- the empty store is version 1, so that no list ever reports 0 ("watch from now")
INSERT OR IGNORE INTO mp_meta (key, value) VALUES ('compacted', 1);
INSERT OR IGNORE INTO mp_meta (key, value) VALUES ('schema', 1);
"""

_COMPACTED = "SELECT value FROM mp_meta WHERE key = 'compacted'"
# the current version is the newest event, or the compacted horizon when there is none
_CURRENT_RV = f"SELECT coalesce((SELECT max(rv) FROM mp_events), ({_COMPACTED}))"


class SQLiteDialect(Dialect):
    """SQLite's part of the SQL flow: the version is read from the events table (no counter row
    is written per change) under the file's write lock."""

    begin_read = "BEGIN"  # in WAL mode, one snapshot from the first read to COMMIT
    current_rv_sql = _CURRENT_RV
    compacted_sql = _COMPACTED
    set_compacted_sql = "UPDATE mp_meta SET value = ? WHERE key = 'compacted'"

    def begin_write(self, conn: Connection) -> tuple[int, int]:
        # IMMEDIATE takes the write lock now, so every process's writers queue here, before
        # they read the version they build on
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute(f"{_CURRENT_RV}, ({_COMPACTED})").fetchone()
        return int(row[0]), int(row[1])


#: stateless, so one serves every store
DIALECT = SQLiteDialect()


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
        self.dialect = DIALECT
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
    def _connection(self, *, write: bool) -> Iterator[Connection]:
        if not write:
            try:
                with self._readers.connection() as conn:
                    yield conn
            except sqlite3.Error as exc:
                raise self._unavailable(exc) from None
            return
        conn = self._writer
        with self._writer_lock:
            try:
                yield conn
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    # the original error is the one worth reporting
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise self._unavailable(exc) from None

    def _close_backend(self) -> None:
        self._readers.close()
        with self._writer_lock:
            self._writer.close()
