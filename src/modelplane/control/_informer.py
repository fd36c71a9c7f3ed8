"""Informers: an in-memory cache of one kind, kept current by list + watch, with change handlers.

The loop, as client-go's reflector: list every object (the cache becomes exactly the list), then
watch from the list's resourceVersion and apply each event to the cache. When the watch falls behind
the store's kept history (:class:`~modelplane.api.errors.Expired`) the informer lists again and
**emits the difference** as ordinary add/update/delete callbacks: a handler never misses that an
object went away, even when its DELETED event was compacted out of history (level-triggered).

A stopped informer keeps its cache and resourceVersion; :meth:`Informer.start` again resumes the
watch from there (relisting only if that version has expired meanwhile).

Handlers run on the informer's thread, in event order, and must be quick (controllers only enqueue
keys). An exception in a handler is logged and does not stop the informer.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelplane.api.errors import Expired
from modelplane.control._loop import DaemonLoop

if TYPE_CHECKING:
    from modelplane.store import Store, Watch

log = logging.getLogger("modelplane.control.informer")

JSON = dict[str, Any]
ObjectKey = tuple[str, str]
"""(namespace, name); namespace is ``""`` for cluster-scoped kinds."""

#: how long one watch poll blocks: bounds how quickly stop() is noticed and resync is run
_POLL_SECONDS = 0.2
#: wait before retrying after the store failed (Unavailable and the like), doubled up to the max
_ERROR_BACKOFF = (0.1, 5.0)


@dataclass(frozen=True, slots=True)
class EventHandler:
    """Callbacks for changes of the cached objects; any may be None.

    ``on_update`` also runs on resync with ``old is new`` content (same resourceVersion).
    """

    on_add: Callable[[JSON], None] | None = None
    on_update: Callable[[JSON, JSON], None] | None = None
    on_delete: Callable[[JSON], None] | None = None


def object_key(obj: JSON) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _rv(obj: JSON) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Informer(DaemonLoop):
    """A watched cache of objects of ``kind`` (in ``namespace``, or all; matching a label selector).

    ``resync``: every that many seconds, call ``on_update(obj, obj)`` for every cached object, so
    controllers revisit them even without changes (None: never).

    ``label_selector`` is passed to the store's list and watch. As in Kubernetes, an object
    relabelled *into* the selection arrives as an add, and one relabelled *out of* it as a
    deletion (the store's watch reports it so), so the cache holds exactly the selected objects.

    ``store`` is a :class:`modelplane.store.Store`.
    """

    def __init__(
        self,
        store: Store,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        resync: float | None = None,
    ) -> None:
        if resync is not None and resync <= 0:
            raise ValueError(f"resync must be a positive number of seconds or None (got {resync})")
        self.store = store
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.resync = resync
        self._lock = threading.RLock()
        self._cache: dict[ObjectKey, JSON] = {}
        self._handlers: list[EventHandler] = []
        #: version the cache reflects; None until the first list
        self._resource_version: int | None = None
        self._synced = threading.Event()
        super().__init__(f"informer-{kind}")

    # -- reading the cache --------------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> JSON | None:
        """The cached object, or None. The dict is shared: do not modify it."""
        with self._lock:
            return self._cache.get((namespace, name))

    def list(self) -> builtins.list[JSON]:
        """Every cached object, ordered by (namespace, name). The dicts are shared: do not modify."""
        with self._lock:
            return [self._cache[k] for k in sorted(self._cache)]

    def keys(self) -> builtins.list[ObjectKey]:
        with self._lock:
            return sorted(self._cache)

    @property
    def resource_version(self) -> int | None:
        """The store version the cache reflects (None before the first list)."""
        with self._lock:
            return self._resource_version

    def has_synced(self) -> bool:
        """True once the first list is in the cache (and stays true across relists)."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Block until :meth:`has_synced` or ``timeout`` seconds; returns whether it synced."""
        return self._synced.wait(timeout)

    # -- handlers -----------------------------------------------------------------------------------

    def add_handler(
        self,
        on_add: Callable[[JSON], None] | None = None,
        on_update: Callable[[JSON, JSON], None] | None = None,
        on_delete: Callable[[JSON], None] | None = None,
    ) -> EventHandler:
        """Register callbacks; objects already cached are replayed to ``on_add`` at once."""
        handler = EventHandler(on_add, on_update, on_delete)
        with self._lock:
            self._handlers.append(handler)
            if on_add is not None:
                for key in sorted(self._cache):
                    self._call(on_add, self._cache[key])
        return handler

    def _call(self, fn: Callable[..., None], *args: JSON) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s informer: an event handler failed", self.kind)

    def _emit_add(self, obj: JSON) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _emit_update(self, old: JSON, new: JSON) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _emit_delete(self, obj: JSON) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    # -- lifecycle ----------------------------------------------------------------------------------

    # (start, stop and running: DaemonLoop's; listing and watching run on its thread)

    # -- the loop -----------------------------------------------------------------------------------

    def _run(self) -> None:
        backoff = _ERROR_BACKOFF[0]
        while not self._stop.is_set():
            if self.store.closed:
                # the store is gone for good: nothing will ever arrive, and a retry would spin
                log.info("%s informer: the store was closed; stopping", self.kind)
                return
            try:
                self._follow(self._open())
                backoff = _ERROR_BACKOFF[0]
            except Expired as exc:
                log.info("%s informer: watch expired (%s); relisting", self.kind, exc)
                with self._lock:
                    self._resource_version = None
            except Exception as exc:
                # the store is unavailable or failed: keep the cache, retry from the same version
                log.warning(
                    "%s informer: %s: %s; retrying in %.1fs",
                    self.kind,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _ERROR_BACKOFF[1])

    def _open(self) -> Watch:
        """A watch that, with the cache, misses nothing: resumed, or opened before a relist."""
        with self._lock:
            since = self._resource_version
        if since is not None:
            return self.store.watch(
                self.kind, self.namespace, since=since, label_selector=self.label_selector
            )
        # The watch is opened *before* the list, from "now": the store reads ``since=0`` as "from
        # now", so listing an empty store (version 0) and then watching from 0 would lose writes
        # landing in between. Events the list already includes are skipped in _apply.
        watch = self.store.watch(self.kind, self.namespace, label_selector=self.label_selector)
        try:
            self._relist()
        except BaseException:
            with contextlib.suppress(Exception):
                watch.close()
            raise
        return watch

    def _relist(self) -> None:
        listed = self.store.list(self.kind, self.namespace, label_selector=self.label_selector)
        fresh = {object_key(obj): obj for obj in listed.items}
        with self._lock:
            old = self._cache
            self._cache = fresh
            self._resource_version = int(listed.resource_version)
            # emit the difference, so handlers converge on the listed state
            for key in sorted(old.keys() - fresh.keys()):
                self._emit_delete(old[key])
            for key in sorted(fresh):
                before = old.get(key)
                if before is None:
                    self._emit_add(fresh[key])
                elif _rv(before) != _rv(fresh[key]):
                    self._emit_update(before, fresh[key])
        self._synced.set()

    def _follow(self, watch: Watch) -> None:
        try:
            period = self.resync
            next_resync = None if period is None else time.monotonic() + period
            while not self._stop.is_set():
                wait = _POLL_SECONDS
                if next_resync is not None:
                    wait = max(0.0, min(wait, next_resync - time.monotonic()))
                for event in watch.next_batch(wait):
                    self._apply(event.type, event.object, event.resource_version)
                if watch.closed:
                    return  # the watch ended (its store closed): reopen, or stop with the store
                due = next_resync is not None and time.monotonic() >= next_resync
                if period is not None and due:
                    self._resync()
                    next_resync = time.monotonic() + period
        finally:
            with contextlib.suppress(Exception):
                watch.close()

    def _apply(self, type_: str, obj: JSON, resource_version: int) -> None:
        with self._lock:
            if self._resource_version is not None and resource_version <= self._resource_version:
                return  # already in the cache (the list that followed the watch's opening had it)
            self._resource_version = resource_version
            if type_ == "BOOKMARK":
                return
            key = object_key(obj)
            old = self._cache.get(key)
            if type_ == "DELETED":
                if old is not None:
                    del self._cache[key]
                    self._emit_delete(obj)
                return
            self._cache[key] = obj
            if old is None:
                self._emit_add(obj)
            else:
                self._emit_update(old, obj)

    def _resync(self) -> None:
        with self._lock:
            for key in sorted(self._cache):
                obj = self._cache[key]
                self._emit_update(obj, obj)
