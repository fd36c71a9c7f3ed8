"""The audit log: every decision, appended once, hash-chained, in the platform's database.

Implements :class:`~modelplane.policy.AuditSink`. One table, ``audit_log``, in the database the
store uses (the same SQLite file, or the same PostgreSQL database); a second, ``audit_anchor``,
holds the link to what retention pruned.

The chain: record ``n`` holds ``sequence = n``, the fields of its :class:`AuditEvent`,
``prev_hash`` (the ``hash`` of record ``n - 1``; 64 zeros for the first record) and
``hash = sha256(prev_hash + canonical JSON of the record)`` where the canonical JSON is the event's
fields and the sequence, keys sorted, no spaces (:func:`record_hash`). Editing, removing or
reordering a record breaks a hash or a link, and :meth:`AuditLog.verify` names the first record
where that happens.

Appends are asynchronous: :meth:`AuditLog.append` queues the event and returns (a write of the
API does not wait for the log); one writer thread per process commits what is queued in one
transaction per batch. A batch takes the log's lock first (SQLite's write lock with
``BEGIN IMMEDIATE``; a PostgreSQL advisory transaction lock), reads the tail and chains onto it,
so processes appending to one database at once keep one linear chain. :meth:`AuditLog.close`
(and :meth:`AuditLog.flush`) waits until every queued event is committed, so a clean stop loses
no acknowledged decision; a kill -9 may lose the decisions of the last ``linger`` (50 ms).

Retention (``retention`` seconds): records older than that are deleted by the writer, at start
and then hourly; the ``hash`` and ``sequence`` of the last deleted record become the anchor, and
:meth:`AuditLog.verify` starts from it, so a pruned log still verifies.

OpenTelemetry: with a ``logger_provider`` (or ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, which makes
one with the OTLP/HTTP exporter), every committed record is also emitted as one OTel log record
(body: the decision in words; attributes ``modelplane.audit.*``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from modelplane.api import parse_duration
from modelplane.api.errors import BadRequest, Unavailable
from modelplane.policy._audit import AuditEvent
from modelplane.store import backend_of, parse_sqlite_url, redact_url

logger = logging.getLogger("modelplane.policy.audit")

#: the ``prev_hash`` of the first record ever appended
GENESIS = "0" * 64
#: how often the writer applies the retention setting
PRUNE_INTERVAL = 3600.0
#: the advisory lock key that serialises appends on PostgreSQL
_PG_LOCK = 727_275

_EVENT_FIELDS = tuple(f.name for f in fields(AuditEvent))
#: the event's fields with a column of their own (filters read them); fields added to
#: AuditEvent later are kept in ``extra`` (JSON), and the hash covers them all alike
_STORED = (
    "time", "category", "principal", "action", "resource", "decision", "namespace", "policies",
    "reasons", "policy_version", "arguments_digest",
)  # fmt: skip
_COLUMNS = ("sequence", *_STORED, "extra", "prev_hash", "hash")
_LISTS = frozenset({"policies", "reasons"})
_EXTRA = tuple(name for name in _EVENT_FIELDS if name not in _STORED)

_DDL = """
CREATE TABLE IF NOT EXISTS audit_log (
  sequence BIGINT PRIMARY KEY, time TEXT NOT NULL, category TEXT NOT NULL,
  principal TEXT NOT NULL, action TEXT NOT NULL, resource TEXT NOT NULL, decision TEXT NOT NULL,
  namespace TEXT NOT NULL, policies TEXT NOT NULL, reasons TEXT NOT NULL,
  policy_version TEXT NOT NULL, arguments_digest TEXT NOT NULL, extra TEXT NOT NULL,
  prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (time);
CREATE TABLE IF NOT EXISTS audit_anchor (
  id INTEGER PRIMARY KEY, sequence BIGINT NOT NULL, hash TEXT NOT NULL)
"""

_TAIL = "SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1"
_ANCHOR = "SELECT sequence, hash FROM audit_anchor WHERE id = 1"
_INSERT = (
    f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
)


def canonical_json(sequence: int, event: AuditEvent) -> str:
    """The record as its hash covers it: the event's fields and ``sequence``, keys sorted, no
    spaces, UTF-8 (what ``json.dumps(..., sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` writes; orjson writes the same, faster)."""
    record: dict[str, Any] = {name: getattr(event, name) for name in _EVENT_FIELDS}
    record["sequence"] = sequence
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


def record_hash(prev_hash: str, sequence: int, event: AuditEvent) -> str:
    """``sha256(prev_hash + canonical JSON of the record)``, hex."""
    data = (prev_hash + canonical_json(sequence, event)).encode()
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One stored record: its place in the chain, the event, and the two hashes."""

    sequence: int
    event: AuditEvent
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """The record as the API shows it (camelCase keys, as the rest of the API)."""
        e = self.event
        return {
            "sequence": self.sequence,
            "time": e.time,
            "category": e.category,
            "principal": e.principal,
            "action": e.action,
            "resource": e.resource,
            "decision": e.decision,
            "namespace": e.namespace,
            "policies": list(e.policies),
            "reasons": list(e.reasons),
            "policyVersion": e.policy_version,
            "argumentsDigest": e.arguments_digest,
            "onBehalfOf": e.on_behalf_of,
            "prevHash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class Verification:
    """What :meth:`AuditLog.verify` found: how many records hold, and the first that does not."""

    records: int
    #: the sequence of the first record whose hash or link does not hold; None: all hold
    first_bad: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.first_bad is None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verified": self.ok, "records": self.records}
        if not self.ok:
            out["firstBad"] = {"sequence": self.first_bad, "problem": self.problem}
        return out


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters of a read of the log; ``after`` pages (records with a greater sequence)."""

    principal: str | None = None
    namespace: str | None = None
    category: str | None = None
    decision: str | None = None
    #: RFC 3339 UTC bounds, as :func:`time_bound` writes them
    since: str | None = None
    until: str | None = None
    after: int = 0
    limit: int = 100


# -- time and duration ------------------------------------------------------------------------------


def parse_retention(text: str) -> float:
    """Seconds of a retention setting: ``"30d"``, ``"12h"``, ``"7d12h"`` (days, then a Go-style
    duration). Raises ValueError saying what to write."""
    match = re.fullmatch(r"(?:(\d+)d)?(.*)", text.strip())
    days, rest = (match[1], match[2]) if match else (None, text)
    try:
        seconds = (int(days) * 86400 if days else 0) + (parse_duration(rest) if rest else 0)
    except ValueError:
        seconds = -1
    if seconds <= 0 or (not days and not rest):
        raise ValueError(
            f"{text!r} is not a retention period; write a positive duration such as 30d, 7d12h"
            " or 36h (units: d, h, m, s)"
        )
    return float(seconds)


def _format(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def time_bound(text: str, field: str, *, now: float | None = None) -> str:
    """``since``/``until`` as the log stores times: an RFC 3339 time, or a duration before now
    (``30m``, ``2h``, ``7d``). BadRequest naming ``field`` for anything else."""
    text = text.strip()
    try:
        seconds = parse_retention(text)
    except ValueError:
        pass
    else:
        return _format(datetime.fromtimestamp((now or time.time()) - seconds, UTC))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(
            f"{field}={text!r} is neither a time nor a duration: write an RFC 3339 time"
            " (2026-01-31T12:00:00Z) or a duration before now (30m, 2h, 7d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _format(moment)


# -- the database -----------------------------------------------------------------------------------


#: how long opening the SQLite log waits for another process that holds it
_OPEN_WAIT = 30.0


def _open_sqlite(path: Path, synchronous: str) -> Any:
    """A connection to the log's SQLite file with its tables, waiting out other processes.

    Switching a new file to WAL and creating the tables need the write lock, and SQLite answers
    "database is locked" at once, without its busy handler, when two processes open the same new
    file together (seen under load): the open is retried until ``_OPEN_WAIT`` has passed.
    """
    deadline = time.monotonic() + _OPEN_WAIT
    pause = 0.01
    while True:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            try:  # one write transaction taken up front, so the busy timeout applies to it
                conn.executescript(f"BEGIN IMMEDIATE;{_DDL};COMMIT;")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)  # another process holds the file's lock: a deadline bounds the wait
        pause = min(pause * 2, 0.5)


class _Database:
    """One connection to the log's tables and the SQL both backends share (``?`` placeholders)."""

    def __init__(self, url: str) -> None:
        self.backend = backend_of(url)
        self._lock = threading.Lock()
        if self.backend == "sqlite":
            where = parse_sqlite_url(url)
            try:
                where.path.parent.mkdir(parents=True, exist_ok=True)
                conn: Any = _open_sqlite(where.path, where.synchronous)
            except (OSError, sqlite3.Error) as exc:
                raise Unavailable(
                    f"audit log: cannot open the SQLite database {where.path}: {exc}; check the"
                    " path and its permissions"
                ) from None
        else:
            import psycopg

            try:
                conn = psycopg.connect(url, autocommit=True)
                with conn.transaction():
                    conn.execute(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
                    for statement in _DDL.split(";"):
                        conn.execute(statement)
            except psycopg.Error as exc:
                raise Unavailable(
                    f"audit log: cannot use PostgreSQL at {redact_url(url)}: {exc}; check"
                    " --database-url"
                ) from None
        self._conn = conn

    def _sql(self, text: str) -> str:
        return text if self.backend == "sqlite" else text.replace("?", "%s")

    def rows(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(self._sql(text), params).fetchall())

    @contextmanager
    def locked(self) -> Iterator[_Database]:
        """One write transaction holding the log's lock across processes (appends and prunes)."""
        with self._lock:
            if self.backend == "sqlite":
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
                return
            with self._conn.transaction():
                self._conn.execute(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")
                yield self

    def execute(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A statement inside :meth:`locked` (the lock is held already)."""
        cur = self._conn.execute(self._sql(text), params)
        return list(cur.fetchall()) if cur.description else []

    def execute_many(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        """One statement for many rows, inside :meth:`locked`."""
        if self.backend == "sqlite":
            self._conn.executemany(text, rows)
            return
        with self._conn.cursor() as cur:
            cur.executemany(self._sql(text), rows)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _event_of(row: Sequence[Any]) -> AuditRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    known: dict[str, Any] = {name: values[name] for name in _STORED}
    known["policies"] = tuple(orjson.loads(values["policies"]))
    known["reasons"] = tuple(orjson.loads(values["reasons"]))
    for name, value in orjson.loads(values["extra"]).items():
        if name in _EVENT_FIELDS:
            known[name] = tuple(value) if isinstance(value, list) else value
    event = AuditEvent(**known)
    return AuditRecord(int(values["sequence"]), event, values["prev_hash"], values["hash"])


Tail = tuple[int, str]


def _plan(tail: Tail, events: Sequence[AuditEvent]) -> tuple[list[AuditRecord], list[Any]]:
    """The records (and their rows) ``events`` become when chained after ``tail``."""
    sequence, prev = tail
    records = []
    for event in events:
        sequence += 1
        digest = record_hash(prev, sequence, event)
        records.append(AuditRecord(sequence, event, prev, digest))
        prev = digest
    return records, [_row_values(r) for r in records]


def _chain(
    db: _Database,
    events: Sequence[AuditEvent],
    guess: Tail | None = None,
    planned: tuple[list[AuditRecord], list[Any]] | None = None,
) -> list[AuditRecord]:
    """Append ``events`` after the tail (inside :meth:`_Database.locked`); the records written.

    ``planned``: the records :func:`_plan` made of ``events`` after ``guess`` (the tail this
    process last wrote) before the lock was taken; they are written as they are when ``guess`` is
    still the tail (no other process appended since), so the lock is held for the inserts, not
    for the hashing. Otherwise they are chained again after the real tail."""
    found = db.execute(_TAIL) or db.execute(_ANCHOR)
    tail = (int(found[0][0]), str(found[0][1])) if found else (0, GENESIS)
    records, rows = planned if planned is not None and tail == guess else _plan(tail, events)
    db.execute_many(_INSERT, rows)
    return records


def _row_values(r: AuditRecord) -> tuple[Any, ...]:
    e = r.event
    values: list[Any] = [r.sequence]
    for name in _STORED:
        value = getattr(e, name)
        values.append(orjson.dumps(value).decode() if name in _LISTS else value)
    extra = {name: getattr(e, name) for name in _EXTRA}
    return (*values, orjson.dumps(extra).decode(), r.prev_hash, r.hash)


# -- the log ----------------------------------------------------------------------------------------


class AuditLog:
    """The append-only, hash-chained audit log in the database at ``url`` (see the module
    docstring). One per process: created by the composition root and handed to every part that
    decides (the server's admission, the gateway, the agent runtime, approvals).

    ``retention``: seconds records are kept (None: for ever). ``logger_provider``: an
    OpenTelemetry ``LoggerProvider`` every committed record is emitted to; default one exporting
    over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, else none. ``batch``: the most
    records one transaction commits; ``linger``: how long a queued decision waits for others to
    share its transaction (a flush or close does not wait).
    """

    def __init__(
        self,
        url: str,
        *,
        retention: float | None = None,
        logger_provider: Any = None,
        batch: int = 500,
        linger: float = 0.05,
    ) -> None:
        self.url = url
        self.retention = retention
        self._writes = _Database(url)
        self._reads = _Database(url)
        self._batch = batch
        #: seconds a decision may wait for others to share its transaction
        self.linger = linger
        self._since = 0.0  # when the oldest queued event was queued
        self._flushing = 0  # callers waiting in flush(): commit without lingering
        self._tail: Tail | None = None  # what this process last wrote (see _chain)
        self._otel = _otel_logger(logger_provider)
        self._cond = threading.Condition()
        self._queue: deque[AuditEvent] = deque()
        self._queued = 0  # events ever queued
        self._done = 0  # events ever committed or given up on
        #: events that could not be written (logged as errors): a sink must not raise
        self.lost = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="audit-log", daemon=True)
        self._thread.start()

    # -- appending ----------------------------------------------------------------------------------

    def append(self, event: AuditEvent) -> None:
        """Queue ``event``; the writer commits it shortly (see :meth:`flush`). Never raises."""
        with self._cond:
            if self._closed:
                self.lost += 1
                logger.error("audit log is closed: the %s decision was not recorded", event)
                return
            self._queue.append(event)
            self._queued += 1
            if len(self._queue) == 1:
                self._since = time.monotonic()  # the linger starts with the oldest waiting
                self._cond.notify_all()
            elif len(self._queue) >= self._batch:
                self._cond.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event queued before this call is committed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._queued
            self._flushing += 1
            self._cond.notify_all()
            try:
                while self._done < target:
                    left = deadline - time.monotonic()
                    if left <= 0 or not self._thread.is_alive():
                        return False
                    self._cond.wait(left)
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Commit what is queued, stop the writer and close the database; False if the writer
        did not finish within ``timeout`` (what it had not written is counted in :attr:`lost`)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        finished = not self._thread.is_alive()
        if finished:
            self._writes.close()
        self._reads.close()
        return finished

    def _run(self) -> None:
        next_prune = time.monotonic()
        while True:
            with self._cond:
                self._wait_for_work(next_prune)
                batch = [self._queue.popleft() for _ in range(min(self._batch, len(self._queue)))]
                if self._queue:
                    self._since = time.monotonic()
                stopping = self._closed and not self._queue
            if batch:
                self._commit(batch)
            if self.retention and time.monotonic() >= next_prune:
                self._prune_quietly()
                next_prune = time.monotonic() + min(PRUNE_INTERVAL, self.retention)
            if stopping:
                return

    def _wait_for_work(self, next_prune: float) -> None:
        """Wait (holding the condition) until a batch is due: ``batch`` events queued, the oldest
        queued ``linger`` seconds ago, a flush or close asked for, or retention is due. Lingering
        makes one transaction of many decisions, instead of one per API write."""
        while not self._closed:
            now = time.monotonic()
            waits: list[float] = []
            if self._queue:
                due = self._since + self.linger
                if self._flushing or len(self._queue) >= self._batch or now >= due:
                    return
                waits.append(due - now)
            if self.retention:
                if now >= next_prune:
                    return
                waits.append(next_prune - now)
            self._cond.wait(min(waits) if waits else None)

    def _commit(self, batch: list[AuditEvent]) -> None:
        records: list[AuditRecord] = []
        guess = self._tail
        planned = _plan(guess, batch) if guess is not None else None
        for attempt in range(3):
            try:
                with self._writes.locked() as db:
                    records = _chain(db, batch, guess, planned)
                self._tail = (records[-1].sequence, records[-1].hash)
                break
            except Exception:
                if attempt == 2:
                    logger.exception("audit log: %d decisions could not be recorded", len(batch))
                    with self._cond:
                        self.lost += len(batch)
                    break
                time.sleep(0.2 * (attempt + 1))  # a busy database: back off, then try again
                self._reconnect()
        with self._cond:
            self._done += len(batch)
            self._cond.notify_all()
        for record in records:
            self._export(record)

    def _reconnect(self) -> None:
        """A fresh write connection after a failed commit (the old one may be broken)."""
        try:
            fresh = _Database(self.url)
        except Exception:
            return  # the database is still away: the next attempt uses the old one and says so
        with contextlib.suppress(Exception):
            self._writes.close()
        self._writes = fresh

    def _export(self, record: AuditRecord) -> None:
        if self._otel is None:
            return
        try:
            _emit(self._otel, record)
        except Exception:  # the exporter's trouble must not stop the log
            logger.exception(
                "audit log: exporting record %d to OpenTelemetry failed", record.sequence
            )

    # -- retention ----------------------------------------------------------------------------------

    def prune(self, before: str) -> int:
        """Delete the records older than ``before`` (RFC 3339 UTC); how many. The last deleted
        record's sequence and hash become the anchor the chain is verified from."""
        with self._writes.locked() as db:
            last = db.execute(
                "SELECT sequence, hash FROM audit_log WHERE time < ? ORDER BY sequence DESC"
                " LIMIT 1",
                (before,),
            )
            if not last:
                return 0
            sequence, digest = int(last[0][0]), str(last[0][1])
            count = db.execute("SELECT count(*) FROM audit_log WHERE sequence <= ?", (sequence,))
            db.execute("DELETE FROM audit_log WHERE sequence <= ?", (sequence,))
            db.execute("DELETE FROM audit_anchor WHERE id = 1")
            db.execute(
                "INSERT INTO audit_anchor (id, sequence, hash) VALUES (1, ?, ?)", (sequence, digest)
            )
        return int(count[0][0])

    def _prune_quietly(self) -> None:
        assert self.retention is not None
        cutoff = _format(datetime.fromtimestamp(time.time() - self.retention, UTC))
        try:
            pruned = self.prune(cutoff)
        except Exception:
            logger.exception("audit log: applying the retention setting failed; will retry")
            return
        if pruned:
            logger.info("audit log: pruned %d records older than %s", pruned, cutoff)

    # -- reading ------------------------------------------------------------------------------------

    def records(self, query: AuditQuery = AuditQuery()) -> list[AuditRecord]:
        """The committed records matching ``query``, oldest first, at most ``query.limit``."""
        where, params = ["sequence > ?"], list[Any]([query.after])
        for column in ("principal", "namespace", "category", "decision"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if query.since is not None:
            where.append("time >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("time < ?")
            params.append(query.until)
        rows = self._reads.rows(
            f"SELECT {', '.join(_COLUMNS)} FROM audit_log WHERE {' AND '.join(where)}"
            " ORDER BY sequence LIMIT ?",
            (*params, query.limit),
        )
        return [_event_of(row) for row in rows]

    def verify(self, page: int = 1000) -> Verification:
        """Walk the chain from its start (or the retention anchor) and check every link and
        hash; the first record that does not hold is named."""
        anchor = self._reads.rows(_ANCHOR)
        expected, prev = (int(anchor[0][0]) + 1, str(anchor[0][1])) if anchor else (1, GENESIS)
        checked = 0
        while True:
            rows = self._reads.rows(
                f"SELECT {', '.join(_COLUMNS)} FROM audit_log WHERE sequence >= ?"
                " ORDER BY sequence LIMIT ?",
                (expected, page),
            )
            if not rows:
                return Verification(checked)
            for row in rows:
                problem, record = _check(row, expected, prev)
                if problem:
                    return Verification(checked, record.sequence if record else expected, problem)
                assert record is not None
                prev, expected, checked = record.hash, expected + 1, checked + 1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _check(row: Sequence[Any], expected: int, prev: str) -> tuple[str, AuditRecord | None]:
    """Why the stored ``row`` does not continue the chain at ``expected`` after ``prev`` (``""``:
    it does), and the record read from it."""
    try:
        record = _event_of(row)
    except (TypeError, ValueError) as exc:
        return f"record {row[0]} cannot be read: {exc}", None
    if record.sequence != expected:
        return f"record {expected} is missing (the next one is {record.sequence})", None
    if record.prev_hash != prev:
        return f"record {expected}: prev_hash does not match the hash of the record before", record
    if record_hash(prev, record.sequence, record.event) != record.hash:
        return f"record {expected}: its hash does not match its contents (edited)", record
    return "", record


# -- OpenTelemetry ----------------------------------------------------------------------------------


def _otel_logger(provider: Any) -> Any:
    """The OTel logger records go to: from ``provider``, else from an OTLP/HTTP exporter when
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, else None (not exported)."""
    if provider is None:
        if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return None
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        provider = LoggerProvider()
        provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    return provider.get_logger("modelplane.audit")


def _emit(otel: Any, record: AuditRecord) -> None:
    from opentelemetry._logs import SeverityNumber

    e = record.event
    moment = datetime.fromisoformat(e.time.replace("Z", "+00:00"))
    attributes: Mapping[str, Any] = {
        f"modelplane.audit.{key}": value
        for key, value in record.to_json().items()
        if value not in ("", [])
    }
    otel.emit(
        timestamp=int(moment.timestamp() * 1e9),
        severity_number=SeverityNumber.WARN if e.decision == "deny" else SeverityNumber.INFO,
        severity_text="WARN" if e.decision == "deny" else "INFO",
        body=f"{e.principal} {e.action} {e.resource}: {e.decision}",
        attributes=dict(attributes),
        event_name="modelplane.audit",
    )


def open_audit_log(store_url: str, *, retention: str | None = None) -> AuditLog:
    """The audit log in the store's database (its own tables), with ``retention`` as the
    ``--audit-retention`` option writes it (``30d``); BadRequest naming the option if not."""
    seconds = None
    if retention:
        try:
            seconds = parse_retention(retention)
        except ValueError as exc:
            raise BadRequest(f"--audit-retention: {exc}") from None
    return AuditLog(store_url, retention=seconds)
