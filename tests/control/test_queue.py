"""The work queue: de-duplication, one worker per key, backoff, shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from modelplane.control import RateLimiter, WorkQueue


def test_a_key_queued_twice_is_processed_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("b")
    q.add("a")

    assert len(q) == 2
    assert q.get(timeout=1) == "a"
    assert q.get(timeout=1) == "b"
    assert q.get(timeout=0.01) is None


def test_a_key_re_added_while_processing_is_handed_out_again_only_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    key = q.get(timeout=1)
    assert key == "a"

    # when: an event about "a" arrives while a worker processes it
    q.add("a")
    q.add("a")

    # then: no second worker gets it meanwhile, and it comes back exactly once after done
    assert q.get(timeout=0.05) is None
    q.done("a")
    assert q.get(timeout=1) == "a"
    q.done("a")
    assert q.get(timeout=0.01) is None


def test_concurrent_workers_never_process_one_key_at_the_same_time() -> None:
    q: WorkQueue[int] = WorkQueue()
    active: set[int] = set()
    overlaps: list[int] = []
    processed: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        while (key := q.get()) is not None:
            with lock:
                if key in active:
                    overlaps.append(key)
                active.add(key)
            # give another worker the chance to grab the same key if the queue allowed it
            time.sleep(0.001)
            with lock:
                active.discard(key)
                processed.append(key)
            q.done(key)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(200):
        for key in range(5):
            q.add(key)
    deadline = time.monotonic() + 10
    while (len(q) or q.pending_delayed()) and time.monotonic() < deadline:
        time.sleep(0.01)
    q.shut_down()
    for t in threads:
        t.join(5)

    assert overlaps == []
    assert set(processed) == set(range(5))
    assert not any(t.is_alive() for t in threads)


def test_shutdown_wakes_a_getter_waiting_without_timeout() -> None:
    q: WorkQueue[str] = WorkQueue()
    got: list[str | None] = []
    getter = threading.Thread(target=lambda: got.append(q.get()))
    getter.start()

    q.shut_down()
    getter.join(5)

    assert not getter.is_alive()
    assert got == [None]
    q.add("late")
    assert q.get(timeout=0.01) is None


def test_add_after_hands_the_key_out_no_earlier_than_its_delay() -> None:
    q: WorkQueue[str] = WorkQueue()
    start = time.monotonic()
    q.add_after("a", 0.2)

    assert q.get(timeout=0.05) is None
    assert q.pending_delayed() == 1
    assert q.get(timeout=5) == "a"
    assert time.monotonic() - start >= 0.2


def test_the_earlier_of_two_delayed_adds_wins_and_the_key_comes_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 30)
    q.add_after("a", 0.05)

    assert q.get(timeout=5) == "a"
    q.done("a")
    assert q.pending_delayed() == 0
    assert q.get(timeout=0.1) is None


def test_backoff_doubles_per_failure_up_to_the_max_and_forget_resets_it() -> None:
    limiter = RateLimiter(base_delay=0.01, max_delay=0.05, qps=1000, burst=1000)

    delays = [limiter.when("a") for _ in range(5)]
    other = limiter.when("b")
    limiter.forget("a")

    assert delays == [0.01, 0.02, 0.04, 0.05, 0.05]
    assert other == 0.01, "backoff is per key"
    assert limiter.failures("a") == 0
    assert limiter.when("a") == 0.01


def test_token_bucket_spaces_retries_once_the_burst_is_spent() -> None:
    now = [100.0]
    limiter = RateLimiter(base_delay=0.0, max_delay=1.0, qps=10, burst=2, clock=lambda: now[0])

    first = [limiter.when(k) for k in ("a", "b", "c", "d")]
    now[0] += 1.0  # a second later the bucket is full again (capped at burst)
    later = [limiter.when(k) for k in ("e", "f", "g")]

    assert first == [0.0, 0.0, 0.1, 0.2]
    assert later[:2] == [0.0, 0.0]
    assert abs(later[2] - 0.1) < 1e-9


def test_rate_limited_requeue_waits_for_the_backoff_then_forget_restarts_it() -> None:
    q: WorkQueue[str] = WorkQueue(RateLimiter(base_delay=0.2, max_delay=10))
    start = time.monotonic()

    q.add_rate_limited("a")

    assert q.num_requeues("a") == 1
    assert q.get(timeout=0.05) is None
    assert q.get(timeout=5) == "a"
    assert time.monotonic() - start >= 0.2
    q.done("a")
    q.forget("a")
    assert q.num_requeues("a") == 0


def test_rate_limiter_refuses_nonsense_settings_with_a_sentence() -> None:
    with pytest.raises(ValueError, match="base_delay <= max_delay"):
        RateLimiter(base_delay=2, max_delay=1)
    with pytest.raises(ValueError, match="qps > 0"):
        RateLimiter(qps=0)
