"""The store: the contract's methods, written once on top of a backend's rows.

A backend supplies connections and its SQL :class:`~modelplane.store._sql.Dialect`; the reads and
the write transaction are the one SQL flow of :mod:`~modelplane.store._sql`, and
:class:`BaseStore` implements everything the contract specifies on top of them, so both backends
behave the same by construction. What each
method does to an object is in :mod:`~modelplane.store._lifecycle`; continue tokens in
:mod:`~modelplane.store._paging`; leases in :mod:`~modelplane.store._leases`; shared allowances
in :mod:`~modelplane.store._allowances`; watches in
:mod:`~modelplane.store._hub`; sealing Secrets at rest in :mod:`~modelplane.store._codec`.

What this module owns beyond calling those:

* Versions: every write takes the next resourceVersion inside its transaction and records one
  event; an empty store is at version 1 (the first write takes 2), so a list never reports
  version 0, which ``watch`` would read as "from now".
* Each event also stores the object's labels before the change when they differ from its labels
  after (``prev_labels``), so that a watch with a label selector can report an object relabelled
  into its selection as ADDED and one relabelled out of it as DELETED (see ``_hub``).
* Local events reach the watch hub in version order (published under the write lock), and old
  events are compacted automatically every :data:`COMPACT_EVERY` versions.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import orjson

from modelplane.api.errors import AlreadyExists, BadRequest, Expired, NotFound, Unavailable
from modelplane.store import _allowances, _leases
from modelplane.store._codec import Codec, dumps, loads, opener
from modelplane.store._contract import (
    JSON,
    AllowanceRequest,
    Closing,
    EventType,
    Lease,
    ObjectList,
)
from modelplane.store._gc import gc_paused
from modelplane.store._hub import Hub, HubWatch, Record, expired, parse_since
from modelplane.store._lifecycle import (
    check_version,
    created,
    deleted,
    describe,
    details,
    key_of,
    patched,
    replaced,
    settle,
    with_status,
)
from modelplane.store._paging import decode_token, encode_token
from modelplane.store._selector import parse_field_selector, parse_label_selector
from modelplane.store._sql import Connection, Dialect, Rows, Transaction, begin, reading
from modelplane.store._urls import redact_url

#: events kept by default (``history``); older ones are compacted away automatically
DEFAULT_HISTORY = 100_000
#: automatic compaction runs after every this many versions
COMPACT_EVERY = 1024
#: default size of the in-memory window of recent events shared by watches
DEFAULT_WATCH_BUFFER = 10_000

_LIST_CHUNK = 1000


# -- the store --------------------------------------------------------------------------------


class _Tx:
    """One write transaction as the object rules see it."""

    __slots__ = ("codec", "records", "rv", "w")

    def __init__(self, w: Transaction, codec: Codec | None) -> None:
        self.w = w
        self.codec = codec
        self.rv = 0
        self.records: list[Record] = []

    def commit_object(
        self,
        type_: EventType,
        kind: str,
        namespace: str,
        name: str,
        new: JSON,
        *,
        exists: bool,
        stored: JSON | None = None,
    ) -> str:
        """Give ``new`` the next version, store (or drop) it, record the event; returns its JSON
        (the plain form: the database gets the sealed one when the codec applies).

        ``stored``: the object before the change (None for a create); the event remembers its
        labels when they differ, so label-selected watches see objects enter and leave."""
        rv = self.w.next_rv()
        self.rv = rv
        new["metadata"]["resourceVersion"] = str(rv)
        plain = raw = dumps(new)
        if self.codec is not None and self.codec.applies(kind):
            raw = dumps(self.codec.seal(new))
        if type_ == "DELETED":
            self.w.drop(kind, namespace, name)
        else:
            self.w.put(kind, namespace, name, rv, raw, exists=exists)
        labels = new["metadata"].get("labels")
        # a copy: ``new`` may share dicts with the caller's object, which the caller may change
        labels = dict(labels) if isinstance(labels, dict) else {}
        prev: dict[str, str] | None = None
        if stored is not None:
            old = stored["metadata"].get("labels")
            old = old if isinstance(old, dict) else {}
            if old != labels:
                prev = dict(old)
        self.w.event(
            rv,
            type_,
            kind,
            namespace,
            name,
            raw,
            None if prev is None else orjson.dumps(prev).decode(),
        )
        self.records.append(Record(rv, type_, kind, namespace, labels, raw, prev))
        return plain


class BaseStore(Closing, ABC):
    """:class:`~modelplane.store.Store` on top of a backend's primitives."""

    url: str

    def __init__(
        self,
        url: str,
        *,
        history: int,
        watch_buffer: int,
        poll_interval: float,
        name: str,
        codec: Codec | None = None,
    ) -> None:
        self.url = url
        #: seals the objects of some kinds at rest (Secrets); None stores everything as given
        self.codec = codec
        #: the URL with any password masked: the only form that may appear in messages
        self.display_url = redact_url(url)
        self.history = history
        self._write_lock = threading.Lock()
        self._closed = False
        self._hub = Hub(
            self._read_events,
            self.current_resource_version,
            poll_interval=poll_interval,
            capacity=watch_buffer,
            name=name,
        )

    # -- what a backend provides -------------------------------------------------------------

    #: the SQL the backend speaks where it differs from the other's (see ``_sql``)
    dialect: Dialect

    @abstractmethod
    def _connection(self, *, write: bool) -> AbstractContextManager[Connection]:
        """A connection for one read (``write=False``) or one write transaction, turning the
        driver's errors raised in the block into Unavailable (with what to do)."""

    @abstractmethod
    def _close_backend(self) -> None: ...

    def _start_watching(self) -> None:
        """Called before a watch starts (PostgreSQL starts listening for notifications)."""

    # -- plumbing ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(f"the store {self.display_url} is closed; open it again")

    @contextmanager
    def _write(self) -> Iterator[_Tx]:
        self._check_open()
        with self._write_lock:
            with self._connection(write=True) as conn:
                # the flow of ``_sql.transaction``, written out: one context manager less per
                # write is measurable on SQLite's hot path
                tx = _Tx(begin(conn, self.dialect), self.codec)
                try:
                    yield tx
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                tx.w.commit()
            # still under the lock, so local events reach the hub in version order
            self._hub.publish(tx.records)
        if self.history and tx.rv and tx.rv % COMPACT_EVERY == 0:
            self.compact(self.history)

    @contextmanager
    def _read(self, snapshot: bool = True) -> Iterator[Rows]:
        self._check_open()
        with self._connection(write=False) as conn, reading(conn, self.dialect, snapshot) as r:
            yield r

    def _read_events(self, after: int, limit: int) -> tuple[list[Record], int]:
        """Events after ``after`` (at most ``limit``), then the compacted horizon (the hub's
        reader: it runs even while the store is closing)."""
        with self._connection(write=False) as conn:
            return Rows(conn, self.dialect).events(after, limit)

    def _stored(self, r: Rows, kind: str, namespace: str, name: str) -> tuple[JSON, str]:
        """The stored object and its JSON, both in the plain form."""
        raw = r.get_raw(kind, namespace, name)
        if raw is None:
            raise NotFound(
                f"{describe(kind, namespace, name)} not found",
                details=details(kind, namespace, name),
            )
        if self.codec is not None and self.codec.applies(kind):
            obj = self.codec.open(loads(raw))
            return obj, dumps(obj)
        return loads(raw), raw

    @staticmethod
    def _apply(tx: _Tx, key: tuple[str, str, str], stored: JSON, raw: str, new: JSON | None) -> str:
        """Write ``new`` over ``stored`` as the object rules say (:func:`settle`); None: no
        change. Returns the JSON the caller gets."""
        type_ = None if new is None else settle(stored, new)
        if new is None or type_ is None:
            return raw
        return tx.commit_object(type_, *key, new, exists=True, stored=stored)

    # -- objects -----------------------------------------------------------------------------

    def create(self, obj: JSON) -> JSON:
        key = key_of(obj)
        with self._write() as tx:
            if tx.w.get_raw(*key) is not None:
                raise AlreadyExists(
                    f"{describe(*key)} already exists: update it instead, or delete it first",
                    details=details(*key),
                )
            raw = tx.commit_object("ADDED", *key, created(obj), exists=False)
        return loads(raw)

    def get(self, kind: str, namespace: str, name: str) -> JSON:
        with self._read(snapshot=False) as r:
            return self._stored(r, kind, namespace or "", name)[0]

    def update(self, obj: JSON) -> JSON:
        key = key_of(obj)
        with self._write() as tx:
            stored, raw = self._stored(tx.w, *key)
            check_version(obj["metadata"].get("resourceVersion"), stored, *key)
            raw = self._apply(tx, key, stored, raw, replaced(stored, obj))
        return loads(raw)

    def update_status(self, obj: JSON) -> JSON:
        key = key_of(obj)
        with self._write() as tx:
            stored, raw = self._stored(tx.w, *key)
            check_version(obj["metadata"].get("resourceVersion"), stored, *key)
            raw = self._apply(tx, key, stored, raw, with_status(stored, obj.get("status")))
        return loads(raw)

    def patch(
        self, kind: str, namespace: str, name: str, patch: JSON, *, subresource: str | None = None
    ) -> JSON:
        if not isinstance(patch, dict):
            raise BadRequest("a merge patch must be a JSON object (RFC 7386)")
        if subresource not in (None, "status"):
            raise BadRequest(f"unknown subresource {subresource!r}: the only one is 'status'")
        key = (kind, namespace or "", name)
        patch_meta = patch.get("metadata")
        sent = patch_meta.get("resourceVersion") if isinstance(patch_meta, dict) else None
        with self._write() as tx:
            stored, raw = self._stored(tx.w, *key)
            check_version(sent, stored, *key)
            raw = self._apply(tx, key, stored, raw, patched(stored, patch, key, subresource))
        return loads(raw)

    def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> JSON:
        key = (kind, namespace or "", name)
        with self._write() as tx:
            stored, raw = self._stored(tx.w, *key)
            check_version(resource_version, stored, *key)
            change = deleted(stored)
            if change is not None:
                raw = tx.commit_object(change[0], *key, change[1], exists=True, stored=stored)
        return loads(raw)

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ObjectList:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        if limit is not None and limit < 0:
            raise BadRequest(f"limit {limit} is negative: use a positive number, or none for all")
        limit = limit or None  # 0 means no limit, as in Kubernetes
        start = decode_token(continue_token, kind, namespace) if continue_token else None
        items: list[JSON] = []
        more = False
        last: tuple[str, str] | None = None
        with self._read() as r, gc_paused():
            if start is not None:
                horizon = r.compacted()
                if start[0] < horizon:
                    raise Expired(
                        f"the continue token is too old: it continues a list at resourceVersion"
                        f" {start[0]}, but history starts at {horizon}; list again without it"
                    )
                list_rv, after = start
            else:
                list_rv, after = r.current_rv(), None
            # without a limit one query reads everything; with one, read in chunks until the
            # page is full (selectors may skip rows) and one more match shows there is more
            chunk = None if limit is None else max(_LIST_CHUNK, limit + 1)
            read = opener(self.codec, kind)
            while True:
                rows = r.rows(kind, namespace, after, chunk)
                if chunk is None and not labels and not fields.terms and read is None:
                    items = [loads(raw) for _, _, raw in rows]  # the common case, kept lean
                    break
                for row_ns, row_name, raw in rows:
                    if not fields.matches(row_ns, row_name):
                        continue
                    obj = loads(raw) if read is None else read(kind, raw)
                    if labels and not labels.matches((obj.get("metadata") or {}).get("labels")):
                        continue
                    if limit is not None and len(items) == limit:
                        more = True
                        break
                    items.append(obj)
                    last = (row_ns, row_name)
                if more or chunk is None or len(rows) < chunk:
                    break
                after = (rows[-1][0], rows[-1][1])
        token = encode_token(list_rv, kind, namespace, last) if more and last else None
        return ObjectList(items=items, resource_version=list_rv, continue_token=token)

    # -- watch and history -------------------------------------------------------------------

    def watch(
        self,
        kind: str | None = None,
        namespace: str | None = None,
        *,
        since: int | str | None = None,
        label_selector: str | None = None,
    ) -> HubWatch:
        selector = parse_label_selector(label_selector)
        since_rv = parse_since(since)
        self._check_open()
        self._start_watching()
        self._hub.start()
        with self._read() as r:
            current = r.current_rv()
            horizon = r.compacted()
        if since_rv and since_rv < horizon:
            raise expired(since_rv, horizon)
        pos = since_rv or current
        return HubWatch(
            self._hub,
            pos,
            kind=kind,
            namespace=namespace,
            selector=selector,
            opener=opener(self.codec, kind),
        )

    def current_resource_version(self) -> int:
        with self._read(snapshot=False) as r:
            return r.current_rv()

    def compact(self, keep: int) -> int:
        if keep < 0:
            raise BadRequest(f"keep {keep} is negative: say how many recent events to keep")
        with self._write() as tx:
            horizon = max(tx.w.compacted(), tx.w.current_rv() - keep)
            if horizon > tx.w.compacted():
                tx.w.compact(horizon)
        return horizon

    # -- leases ------------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, duration: float) -> Lease | None:
        _leases.check_request(name, holder, duration)
        with self._write() as tx:
            current = tx.w.lease(name)
            lease = _leases.next_lease(current, name, holder, duration, time.time())
            if lease is not None:
                tx.w.put_lease(lease)
        return lease

    def release_lease(self, name: str, holder: str) -> bool:
        with self._write() as tx:
            lease = _leases.released(tx.w.lease(name), holder)
            if lease is None:
                return False
            tx.w.put_lease(lease)
        return True

    def get_lease(self, name: str) -> Lease | None:
        """The lease, or None when nobody holds it (never taken, or released). A lapsed lease is
        returned as it is: compare ``expires_at`` with the clock."""
        with self._read(snapshot=False) as r:
            lease = r.lease(name)
        return lease if lease is not None and lease.holder else None

    # -- allowances --------------------------------------------------------------------------

    def take_allowance(self, request: AllowanceRequest) -> float:
        _allowances.check_request(request)
        with self._write() as tx:
            now = time.time()
            row = _allowances.taken(tx.w.allowances(request.pool), request, now)
            tx.w.put_allowance(request.pool, row)
        return row.granted

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._hub.stop()
        self._close_backend()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.display_url}>"
