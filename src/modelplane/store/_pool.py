"""A small pool of database connections shared by the threads of one store.

Connections are made on demand up to ``size`` and kept for reuse (most recently used first, so a
quiet process keeps few warm). A connection that failed is dropped rather than returned, so the next
caller gets a fresh one. Both backends use it for readers; PostgreSQL also for writers.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from modelplane.api.errors import ModelplaneError, Unavailable

C = TypeVar("C")


class Pool(Generic[C]):
    def __init__(
        self,
        connect: Callable[[], C],
        close: Callable[[C], None],
        *,
        size: int,
        wait: float,
        what: str,
    ) -> None:
        self._connect = connect
        self._close = close
        self._idle: list[C] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._size = size
        self._wait = wait
        self._what = what
        self._closed = False

    @contextmanager
    def connection(self) -> Iterator[C]:
        """Borrow a connection; it is dropped instead of returned if the block raises a
        non-Modelplane error (a broken connection must not be reused)."""
        if not self._slots.acquire(timeout=self._wait):
            raise Unavailable(
                f"all {self._size} connections to {self._what} stayed busy for {self._wait:g} s;"
                " the database is slow or overloaded, retry later",
                retry_after=1,
            )
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._connect()
            healthy = False
            try:
                yield conn
                healthy = True
            except ModelplaneError as exc:
                # an answer of ours (NotFound, Conflict...) leaves the connection healthy
                healthy = not isinstance(exc, Unavailable)
                raise
            finally:
                self._give_back(conn, healthy)
        finally:
            self._slots.release()

    def _give_back(self, conn: C, healthy: bool) -> None:
        with self._lock:
            if healthy and not self._closed:
                self._idle.append(conn)
                return
        self._quietly_close(conn)

    def _quietly_close(self, conn: C) -> None:
        # closing a broken connection may fail again; there is nothing to do about it
        with contextlib.suppress(Exception):
            self._close(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            self._quietly_close(conn)
