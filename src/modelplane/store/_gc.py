"""Pausing Python's cyclic garbage collector while the store parses many objects.

Parsing 10,000 objects allocates some 100,000 containers, which triggers full collections that
walk every live object of the process: with a few thousand objects already alive (an informer's
cache) that made a list of 10,000 objects 1.6-2 times slower (measured, see docs/benchmarks.md).
JSON never makes reference cycles, so nothing is lost by waiting.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block; nested pauses from several threads are
    counted and the collector resumes after the last (if it was enabled before the first)."""
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()
