"""The object rules of the store contract, written once on top of a backend's rows.

A backend supplies a read snapshot (:class:`Reader`), a serialised write transaction
(:class:`Writer`) and a way to read the events table; :class:`BaseStore` implements everything the
contract specifies on top of them — identity, versions, generation, the status subresource,
optimistic concurrency, finalizers, merge patch, selectors, paging, leases, compaction and watch —
so both backends behave the same by construction.

Rules worth knowing beyond the contract's docstring:

* ``create`` keeps the ``status`` it is given (the initial status); from then on only
  ``update_status`` (or a status patch) changes it.
* A write that would change nothing (same spec, metadata and status) is not a write: it returns
  the stored object with its current resourceVersion and produces no event, so a level-triggered
  controller that re-applies the same state does not wake every watcher.
* Paging (``limit`` + ``continue_token``) is by key: the token holds the last (namespace, name)
  returned and the resourceVersion of the first page. Every page reports that first version, so
  watching from it after the last page misses nothing (changes made while paging are replayed).
  A token stays valid while that version is inside the kept history; afterwards it is Expired.
* An empty store is at version 1 (the first write takes 2), so a list never reports version 0,
  which ``watch`` would read as "from now".
* The DELETED event carries the object as it was, with the deletion's resourceVersion.
* Each event also stores the object's labels before the change when they differ from its labels
  after (``prev_labels``), so that a watch with a label selector can report an object relabelled
  into its selection as ADDED and one relabelled out of it as DELETED (see ``_hub``).
* A :class:`Codec` (the store opener gives :class:`~modelplane.store._encryption.SecretEncryption`)
  transforms the objects of the kinds it applies to on their way to and from the database: rows
  and events hold the sealed form, every caller (get, list, watch, the write methods' answers)
  gets the plain one, and the object rules (equality, merge patch) work on the plain one.
* Leases compare the caller's clock with ``expires_at``; processes sharing a PostgreSQL should
  keep their clocks in sync (NTP), as Kubernetes leader election assumes.
"""

from __future__ import annotations

import base64
import binascii
import gc
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from modelplane.api import SERVER_OWNED
from modelplane.api.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Expired,
    NotFound,
    Unavailable,
)
from modelplane.store._contract import JSON, EventType, Lease, ObjectList
from modelplane.store._hub import Hub, HubWatch, Record, expired
from modelplane.store._selector import parse_field_selector, parse_label_selector

#: events kept by default (``history``); older ones are compacted away automatically
DEFAULT_HISTORY = 100_000
#: automatic compaction runs after every this many versions
COMPACT_EVERY = 1024
#: default size of the in-memory window of recent events shared by watches
DEFAULT_WATCH_BUFFER = 10_000

_NOT_SPEC = frozenset(("apiVersion", "kind", "metadata", "status"))
_LIST_CHUNK = 1000


class Codec(Protocol):
    """Transforms objects of some kinds between the form callers see and the stored form."""

    def applies(self, kind: str) -> bool: ...

    def seal(self, obj: JSON) -> JSON:
        """The stored form of ``obj`` (a new dict; ``obj`` is not changed)."""
        ...

    def open(self, obj: JSON) -> JSON:
        """The plain form of a stored object."""
        ...


class Reader(Protocol):
    """A consistent snapshot of the database."""

    def current_rv(self) -> int: ...

    def compacted(self) -> int: ...

    def get_raw(self, kind: str, namespace: str, name: str) -> str | None: ...

    def rows(
        self, kind: str, namespace: str | None, after: tuple[str, str] | None, limit: int | None
    ) -> list[tuple[str, str, str]]:
        """``(namespace, name, data)`` ordered by (namespace, name), keys after ``after``."""
        ...

    def lease(self, name: str) -> Lease | None: ...


class Writer(Reader, Protocol):
    """A write transaction; writers are serialised across every process sharing the database."""

    def next_rv(self) -> int:
        """The version this transaction's write takes (called at most once)."""
        ...

    def put(
        self, kind: str, namespace: str, name: str, rv: int, raw: str, *, exists: bool
    ) -> None: ...

    def drop(self, kind: str, namespace: str, name: str) -> None: ...

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
        ...

    def put_lease(self, lease: Lease, *, exists: bool) -> None: ...

    def compact(self, horizon: int) -> None:
        """Delete events with rv <= horizon and remember horizon as the compacted version."""
        ...


# -- object helpers ---------------------------------------------------------------------------


def describe(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _details(kind: str, namespace: str, name: str) -> dict[str, Any]:
    details: dict[str, Any] = {"kind": kind, "name": name}
    if namespace:
        details["namespace"] = namespace
    return details


def key_of(obj: object) -> tuple[str, str, str]:
    """(kind, namespace, name) of ``obj``; BadRequest when the object lacks them."""
    if not isinstance(obj, dict):
        raise BadRequest(f"an object must be a JSON object (a mapping), not {type(obj).__name__}")
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise BadRequest("the object has no kind: set kind, for example kind: Model")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise BadRequest(f"the {kind} has no metadata: set metadata.name")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"the {kind} has no metadata.name: every object needs a name")
    namespace = meta.get("namespace") or ""
    if not isinstance(namespace, str):
        raise BadRequest(f"{kind} {name}: metadata.namespace must be a string")
    return kind, namespace, name


def dumps(obj: JSON) -> str:
    try:
        return orjson.dumps(obj).decode()
    except TypeError as exc:
        raise BadRequest(f"the object cannot be stored as JSON: {exc}") from None


def loads(raw: str | bytes) -> JSON:
    obj: JSON = orjson.loads(raw)
    return obj


def timestamp() -> str:
    """Now, in the RFC 3339 form Kubernetes uses for metadata timestamps."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _spec(obj: JSON) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in _NOT_SPEC}


def created(obj: JSON) -> JSON:
    """``obj`` as first stored: server-owned metadata set, the rest as given."""
    out = dict(obj)
    meta = {k: v for k, v in obj["metadata"].items() if k not in SERVER_OWNED}
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = timestamp()
    meta["generation"] = 1
    out["metadata"] = meta
    return out


def replaced(stored: JSON, obj: JSON) -> JSON:
    """The result of ``update(obj)``: everything from ``obj`` but server-owned metadata and status,
    which stay as stored; generation bumped when the spec changed."""
    out = {k: v for k, v in obj.items() if k != "status"}
    old_meta = stored["metadata"]
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SERVER_OWNED}
    for k in SERVER_OWNED:
        if k in old_meta:
            meta[k] = old_meta[k]
    out["metadata"] = meta
    if "status" in stored:
        out["status"] = stored["status"]
    if _spec(out) != _spec(stored):
        meta["generation"] = int(old_meta.get("generation") or 0) + 1
    return out


def with_status(stored: JSON, status: Any) -> JSON:
    out = dict(stored)
    out["metadata"] = dict(stored["metadata"])
    if status is None:
        out.pop("status", None)
    else:
        out["status"] = status
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, ``null`` deletes, anything else
    (lists included) replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def check_version(sent: Any, stored: JSON, kind: str, namespace: str, name: str) -> None:
    """Conflict unless ``sent`` is empty or equals the stored resourceVersion."""
    if sent is None or sent == "":
        return
    current = stored["metadata"].get("resourceVersion")
    if str(sent) != current:
        raise Conflict(
            f"{describe(kind, namespace, name)} was modified: you sent resourceVersion {sent},"
            f" the current one is {current}; get it again and retry",
            details=_details(kind, namespace, name),
        )


def parse_since(since: int | str | None) -> int:
    if since is None or since == "":
        return 0
    if isinstance(since, int) and not isinstance(since, bool):
        value = since
    elif isinstance(since, str) and since.strip().isdigit():
        value = int(since)
    else:
        raise BadRequest(
            f"resourceVersion {since!r} is not a version: use the resourceVersion of a list or"
            " of an event (a whole number), or leave it out to watch from now"
        )
    if value < 0:
        raise BadRequest(f"resourceVersion {value} is negative: versions start at 1")
    return value


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while parsing many objects.

    Parsing 10,000 objects allocates some 100,000 containers, which triggers full collections
    that walk every live object of the process: with a few thousand objects already alive
    (an informer's cache) that made a list of 10,000 objects 1.6-2 times slower (measured, see
    docs/benchmarks.md). JSON never makes reference cycles, so nothing is lost by waiting; nested
    pauses from several threads are counted and the collector resumes after the last.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


# -- continue tokens --------------------------------------------------------------------------


def encode_token(rv: int, kind: str, namespace: str | None, after: tuple[str, str]) -> str:
    raw = orjson.dumps({"v": 1, "rv": rv, "k": kind, "ns": namespace, "a": list(after)})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, kind: str, namespace: str | None) -> tuple[int, tuple[str, str]]:
    invalid = BadRequest(
        f"continue token {token[:40]!r} is not valid: pass the continue value of the previous page"
        " of the same list unchanged, or list again without it"
    )
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        rv, after = data["rv"], data["a"]
        valid = (
            data.get("v") == 1
            and isinstance(rv, int)
            and isinstance(after, list)
            and len(after) == 2
            and all(isinstance(x, str) for x in after)
        )
    except (ValueError, TypeError, KeyError, binascii.Error, orjson.JSONDecodeError):
        raise invalid from None
    if not valid:
        raise invalid
    if data.get("k") != kind or data.get("ns") != namespace:
        raise BadRequest(
            f"continue token belongs to a list of {data.get('k')} (namespace"
            f" {data.get('ns') or 'all'}), not of {kind} (namespace {namespace or 'all'}):"
            " pass the token only to the list it came from"
        )
    return rv, (after[0], after[1])


# -- leases -----------------------------------------------------------------------------------


def next_lease(
    current: Lease | None, name: str, holder: str, duration: float, now: float
) -> Lease | None:
    """Compare-and-set: the lease after ``holder`` asks for it, or None if someone else holds it.

    ``transitions`` starts at 0 and grows by one whenever the holder changes (including taking a
    released lease), so it serves as a fencing token.
    """
    expires = now + duration
    if current is None:
        return Lease(name, holder, expires, 0)
    if current.holder == holder:
        return Lease(name, holder, expires, current.transitions)
    if not current.holder or current.expires_at <= now:
        return Lease(name, holder, expires, current.transitions + 1)
    return None


# -- the store --------------------------------------------------------------------------------


class _Tx:
    """One write transaction as the object rules see it."""

    __slots__ = ("codec", "records", "rv", "w")

    def __init__(self, w: Writer, codec: Codec | None) -> None:
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


_SECRET_PARAMS = frozenset({"password", "passfile", "sslpassword"})


def redact_url(url: str) -> str:
    """``url`` without secrets: the password of the user part and password-like parameters."""
    parts = urlsplit(url)
    netloc = parts.netloc
    changed = False
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
            changed = True
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key.lower() in _SECRET_PARAMS for key, _ in pairs):
        query = urlencode(
            [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="/=-"
        )
        changed = True
    if not changed:
        return url  # untouched, so a SQLite path reads exactly as given
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class BaseStore(ABC):
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

    @abstractmethod
    def _reading(self, snapshot: bool = True) -> AbstractContextManager[Reader]:
        """A reader; with ``snapshot`` every statement sees the same state (a read transaction),
        without it only single statements are made (a cheaper path for one-row reads)."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Writer]:
        """A write transaction: committed when the block ends, rolled back when it raises."""

    @abstractmethod
    def _read_events(self, after: int, limit: int) -> tuple[list[Record], int]:
        """Events after ``after`` (at most ``limit``), then the compacted horizon."""

    @abstractmethod
    def _close_backend(self) -> None: ...

    def _start_watching(self) -> None:  # noqa: B027 - a hook, empty unless a backend needs it
        """Called before a watch starts (PostgreSQL starts listening for notifications)."""

    # -- plumbing ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(f"the store {self.display_url} is closed; open it again")

    @contextmanager
    def _write(self) -> Iterator[_Tx]:
        self._check_open()
        with self._write_lock:
            with self._transaction() as w:
                tx = _Tx(w, self.codec)
                yield tx
            # still under the lock, so local events reach the hub in version order
            self._hub.publish(tx.records)
        if self.history and tx.rv and tx.rv % COMPACT_EVERY == 0:
            self.compact(self.history)

    @contextmanager
    def _read(self, snapshot: bool = True) -> Iterator[Reader]:
        self._check_open()
        with self._reading(snapshot) as r:
            yield r

    def _stored(self, r: Reader, kind: str, namespace: str, name: str) -> tuple[JSON, str]:
        """The stored object and its JSON, both in the plain form."""
        raw = r.get_raw(kind, namespace, name)
        if raw is None:
            raise NotFound(
                f"{describe(kind, namespace, name)} not found",
                details=_details(kind, namespace, name),
            )
        if self.codec is not None and self.codec.applies(kind):
            obj = self.codec.open(loads(raw))
            return obj, dumps(obj)
        return loads(raw), raw

    def _opener(self, kind: str | None) -> Callable[[str, str | bytes], JSON] | None:
        """How to read stored JSON of ``kind`` (None: every kind) when the codec may apply."""
        codec = self.codec
        if codec is None or (kind is not None and not codec.applies(kind)):
            return None

        def read(row_kind: str, raw: str | bytes) -> JSON:
            obj = loads(raw)
            return codec.open(obj) if codec.applies(row_kind) else obj

        return read

    @staticmethod
    def _apply(tx: _Tx, key: tuple[str, str, str], stored: JSON, raw: str, new: JSON) -> str:
        """Write ``new`` over ``stored`` (nothing when equal); removes an object whose deletion
        was waiting on finalizers once they are gone."""
        if new == stored:
            return raw
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return tx.commit_object("DELETED", *key, new, exists=True, stored=stored)
        return tx.commit_object("MODIFIED", *key, new, exists=True, stored=stored)

    # -- objects -----------------------------------------------------------------------------

    def create(self, obj: JSON) -> JSON:
        key = key_of(obj)
        with self._write() as tx:
            if tx.w.get_raw(*key) is not None:
                raise AlreadyExists(
                    f"{describe(*key)} already exists: update it instead, or delete it first",
                    details=_details(*key),
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
            merged = merge_patch(stored, patch)
            if key_of(merged) != key:
                raise BadRequest(
                    f"a patch cannot change the kind, metadata.name or metadata.namespace of"
                    f" {describe(*key)}: create a new object and delete this one instead"
                )
            if subresource == "status":
                new = with_status(stored, merged.get("status"))
            else:
                new = replaced(stored, merged)
            raw = self._apply(tx, key, stored, raw, new)
        return loads(raw)

    def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> JSON:
        key = (kind, namespace or "", name)
        with self._write() as tx:
            stored, raw = self._stored(tx.w, *key)
            check_version(resource_version, stored, *key)
            new = with_status(stored, stored.get("status"))
            meta = new["metadata"]
            if not meta.get("finalizers"):
                raw = tx.commit_object("DELETED", *key, new, exists=True, stored=stored)
            elif not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = timestamp()
                raw = tx.commit_object("MODIFIED", *key, new, exists=True, stored=stored)
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
            opener = self._opener(kind)
            while True:
                rows = r.rows(kind, namespace, after, chunk)
                if chunk is None and not labels and not fields.terms and opener is None:
                    items = [loads(raw) for _, _, raw in rows]  # the common case, kept lean
                    break
                for row_ns, row_name, raw in rows:
                    if not fields.matches(row_ns, row_name):
                        continue
                    obj = loads(raw) if opener is None else opener(kind, raw)
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
            opener=self._opener(kind),
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
        if not name or not holder:
            raise BadRequest("a lease needs a name and a holder (who is taking it)")
        if not duration > 0:
            raise BadRequest(f"lease duration {duration} must be a positive number of seconds")
        with self._write() as tx:
            current = tx.w.lease(name)
            lease = next_lease(current, name, holder, duration, time.time())
            if lease is not None:
                tx.w.put_lease(lease, exists=current is not None)
        return lease

    def release_lease(self, name: str, holder: str) -> bool:
        with self._write() as tx:
            current = tx.w.lease(name)
            if current is None or current.holder != holder:
                return False
            tx.w.put_lease(Lease(name, "", 0.0, current.transitions), exists=True)
        return True

    def get_lease(self, name: str) -> Lease | None:
        """The lease, or None when nobody holds it (never taken, or released). A lapsed lease is
        returned as it is: compare ``expires_at`` with the clock."""
        with self._read(snapshot=False) as r:
            lease = r.lease(name)
        return lease if lease is not None and lease.holder else None

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._hub.stop()
        self._close_backend()

    def __enter__(self) -> BaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.display_url}>"
