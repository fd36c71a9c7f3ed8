"""The controller base: informers feed keys into a work queue; workers call ``reconcile``.

The contract, as controller-runtime's ``reconcile.Reconciler``:

* ``reconcile(request)`` looks at the object named by ``request`` *now* (it may have changed, or be
  gone) and moves the world toward its spec. It must be safe to run again at any time, any number
  of times: it is called after every change, after restarts and leader changes, and on retries.
* It returns a :class:`Result`: ``Result()`` when done, ``Result(requeue_after=s)`` to be called
  again in ``s`` seconds (polling something outside the store), ``Result(requeue=True)`` to retry
  with backoff.
* An exception is logged and the request retried with per-key exponential backoff (see
  :class:`~modelplane.control.RateLimiter`); a success resets the backoff.
* One request is never reconciled by two workers at once; different requests run in parallel on
  ``workers`` threads.

Changes to the primary ``kind`` enqueue the changed object's own key; :attr:`Controller.watches`
lists other kinds whose changes map to keys of the primary kind (an Endpoint change requeues its
Model, say).
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from modelplane.api.errors import ModelplaneError, NotFound
from modelplane.control._informer import JSON, Informer, object_key
from modelplane.control._metrics import (
    ACTIVE_WORKERS,
    RECONCILE_ERRORS,
    RECONCILE_TIME,
    RECONCILES,
)
from modelplane.control._queue import RateLimiter, WorkQueue
from modelplane.control._status import StatusEvent, commit_status, record_status_event

if TYPE_CHECKING:
    from modelplane.store import Store

log = logging.getLogger("modelplane.control.controller")


@dataclass(frozen=True, slots=True, order=True)
class Request:
    """Which object to reconcile: namespace (``""`` for cluster-scoped kinds) and name."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True)
class Result:
    """What to do after a reconcile: nothing, retry with backoff, or come back after a delay."""

    requeue: bool = False
    requeue_after: float | None = None


@dataclass(frozen=True, slots=True)
class Watches:
    """Changes to objects of ``kind`` enqueue the requests ``map(obj)`` returns.

    ``map`` is called with the object after a change (and, for updates, also before it, so that an
    object moved from one owner to another requeues both).
    """

    kind: str
    map: Callable[[JSON], Iterable[Request]]
    namespace: str | None = None
    label_selector: str | None = None


def map_owner(owner_kind: str) -> Callable[[JSON], list[Request]]:
    """A :attr:`Watches.map` that enqueues the object's owners of ``owner_kind``.

    Owners are read from ``metadata.ownerReferences[] {kind, name}``, in the object's namespace.
    """

    def owners(obj: JSON) -> list[Request]:
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        return [
            Request(namespace, str(ref["name"]))
            for ref in meta.get("ownerReferences") or []
            if isinstance(ref, dict) and ref.get("kind") == owner_kind and ref.get("name")
        ]

    return owners


@dataclass(frozen=True, slots=True)
class ControllerStats:
    """Counters since the controller was created (across restarts)."""

    reconciles: int
    errors: int
    requeues: int


class Controller(abc.ABC):
    """Base of every controller. Subclasses set :attr:`kind` and implement :meth:`reconcile`.

    ``store`` is a :class:`modelplane.store.Store`. The runtime (informers, queue, workers) exists
    between :meth:`start` and :meth:`stop`; a controller can be started again after a stop (the
    :class:`~modelplane.control.Manager` does so when leadership comes back), beginning from a
    fresh list.
    """

    #: the primary kind: its changes enqueue their own key
    kind: ClassVar[str]
    #: a name for logs and for the ``source.component`` of the events it records
    name: ClassVar[str] = ""
    #: other kinds to watch, mapped to requests for the primary kind
    watches: ClassVar[Sequence[Watches]] = ()

    def __init__(
        self,
        store: Store,
        *,
        namespace: str | None = None,
        workers: int = 1,
        resync: float | None = None,
        rate_limiter: Callable[[], RateLimiter] = RateLimiter,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a controller needs at least one worker (got workers={workers})")
        self.store = store
        self.namespace = namespace
        self.workers = workers
        self.resync = resync
        self._new_rate_limiter = rate_limiter
        self._lock = threading.Lock()
        self._reconciles = 0
        self._errors = 0
        self._requeues = 0
        self._queue: WorkQueue[Request] | None = None
        #: informers by (kind, namespace, label selector): one per distinct view, shared by watches
        self._informers: dict[tuple[str, str | None, str | None], Informer] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    @property
    def component(self) -> str:
        """The name used in logs and as the events' ``source.component``."""
        return self.name or type(self).__name__

    @abc.abstractmethod
    def reconcile(self, request: Request) -> Result | None:
        """Move the object named by ``request`` toward its spec (see the module docstring)."""

    # -- what subclasses use -------------------------------------------------------------------------

    def informer(self, kind: str | None = None) -> Informer:
        """The running informer (cache) of ``kind`` (default: the primary kind)."""
        kind = kind or self.kind
        for (k, _, _), inf in self._informers.items():
            if k == kind:
                return inf
        raise RuntimeError(
            f"{self.component} has no running informer for {kind!r}: it is available between"
            " start() and stop(), for the primary kind and the kinds in `watches`"
        )

    def live_object(self, request: Request) -> JSON | None:
        """The object of the primary kind that ``request`` names, as the store has it now; None
        when it is gone or being deleted (nothing is left to move toward its spec)."""
        try:
            obj = self.store.get(self.kind, request.namespace, request.name)
        except NotFound:
            return None
        if (obj.get("metadata") or {}).get("deletionTimestamp"):
            return None
        return obj

    def _informer_for(self, kind: str, namespace: str | None, selector: str | None) -> Informer:
        key = (kind, namespace, selector)
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(self.store, kind, namespace, selector, resync=self.resync)
            self._informers[key] = inf
        return inf

    def enqueue(self, request: Request, after: float = 0.0) -> None:
        """Ask for ``request`` to be reconciled (after ``after`` seconds); no-op when stopped."""
        queue = self._queue
        if queue is not None:
            queue.add_after(request, after)

    def write_status(
        self,
        obj: JSON,
        status: JSON,
        *,
        event: StatusEvent | None = None,
        requeue_after: float | None = None,
    ) -> Result:
        """Write the part of ``obj``'s status this controller owns (a rollout's split, an SLO's
        figures) with :func:`~modelplane.control.commit_status`: no Ready transition of its own and
        no ``observedGeneration`` stamp (the part carries its own); ``event`` is recorded once the
        status was written. A write that lost a race (someone else wrote first) asks to be
        reconciled again; otherwise the result comes back after ``requeue_after`` seconds."""
        updated = commit_status(
            self.store,
            obj,
            status,
            component=self.component,
            condition=None,
            observed_generation=False,
            event=event,
        )
        if updated is None:
            return Result(requeue=True)
        return Result(requeue_after=requeue_after)

    def record(self, obj: JSON, event: StatusEvent) -> None:
        """Record ``event`` about ``obj`` as this controller, best effort (a failure is logged)."""
        record_status_event(self.store, obj, event, self.component)

    def stats(self) -> ControllerStats:
        with self._lock:
            return ControllerStats(self._reconciles, self._errors, self._requeues)

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start informers, then (once their caches have synced) the workers; returns at once."""
        if self._threads and any(t.is_alive() for t in self._threads):
            return
        self._stop.clear()
        queue: WorkQueue[Request] = WorkQueue(self._new_rate_limiter(), name=self.component)
        self._queue = queue
        self._informers = {}
        primary = self._informer_for(self.kind, self.namespace, None)
        primary.add_handler(
            on_add=lambda o: queue.add(_request(o)),
            on_update=lambda _old, new: queue.add(_request(new)),
            on_delete=lambda o: queue.add(_request(o)),
        )
        for spec in self.watches:
            inf = self._informer_for(spec.kind, spec.namespace, spec.label_selector)
            inf.add_handler(
                on_add=_mapper(queue, spec.map),
                on_update=_mapper2(queue, spec.map),
                on_delete=_mapper(queue, spec.map),
            )
        for inf in self._informers.values():
            inf.start()
        starter = threading.Thread(
            target=self._start_workers, name=f"{self.component}-start", daemon=True
        )
        self._threads.append(starter)
        starter.start()

    def _start_workers(self) -> None:
        # as controller-runtime: workers start only once every cache is filled, so a reconcile that
        # reads the cache never sees a half-listed world
        for inf in list(self._informers.values()):
            while not inf.wait_for_sync(0.1):
                if self._stop.is_set():
                    return
        queue = self._queue
        if queue is None or self._stop.is_set():
            return
        for i in range(self.workers):
            t = threading.Thread(
                target=self._work, args=(queue,), name=f"{self.component}-{i}", daemon=True
            )
            self._threads.append(t)
            t.start()

    def has_synced(self) -> bool:
        """True when every informer of this controller has listed once."""
        return bool(self._informers) and all(i.has_synced() for i in self._informers.values())

    def stop(self, timeout: float | None = None) -> bool:
        """Stop informers and workers (a reconcile in progress finishes first).

        Returns False if some thread did not end within ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self._stop.set()
        if self._queue is not None:
            self._queue.shut_down()
        ok = True
        for inf in self._informers.values():
            ok = inf.stop(_left(deadline)) and ok
        for t in self._threads:
            t.join(_left(deadline))
            ok = ok and not t.is_alive()
        self._threads = [t for t in self._threads if t.is_alive()]
        self._queue = None
        return ok

    # -- workers -------------------------------------------------------------------------------------

    def _work(self, queue: WorkQueue[Request]) -> None:
        while (request := queue.get()) is not None:
            try:
                self._process(queue, request)
            finally:
                queue.done(request)

    def _process(self, queue: WorkQueue[Request], request: Request) -> None:
        name = self.component
        ACTIVE_WORKERS.labels(name).inc()
        began = time.perf_counter()
        try:
            result = self.reconcile(request) or Result()
        except Exception as exc:
            RECONCILES.labels(name, "error").inc()
            RECONCILE_ERRORS.labels(name).inc()
            with self._lock:
                self._reconciles += 1
                self._errors += 1
            log.warning(
                "%s: reconcile of %s failed (retry %d): %s: %s",
                self.component,
                request,
                queue.num_requeues(request) + 1,
                type(exc).__name__,
                exc,
                exc_info=not _is_user_facing(exc),
            )
            queue.add_rate_limited(request)
            return
        finally:
            RECONCILE_TIME.labels(name).observe(time.perf_counter() - began)
            ACTIVE_WORKERS.labels(name).dec()
        outcome = "requeue_after" if result.requeue_after else "requeue" if result.requeue else ""
        RECONCILES.labels(name, outcome or "success").inc()
        with self._lock:
            self._reconciles += 1
            if result.requeue or result.requeue_after:
                self._requeues += 1
        if result.requeue_after:
            queue.forget(request)
            queue.add_after(request, result.requeue_after)
        elif result.requeue:
            queue.add_rate_limited(request)
        else:
            queue.forget(request)


def _is_user_facing(exc: BaseException) -> bool:
    # our own errors carry a sentence that says it all; anything else deserves its traceback
    return isinstance(exc, ModelplaneError)


def _request(obj: JSON) -> Request:
    namespace, name = object_key(obj)
    return Request(namespace, name)


def _mapper(
    queue: WorkQueue[Request], fn: Callable[[JSON], Iterable[Request]]
) -> Callable[[JSON], None]:
    def handle(obj: JSON) -> None:
        for request in fn(obj):
            queue.add(request)

    return handle


def _mapper2(
    queue: WorkQueue[Request], fn: Callable[[JSON], Iterable[Request]]
) -> Callable[[JSON, JSON], None]:
    def handle(old: JSON, new: JSON) -> None:
        for request in {*fn(old), *fn(new)}:
            queue.add(request)

    return handle


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
