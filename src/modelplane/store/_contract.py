"""The store contract: what every backend promises. Backends: ``_sqlite`` and ``_postgres``.

Objects are plain JSON-shaped dicts in the Kubernetes envelope (``apiVersion``, ``kind``,
``metadata``, ``spec``, ``status``). The store does not validate schemas (``modelplane.api`` does that
before a write reaches it); it owns identity, versions and history:

* ``metadata.resourceVersion`` is a decimal string of one global, strictly increasing counter: every
  write anywhere gets the next number, and the event it produces carries the same number. Watching
  "from N" means "every event with a version greater than N, in version order".
* ``metadata.generation`` starts at 1 and is bumped by a write that changes ``spec`` (or anything
  outside ``metadata``/``status``). ``status`` is written only through :meth:`Store.update_status`
  (the status subresource); ``update`` keeps the stored status.
* ``metadata.uid`` and ``creationTimestamp`` are set on create and never change.
* Delete of an object with ``metadata.finalizers`` only sets ``deletionTimestamp`` (a MODIFIED
  event); the object goes (a DELETED event) once an update empties its finalizers.
* A write is acknowledged only after it is durable: a crash of the process after the call returns
  does not lose it.
* History is kept for at least the last ``history`` events; a watch or a ``continue`` token from
  before the kept history raises :class:`~modelplane.api.errors.Expired` ("too old, relist").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self

JSON = dict[str, Any]

EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


class Closing:
    """What a ``with`` block closes (a store, a watch): it gives itself, then calls close()."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. ``object`` is the whole object after the change (before it, for DELETED)."""

    type: EventType
    object: JSON
    resource_version: int


@dataclass(frozen=True, slots=True)
class ObjectList:
    items: list[JSON]
    #: the store's version at the time of the list: watch from here to see every later change
    resource_version: int
    #: opaque token for the next page; None when this was the last page
    continue_token: str | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    #: seconds since the epoch at which the lease lapses unless renewed
    expires_at: float
    #: how many times the lease changed hands (fencing token)
    transitions: int


@dataclass(frozen=True, slots=True)
class AllowanceRequest:
    """What a holder asks of a pool of a per-window limit (:meth:`Store.take_allowance`)."""

    #: the limit's name, shared by every holder (one tenant's tokens per minute, say)
    pool: str
    #: who asks: one name per process, the same on every take
    holder: str
    #: which window, numbered by the caller (``int(time.time() // 60)`` for minutes)
    window: int
    limit: float
    #: the holder's whole use in the window so far (not an increment)
    used: float
    #: how much more headroom it asks for; 0 gives its unused headroom back
    want: float
    #: seconds until the headroom it gets lapses
    duration: float
    #: the part of ``used`` that answers reported (the rest: reservations of requests still in
    #: flight); once the holder's allowance lapsed only this counts. None: all of ``used``
    settled: float | None = None


class Watch(Protocol):
    """A stream of events in resourceVersion order, with no gaps and no repeats.

    Iterating blocks until events arrive; :meth:`next_batch` waits at most ``timeout`` seconds.
    Close it (or use it as a context manager) to release it.
    """

    def next_batch(self, timeout: float | None = None) -> list[WatchEvent]:
        """Events available now, waiting up to ``timeout`` s for at least one (``[]`` on timeout).

        Raises :class:`~modelplane.api.errors.Expired` if the stream fell behind the kept history.
        """
        ...

    async def next_batch_async(self, timeout: float | None = None) -> list[WatchEvent]:
        """As :meth:`next_batch`, awaiting without blocking the event loop."""
        ...

    def __iter__(self) -> Iterator[WatchEvent]: ...

    def __aiter__(self) -> AsyncIterator[WatchEvent]: ...

    @property
    def closed(self) -> bool:
        """True once the watch has ended (closed, or its store closed): it yields nothing more
        and :meth:`next_batch` returns ``[]`` at once, so a loop on it must stop, not spin."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Watch: ...

    def __exit__(self, *exc: object) -> None: ...


class Store(Protocol):
    """Versioned object store. Thread-safe: one instance is shared by the whole process.

    ``kind`` is the object's ``kind`` (``"Model"``, ``"ResourceSlice"``); kinds are unique across
    groups in Modelplane. ``namespace`` is ``""`` for cluster-scoped kinds. Errors raised are those of
    :mod:`modelplane.api.errors`: NotFound, AlreadyExists, Conflict (stale resourceVersion: the
    message names both versions), Expired, Unavailable (database locked, corrupt or unreachable:
    a sentence saying which file or server and what to do).
    """

    url: str

    def create(self, obj: JSON) -> JSON:
        """Store a new object; returns it with uid, resourceVersion, generation, creationTimestamp."""
        ...

    def get(self, kind: str, namespace: str, name: str) -> JSON: ...

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
        """Objects of ``kind`` (in ``namespace``, or all namespaces when None), ordered by
        (namespace, name). ``label_selector`` is Kubernetes syntax: ``a=b,c!=d,e in (x,y),!f,g``.
        ``field_selector`` supports ``metadata.name`` and ``metadata.namespace`` with ``=``/``!=``.
        """
        ...

    def update(self, obj: JSON) -> JSON:
        """Replace spec, metadata labels/annotations/finalizers. When ``metadata.resourceVersion`` is
        set it must equal the stored one, else Conflict. ``status`` in ``obj`` is ignored."""
        ...

    def update_status(self, obj: JSON) -> JSON:
        """Replace only ``status`` (the status subresource); same concurrency rule as update."""
        ...

    def patch(
        self, kind: str, namespace: str, name: str, patch: JSON, *, subresource: str | None = None
    ) -> JSON:
        """Apply an RFC 7386 JSON merge patch (to ``status`` only when subresource="status")."""
        ...

    def delete(
        self, kind: str, namespace: str, name: str, *, resource_version: str | None = None
    ) -> JSON:
        """Delete (or mark for deletion when finalizers remain); returns the object as last seen."""
        ...

    def watch(
        self,
        kind: str | None = None,
        namespace: str | None = None,
        *,
        since: int | str | None = None,
        label_selector: str | None = None,
    ) -> Watch:
        """Watch changes after version ``since`` (None or 0/"": from now).

        With a ``label_selector`` the watch sees objects enter and leave the selection, as in
        Kubernetes: a change after which the object matches but before which it did not (or a
        create of a matching object) arrives as ADDED; one before which it matched but after
        which it does not (or a delete of an object that matched) arrives as DELETED, carrying the
        object as it is now; a change that keeps it matching arrives as it is (MODIFIED); the
        rest is not seen. Resuming from an old ``since`` gives the same answers.

        Raises Expired at once if ``since`` is older than the kept history.
        """
        ...

    def current_resource_version(self) -> int: ...

    def compact(self, keep: int) -> int:
        """Drop all but the newest ``keep`` events; returns the oldest version still watchable."""
        ...

    # -- leases (leader election, sharding) --------------------------------------------------

    def acquire_lease(self, name: str, holder: str, duration: float) -> Lease | None:
        """Take or renew lease ``name`` for ``holder`` for ``duration`` seconds.

        Succeeds when the lease is free, lapsed, or already held by ``holder`` (a renewal);
        returns None when someone else holds it.
        """
        ...

    def release_lease(self, name: str, holder: str) -> bool: ...

    def get_lease(self, name: str) -> Lease | None: ...

    # -- allowances (limits shared by many processes) ----------------------------------------

    def take_allowance(self, request: AllowanceRequest) -> float:
        """Report a holder's use of a pool in a window and take up to ``want`` more of the
        window's ``limit``, in one atomic step (see :class:`AllowanceRequest`); returns the
        holder's allowance for the window: the most it may use there, ``used`` plus the headroom
        it got, which lapses after ``duration`` seconds unless taken again; never more than the
        others leave of the limit, so below ``used`` when the holder overshot. ``want=0`` gives
        unused headroom back.

        Other holders count against the limit with their live allowance, or only with the
        settled use they reported once theirs lapsed (the reservations of a dead holder's
        requests in flight are not charged: a client retrying one elsewhere pays once). ``used`` is the holder's total in the window, so a
        repeated take charges nothing twice. See :mod:`modelplane.store._allowances`.
        """
        ...

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called: every call but ``close`` raises Unavailable."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Store: ...

    def __exit__(self, *exc: object) -> None: ...
