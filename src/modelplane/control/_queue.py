"""The work queue between informers and reconcile workers, in the client-go ``workqueue`` style.

Guarantees, which the controllers rely on:

* **De-duplication.** A key added while it is already waiting is not added twice: many events about
  one object between two reconciles cost one reconcile.
* **No concurrent processing of one key.** A key handed out by :meth:`WorkQueue.get` is *processing*
  until :meth:`WorkQueue.done`. Added meanwhile, it is marked dirty and queued again at ``done``:
  processed once more, after the current run, never by two workers at once.
* **Delayed and rate-limited adds.** :meth:`WorkQueue.add_after` makes a key ready later (when a key
  already waits for a later time, the earlier time wins); :meth:`WorkQueue.add_rate_limited` asks the
  :class:`RateLimiter` how long to wait: per-key exponential backoff, and an overall token bucket so
  that a storm of failures cannot spin the CPU. :meth:`WorkQueue.forget` ends a key's backoff after
  a success.
* **Shutdown.** :meth:`WorkQueue.shut_down` wakes every waiting getter, which then gets ``None``;
  keys still queued are dropped, which is safe because reconciliation is level-triggered (the next
  start lists every object again).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from modelplane.control._metrics import QueueMetrics

K = TypeVar("K", bound=Hashable)


class RateLimiter:
    """How long a failed key waits before its next try.

    The delay is the larger of two limits, as client-go's default controller rate limiter:

    * per key, exponential: ``base_delay * 2**failures``, capped at ``max_delay``, where
      ``failures`` counts the :meth:`when` calls since the key's last :meth:`forget`;
    * overall, a token bucket of ``burst`` tokens refilled at ``qps`` per second: every retry of any
      key takes a token, and once the bucket is empty retries are spaced ``1/qps`` apart.

    Thread-safe. ``clock`` (monotonic seconds) is a parameter so the bucket can be reasoned about.
    """

    def __init__(
        self,
        base_delay: float = 0.005,
        max_delay: float = 300.0,
        *,
        qps: float = 10.0,
        burst: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if base_delay < 0 or max_delay < base_delay:
            raise ValueError(
                f"backoff needs 0 <= base_delay <= max_delay (got {base_delay} and {max_delay})"
            )
        if qps <= 0 or burst < 1:
            raise ValueError(f"the token bucket needs qps > 0 and burst >= 1 (got {qps}, {burst})")
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._failures: dict[Hashable, int] = {}
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def when(self, key: Hashable) -> float:
        """Seconds ``key`` should wait before its next try; counts one more failure for it."""
        with self._lock:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            # 2**64 already exceeds any sensible max_delay; capping the exponent avoids overflow
            backoff = min(self.max_delay, self.base_delay * 2.0 ** min(failures, 64))
            return max(backoff, self._reserve_token())

    def _reserve_token(self) -> float:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, key: Hashable) -> None:
        """Reset ``key``'s backoff (after it was processed successfully)."""
        with self._lock:
            self._failures.pop(key, None)

    def failures(self, key: Hashable) -> int:
        """How many times ``key`` was retried since its last :meth:`forget`."""
        with self._lock:
            return self._failures.get(key, 0)


class WorkQueue(Generic[K]):
    """A de-duplicating, delaying, rate-limited FIFO of keys for reconcile workers.

    Workers loop ``key = q.get(); try: ...; finally: q.done(key)`` until ``get`` returns ``None``
    (the queue was shut down). See the module docstring for the guarantees.
    """

    def __init__(self, rate_limiter: RateLimiter | None = None, *, name: str = "") -> None:
        self.name = name
        self.rate_limiter = rate_limiter if rate_limiter is not None else RateLimiter()
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[K] = deque()
        #: keys that need processing: queued, or re-added while processing
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        #: delayed keys: a heap of (due, seq, key); ``_due`` holds the live due time per key, so
        #: superseded heap entries are recognised and skipped
        self._heap: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._seq = itertools.count()
        self._shutting_down = False
        #: when each queued key was added, and when each processing key was handed out
        self._since: dict[K, float] = {}
        self._metrics = QueueMetrics.of(name)

    # -- adding ----------------------------------------------------------------------------------

    def add(self, key: K) -> None:
        """Make ``key`` ready now (no-op when it already waits, or after shutdown)."""
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        self._metrics.adds.inc()
        if key in self._processing:
            return  # queued again by done(): never two workers on one key
        self._enqueue_locked(key)

    def _enqueue_locked(self, key: K) -> None:
        self._queue.append(key)
        self._since[key] = time.monotonic()
        self._metrics.depth.set(len(self._queue))
        self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        """Make ``key`` ready in ``delay`` seconds; an earlier pending time for it wins."""
        if delay <= 0:
            self.add(key)
            return
        due = time.monotonic() + delay
        with self._cond:
            if self._shutting_down:
                return
            current = self._due.get(key)
            if current is not None and current <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._seq), key))
            # a getter may be sleeping until a later due time (or forever): let it recompute
            self._cond.notify()

    def add_rate_limited(self, key: K) -> None:
        """Retry ``key`` after the delay the rate limiter gives (backoff grows per failure)."""
        self._metrics.retries.inc()
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: K) -> None:
        """End ``key``'s backoff: its next failure waits ``base_delay`` again."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.rate_limiter.failures(key)

    # -- taking ----------------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> K | None:
        """The next ready key, marked processing; ``None`` after shutdown or ``timeout`` seconds.

        Call :meth:`done` with the key when finished with it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._shutting_down:
                    return None
                now = time.monotonic()
                self._promote_due_locked(now)
                if self._queue:
                    key = self._queue.popleft()
                    self._processing.add(key)
                    self._dirty.discard(key)
                    self._metrics.depth.set(len(self._queue))
                    self._metrics.queued.observe(now - self._since.get(key, now))
                    self._since[key] = now
                    return key
                wait = None if deadline is None else deadline - now
                if wait is not None and wait <= 0:
                    return None
                if self._heap:
                    until_due = self._heap[0][0] - now
                    wait = until_due if wait is None else min(wait, until_due)
                self._cond.wait(wait)

    def _promote_due_locked(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            if self._due.get(key) != due:
                continue  # superseded by an earlier add_after
            del self._due[key]
            self._add_locked(key)

    def done(self, key: K) -> None:
        """Finish processing ``key``; if it was added meanwhile, queue it again."""
        with self._cond:
            self._processing.discard(key)
            began = self._since.pop(key, None)
            if began is not None:
                self._metrics.worked.observe(time.monotonic() - began)
            if key in self._dirty and not self._shutting_down:
                self._enqueue_locked(key)

    # -- lifecycle -------------------------------------------------------------------------------

    def shut_down(self) -> None:
        """Stop handing out keys: every waiting and later :meth:`get` returns ``None``."""
        with self._cond:
            self._shutting_down = True
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        with self._cond:
            return self._shutting_down

    def __len__(self) -> int:
        """Keys ready now (not counting delayed ones or ones being processed)."""
        with self._cond:
            self._promote_due_locked(time.monotonic())
            return len(self._queue)

    def pending_delayed(self) -> int:
        """Keys waiting for a later time (``add_after`` / ``add_rate_limited``)."""
        with self._cond:
            return len(self._due)
