"""Watch fan-out: one poller per store, a ring buffer of recent events, many watches.

The events table is the truth; the hub is a window onto its tail. Events enter the window two ways:

* **local commits** are published by the writer right after COMMIT, while it still holds the
  store's write lock, so they arrive in version order and wake watchers without a database round
  trip (this is the path that keeps delivery latency in the low milliseconds);
* **the poller** reads ``events WHERE rv > last`` when woken (a PostgreSQL NOTIFY, or a local
  publish that found a gap because another process wrote in between) and every ``poll_interval``
  seconds (how a SQLite store sees the writes of other processes).

The window always holds *every* event in ``(base, last]``. A publish is accepted only when it is
exactly ``last + 1``; anything else wakes the poller, which reads the table in order. Versions are
dense (each committed write takes the next number under the writers' lock), but nothing relies on
that for correctness: a gap merely sends events through the slower table path.

A watch remembers the last version it has looked at (``pos``). While ``pos`` is inside the window
it is served from memory; when it is behind (started from an old version, or too slow while the
window moved on) it reads the table directly until it is back inside the window, so it catches up
instead of losing events. If the table itself no longer holds ``pos + 1`` (compacted), the watch
raises :class:`~modelplane.api.errors.Expired`. Each event is therefore delivered exactly once, in
version order, to every watch whose filter it passes.

Each delivered object is parsed afresh from the stored JSON, so a consumer may change what it gets
without affecting other watchers.

A watch with a label selector sees objects enter and leave its selection, as in Kubernetes: each
event also records the labels the object had *before* the change (``prev_labels``; None when they
did not change, and in rows written before the column existed), and :meth:`HubWatch._translate`
turns a relabelling into ADDED (into the selection) or DELETED (out of it, carrying the object as
it is now).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import cast

import orjson

from modelplane.api.errors import BadRequest, Expired
from modelplane.store._contract import JSON, Closing, EventType, WatchEvent
from modelplane.store._selector import LabelSelector

log = logging.getLogger("modelplane.store")

#: how many events one read of the table or one delivery handles at most
BATCH = 1000


@dataclass(frozen=True, slots=True)
class Record:
    """One event as the hub keeps it: the fields watches filter on, and the stored JSON."""

    rv: int
    type: EventType
    kind: str
    namespace: str
    labels: dict[str, str]
    raw: str | bytes
    #: the labels before the change when they differ from ``labels``; None: the same (or unknown)
    prev_labels: dict[str, str] | None = None


#: reads ``(events with rv > after, oldest first, at most limit; the compacted horizon)``; the
#: horizon must be read *after* the events so that a compaction in between is noticed
ReadEvents = Callable[[int, int], tuple[list[Record], int]]


def expired(rv: int, horizon: int) -> Expired:
    return Expired(
        f"resourceVersion {rv} is too old: history starts at {horizon};"
        " list again and watch from the list's resourceVersion"
    )


def parse_since(since: int | str | None) -> int:
    """The version a watch starts after (0: from now); BadRequest for anything but a version."""
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


def record_from_row(
    rv: int,
    type_: str,
    kind: str,
    namespace: str,
    raw: str | bytes,
    prev_labels: str | bytes | None = None,
) -> Record:
    meta = orjson.loads(raw).get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    prev = orjson.loads(prev_labels) if prev_labels is not None else None
    return Record(
        rv,
        cast(EventType, type_),
        kind,
        namespace,
        labels if isinstance(labels, dict) else {},
        raw,
        prev if isinstance(prev, dict) else None,
    )


class Hub:
    """The event window of one store, shared by all of its watches."""

    def __init__(
        self,
        read_events: ReadEvents,
        current_rv: Callable[[], int],
        *,
        poll_interval: float,
        capacity: int = 10_000,
        name: str = "store",
    ) -> None:
        self.read_events = read_events
        self._current_rv = current_rv
        self._poll_interval = poll_interval
        self._capacity = max(1, capacity)
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        # the window: _recs[i].rv == _rvs[i], ascending, all events in (_base, _last]
        self._rvs: list[int] = []
        self._recs: list[Record] = []
        self._base = 0
        self._last = 0
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._wake = threading.Event()
        self._started = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the poller (idempotent). Until then publishes are ignored: nobody is watching."""
        if self._started:
            return
        current = self._current_rv()
        with self._cond:
            if self._started or self._stopped:
                return
            self._base = self._last = current
            self._started = True
            self._thread = threading.Thread(
                target=self._run, name=f"modelplane-watch-{self._name}", daemon=True
            )
            self._thread.start()
        self._wake.set()  # catch what was committed between reading `current` and now

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            self._wake_async()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def wake(self, rv: int | None = None) -> None:
        """Ask the poller to read the table now (``rv``: the version someone announced)."""
        if rv is None or rv > self._last:
            self._wake.set()

    # -- feeding the window ------------------------------------------------------------------

    def publish(self, records: list[Record]) -> None:
        """Offer events committed by this process, in version order."""
        if not self._started or not records:
            return
        gap = False
        with self._cond:
            for rec in records:
                if rec.rv == self._last + 1:
                    self._append(rec)
                elif rec.rv > self._last:
                    gap = True  # someone else wrote in between: the poller reads it in order
                    break
            self._notify()
        if gap:
            self._wake.set()

    def _append(self, rec: Record) -> None:
        self._rvs.append(rec.rv)
        self._recs.append(rec)
        self._last = rec.rv
        if len(self._recs) >= 2 * self._capacity:
            # trim in bulk so that appends stay amortised O(1)
            drop = len(self._recs) - self._capacity
            self._base = self._rvs[drop - 1]
            del self._rvs[:drop]
            del self._recs[:drop]

    def _notify(self) -> None:
        self._cond.notify_all()
        self._wake_async()

    def _wake_async(self) -> None:
        waiters, self._async_waiters = self._async_waiters, []
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(_resolve, fut)

    def _run(self) -> None:
        failures = 0
        while not self._stopped:
            self._wake.wait(self._poll_interval if failures == 0 else min(5.0, 0.1 * 2**failures))
            self._wake.clear()
            if self._stopped:
                return
            try:
                self._pull()
                failures = 0
            except Exception as exc:  # the database may be away for a while; keep trying
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("watch poller of %s cannot read events: %s", self._name, exc)

    def _pull(self) -> None:
        while True:
            after = self._last
            recs, horizon = self.read_events(after, BATCH)
            with self._cond:
                if horizon > self._last:
                    # the table was compacted past the window: what lies between is gone, and
                    # watches that still need it will get Expired from the table path
                    self._rvs.clear()
                    self._recs.clear()
                    self._base = self._last = horizon
                    self._notify()
                    continue
                for rec in recs:
                    if rec.rv > self._last:
                        self._append(rec)
                self._notify()
            if len(recs) < BATCH:
                return

    # -- serving watches ---------------------------------------------------------------------

    def take(self, pos: int) -> tuple[list[Record], int] | None:
        """Records after ``pos`` from the window and the new position, or None when ``pos`` is
        behind the window (read the table instead)."""
        with self._cond:
            if pos < self._base:
                return None
            i = bisect.bisect_right(self._rvs, pos)
            recs = self._recs[i : i + BATCH]
        return recs, (recs[-1].rv if recs else pos)

    def wait(self, pos: int, timeout: float | None) -> None:
        """Block until there may be something after ``pos`` (or timeout, or stop)."""
        with self._cond:
            if self._last > pos or pos < self._base or self._stopped:
                return
            self._cond.wait(timeout)

    def add_async_waiter(
        self, pos: int, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]
    ) -> bool:
        """Register ``fut`` to be resolved on the next event; False when one is already there."""
        with self._cond:
            if self._last > pos or pos < self._base or self._stopped:
                return False
            self._async_waiters.append((loop, fut))
            return True

    def remove_async_waiter(self, fut: asyncio.Future[None]) -> None:
        with self._cond:
            self._async_waiters = [(lp, f) for lp, f in self._async_waiters if f is not fut]

    def behind(self, pos: int) -> bool:
        return pos < self._base

    @property
    def stopped(self) -> bool:
        return self._stopped

    def interrupt(self) -> None:
        """Wake every waiting watch (one of them was closed)."""
        with self._cond:
            self._notify()


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class HubWatch(Closing):
    """A :class:`~modelplane.store.Watch` served by a :class:`Hub`."""

    def __init__(
        self,
        hub: Hub,
        pos: int,
        *,
        kind: str | None,
        namespace: str | None,
        selector: LabelSelector,
        opener: Callable[[str, str | bytes], JSON] | None = None,
    ) -> None:
        self._hub = hub
        #: reads a record's stored JSON (of its kind) into the plain object; None: orjson.loads
        self._opener = opener
        self._pos = pos
        self._kind = kind
        self._namespace = namespace
        self._selector = selector
        self._closed = False
        self._lock = threading.Lock()  # one reader at a time keeps pos consistent

    @property
    def resource_version(self) -> int:
        """The last version this watch has looked at (resume from here after a reconnect)."""
        return self._pos

    def _translate(self, rec: Record) -> EventType | None:
        """The type under which this watch sees ``rec``, or None when it does not see it.

        Without a label selector that is the event's own type. With one, as in Kubernetes, the
        object was in the selection before the change (not for ADDED; by ``prev_labels``) and/or
        is in it after (not for DELETED; by the new labels): both, the event as it is; only
        after, ADDED; only before, DELETED (with the object as it is now); neither, None.
        """
        if self._kind is not None and rec.kind != self._kind:
            return None
        if self._namespace is not None and rec.namespace != self._namespace:
            return None
        if not self._selector:
            return rec.type
        now = self._selector.matches(rec.labels)
        before = now if rec.prev_labels is None else self._selector.matches(rec.prev_labels)
        if rec.type == "ADDED":
            return "ADDED" if now else None
        if rec.type == "DELETED":
            return "DELETED" if before else None
        if before:
            return rec.type if now else "DELETED"
        return "ADDED" if now else None

    def _take(self) -> list[WatchEvent]:
        """Whatever is available now (maybe nothing); never blocks on other watches."""
        with self._lock:
            if self._closed:
                return []
            got = self._hub.take(self._pos)
            if got is None:
                recs, horizon = self._hub.read_events(self._pos, BATCH)
                if horizon > self._pos:
                    raise expired(self._pos, horizon)
                pos = recs[-1].rv if recs else self._pos
            else:
                recs, pos = got
            self._pos = pos
        events: list[WatchEvent] = []
        for r in recs:
            type_ = self._translate(r)
            if type_ is not None:
                obj = orjson.loads(r.raw) if self._opener is None else self._opener(r.kind, r.raw)
                events.append(WatchEvent(type_, obj, r.rv))
        return events

    def next_batch(self, timeout: float | None = None) -> list[WatchEvent]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (self._closed or self._hub.stopped):
            events = self._take()
            if events:
                return events
            if self._hub.behind(self._pos):
                continue  # still catching up from the table
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return []
            self._hub.wait(self._pos, remaining)
        return []

    async def next_batch_async(self, timeout: float | None = None) -> list[WatchEvent]:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not (self._closed or self._hub.stopped):
            if self._hub.behind(self._pos):
                # reading the table blocks: keep it off the event loop
                events = await loop.run_in_executor(None, self._take)
            else:
                events = self._take()
            if events:
                return events
            if self._hub.behind(self._pos):
                continue
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return []
            fut: asyncio.Future[None] = loop.create_future()
            if not self._hub.add_async_waiter(self._pos, loop, fut):
                continue
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                return []
            finally:
                self._hub.remove_async_waiter(fut)
        return []

    def __iter__(self) -> Iterator[WatchEvent]:
        while not (self._closed or self._hub.stopped):
            yield from self.next_batch(None)

    def __aiter__(self) -> AsyncIterator[WatchEvent]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[WatchEvent]:
        while not (self._closed or self._hub.stopped):
            for event in await self.next_batch_async(None):
                yield event

    @property
    def closed(self) -> bool:
        return self._closed or self._hub.stopped

    def close(self) -> None:
        self._closed = True
        self._hub.interrupt()

    def __repr__(self) -> str:
        return f"<Watch kind={self._kind} namespace={self._namespace} at {self._pos}>"
