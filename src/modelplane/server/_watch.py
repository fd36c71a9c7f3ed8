"""Watch streams: ``GET <list URL>?watch=true`` as newline-delimited JSON events.

One line per event, ``{"type": "ADDED"|"MODIFIED"|"DELETED"|"BOOKMARK", "object": {...}}``, in
resourceVersion order with no gaps and no repeats:

* Without ``resourceVersion`` (or with ``0``) the stream starts with a synthetic ADDED for every
  object that exists, taken from a list, and continues with the changes after that list's version,
  so nothing is lost or repeated between the two. With ``allowWatchBookmarks=true`` a BOOKMARK
  annotated ``k8s.io/initial-events-end: "true"`` marks the end of the synthetic part.
* With ``resourceVersion=N`` it carries every change after N. When N is older than the kept history
  the stream is a single ``{"type": "ERROR", "object": <Status 410 Expired>}`` line: list again,
  then watch from the list's version. When N is newer than the store's version (a client that
  talked to another store, or made one up), the server waits up to :data:`FRESHNESS_WAIT` seconds
  for the store to get there, then answers kube-apiserver's error: 504 ``Timeout``, "Too large
  resource version", cause ``ResourceVersionTooLarge``, retry after 1 s (see :func:`wait_for_version`).
* With ``allowWatchBookmarks=true``, a stream idle for the bookmark interval gets a BOOKMARK whose
  ``metadata.resourceVersion`` a client may resume from (every change up to it was delivered).
* ``timeoutSeconds=S`` ends the stream after S seconds; a server shutting down ends every stream at
  once. A client resumes from the last version it saw.

Streams wait with :meth:`~modelplane.store.Watch.next_batch_async`, so an idle stream holds no
thread.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from modelplane.api import KindInfo
from modelplane.api.errors import Cause, Expired, ModelplaneError, Timeout
from modelplane.store import JSON, Store, Watch

logger = logging.getLogger("modelplane.server")

MEDIA_TYPE = "application/json;stream=watch"
#: longest single wait on the store when nothing else bounds it
_MAX_WAIT = 60.0
#: initial ADDED events are sent this many per write
_CHUNK = 500

#: how long a list or watch from a future resourceVersion waits for the store (kube-apiserver: 3 s)
FRESHNESS_WAIT = 3.0
#: how often the store's version is read during that wait
_FRESHNESS_POLL = 0.05

_INTERNAL_STATUS = ModelplaneError(
    "the watch failed on the server (an internal error, logged there); watch again from the last"
    " resourceVersion you saw"
)


class WatchStreams:
    """The watch streams open in one app, so a server shutting down can end them promptly.

    Used from the event loop only.
    """

    def __init__(self) -> None:
        self._waiting: set[anyio.CancelScope] = set()
        self.closing = False

    def end_all(self) -> None:
        """End every open stream (and any opened from now on) at its next wait."""
        self.closing = True
        for scope in list(self._waiting):
            scope.cancel()

    @contextmanager
    def waiting(self) -> Iterator[anyio.CancelScope]:
        """A scope around one wait for events, cancelled by :meth:`end_all`."""
        with anyio.CancelScope() as scope:
            if self.closing:
                scope.cancel()
            self._waiting.add(scope)
            try:
                yield scope
            finally:
                self._waiting.discard(scope)


@dataclass(frozen=True)
class WatchRequest:
    info: KindInfo
    #: None: all namespaces (and every cluster-scoped object)
    namespace: str | None
    #: None: start with the existing objects, then changes after them
    resource_version: int | None
    label_selector: str | None
    field_selector: str | None
    bookmarks: bool
    #: seconds after which the stream ends; None: no end
    timeout: float | None


def too_large_resource_version(wanted: int, current: int) -> Timeout:
    """kube-apiserver's ``NewTooLargeResourceVersionError``, field for field."""
    return Timeout(
        f"Timeout: Too large resource version: {wanted}, current: {current}",
        causes=[
            Cause(field="", message="Too large resource version", reason="ResourceVersionTooLarge")
        ],
        retry_after=1,
    )


async def wait_for_version(store: Store, wanted: int, *, timeout: float = FRESHNESS_WAIT) -> None:
    """Return once the store has reached ``wanted``; after ``timeout`` s raise the 504 that
    kube-apiserver gives for a resourceVersion it has not seen (the client retries or relists)."""
    deadline = anyio.current_time() + timeout
    while True:
        current = await run_in_threadpool(store.current_resource_version)
        if current >= wanted:
            return
        if anyio.current_time() >= deadline:
            raise too_large_resource_version(wanted, current)
        # polling the store's version against a deadline, as the cache's freshness wait does
        await anyio.sleep(_FRESHNESS_POLL)


def _line(event_type: str, obj: JSON) -> bytes:
    return orjson.dumps({"type": event_type, "object": obj}) + b"\n"


def _bookmark(info: KindInfo, resource_version: int, *, initial_end: bool = False) -> bytes:
    metadata: dict[str, Any] = {"resourceVersion": str(resource_version)}
    if initial_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return _line(
        "BOOKMARK", {"kind": info.kind, "apiVersion": info.api_version, "metadata": metadata}
    )


def _error(exc: ModelplaneError) -> bytes:
    return _line("ERROR", exc.to_status())


async def _error_stream(exc: ModelplaneError) -> AsyncIterator[bytes]:
    yield _error(exc)


class _WatchResponse(StreamingResponse):
    """The stream of one watch; the watch is closed however the response ends (even unsent)."""

    def __init__(self, events: AsyncIterator[bytes], watch: Watch) -> None:
        super().__init__(events, media_type=MEDIA_TYPE)
        self._watch = watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._watch.close()


async def watch_response(
    store: Store,
    request: WatchRequest,
    streams: WatchStreams,
    *,
    bookmark_interval: float,
    field_filter: Callable[[JSON], bool],
    present: Callable[[JSON], JSON] | None = None,
) -> StreamingResponse:
    """Open the watch (errors here are ordinary HTTP errors) and stream its events.

    ``present``: how each object is shown to this caller (Secret values redacted); None: as is.
    """
    info = request.info
    initial: list[JSON] | None = None
    if request.resource_version is None:
        snapshot = await run_in_threadpool(
            store.list,
            info.kind,
            request.namespace,
            label_selector=request.label_selector,
            field_selector=request.field_selector,
        )
        initial = [o for o in snapshot.items if field_filter(o)]
        since = snapshot.resource_version
    else:
        since = request.resource_version
        await wait_for_version(store, since)
    try:
        watch = await run_in_threadpool(
            store.watch,
            info.kind,
            request.namespace,
            since=since,
            label_selector=request.label_selector,
        )
    except Expired as exc:
        return StreamingResponse(_error_stream(exc), media_type=MEDIA_TYPE)
    events = _events(
        store,
        watch,
        request,
        initial,
        since,
        streams,
        bookmark_interval=bookmark_interval,
        field_filter=field_filter,
        present=present,
    )
    return _WatchResponse(events, watch)


async def _events(
    store: Store,
    watch: Watch,
    request: WatchRequest,
    initial: list[JSON] | None,
    since: int,
    streams: WatchStreams,
    *,
    bookmark_interval: float,
    field_filter: Callable[[JSON], bool],
    present: Callable[[JSON], JSON] | None,
) -> AsyncIterator[bytes]:
    info = request.info
    shown: Callable[[JSON], JSON] = present or (lambda o: o)
    last_version = since
    clock = anyio.current_time
    deadline = clock() + request.timeout if request.timeout else math.inf
    try:
        if initial is not None:
            for start in range(0, len(initial), _CHUNK):
                yield b"".join(_line("ADDED", shown(o)) for o in initial[start : start + _CHUNK])
            if request.bookmarks:
                yield _bookmark(info, since, initial_end=True)
        next_bookmark = clock() + bookmark_interval if request.bookmarks else math.inf
        while not streams.closing:
            now = clock()
            if now >= deadline:
                return
            wait = max(0.0, min(deadline - now, next_bookmark - now, _MAX_WAIT))
            with streams.waiting() as scope:
                batch = await watch.next_batch_async(wait)
            if scope.cancelled_caught or streams.closing:
                return
            if not batch and clock() - now < wait / 2:
                # An empty batch long before the wait elapsed: a closed store answers so. Ask it;
                # Unavailable ends the stream with an ERROR event (below) instead of a busy loop.
                await run_in_threadpool(store.current_resource_version)
            lines: list[bytes] = []
            for event in batch:
                last_version = max(last_version, event.resource_version)
                if event.type == "BOOKMARK":
                    if request.bookmarks:
                        lines.append(_bookmark(info, event.resource_version))
                elif field_filter(event.object):
                    lines.append(_line(event.type, shown(event.object)))
            if lines:
                yield b"".join(lines)
                next_bookmark = clock() + bookmark_interval if request.bookmarks else math.inf
            elif clock() >= next_bookmark:
                yield _bookmark(info, last_version)
                next_bookmark = clock() + bookmark_interval
    except ModelplaneError as exc:  # Expired when the stream fell behind history, Unavailable...
        yield _error(exc)
    except Exception:
        logger.exception("watch of %s failed", info.plural)
        yield _error(_INTERNAL_STATUS)
