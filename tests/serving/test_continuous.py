"""Continuous batching on the real SmolLM2 (CPU): same greedy tokens as round batching, requests
join a running batch and leave it, cached prompt prefixes are reused.

Steps and joins are read from the engine's own counters and events, never from the clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from tests.control._wait import wait_until

from modelplane.serving import Delta, GenerationRequest
from modelplane.serving._continuous import BatchEvent, ContinuousEngine
from modelplane.serving._transformers import TransformersEngine

pytestmark = pytest.mark.slow

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a land far away, there lived a",
    "def fibonacci(n):",
    "Here is a list of the planets of the solar system, from the closest to the sun outwards:",
]
#: greedy SmolLM2 goes on counting until max_tokens
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread: on a busy 2-core machine two threads made each forward pass ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def rounds(smollm2: tuple[Path, str]) -> Iterator[TransformersEngine]:
    engine = TransformersEngine(smollm2[0])
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def continuous(smollm2: tuple[Path, str]) -> Iterator[ContinuousEngine]:
    engine = ContinuousEngine(smollm2[0], prefill_chunk=8)
    yield engine
    engine.close()


async def _collect(stream: AsyncIterator[Delta]) -> tuple[str, Delta]:
    text, last = "", None
    async for delta in stream:
        text, last = text + delta.text, delta
    assert last is not None
    return text, last


def _greedy(prompt: str, max_tokens: int, stop: list[str] | None = None) -> GenerationRequest:
    return GenerationRequest(prompt, max_tokens, temperature=0.0, stop=stop or [])


async def _wait(check: object, what: str) -> None:
    """Wait (off the event loop, so the streams keep flowing) for ``check()`` to be truthy."""
    await asyncio.to_thread(wait_until, check, timeout=120, what=what)  # type: ignore[arg-type]


def _event(engine: ContinuousEngine, kind: str, request: GenerationRequest) -> BatchEvent | None:
    return next((e for e in engine.events if e.kind == kind and e.request is request), None)


def _recorded(engine: ContinuousEngine, kind: str, request: GenerationRequest) -> BatchEvent:
    """The event, waiting for it: the engine records it just after the delta that a client may
    already have read."""
    return wait_until(lambda: _event(engine, kind, request), timeout=30, what=f"a {kind} event")


def _alone(engine: TransformersEngine, request: GenerationRequest) -> tuple[str, Delta]:
    return asyncio.run(_collect(engine.generate(request)))


def test_greedy_tokens_equal_round_batching_when_requests_join_at_different_steps(
    rounds: TransformersEngine, continuous: ContinuousEngine
) -> None:
    # given prompts of different lengths and answer budgets, each answered alone by round batching
    requests = [_greedy(p, 12 + 6 * i) for i, p in enumerate(PROMPTS)]
    expected = [_alone(rounds, r) for r in requests]

    # when they reach the continuous engine one by one, each a few decode steps after the last
    async def staggered() -> list[tuple[str, Delta]]:
        tasks = []
        for request in requests:
            base = continuous.steps
            tasks.append(asyncio.create_task(_collect(continuous.generate(request))))
            await _wait(
                lambda base=base: continuous.steps >= base + 3 or all(t.done() for t in tasks),
                "three decode steps",
            )
        return await asyncio.gather(*tasks)

    got = asyncio.run(staggered())
    # then every answer is the same text from the same number of tokens, ending the same way
    for (want_text, want), (text, last) in zip(expected, got, strict=True):
        assert text == want_text
        assert (last.completion_tokens, last.finish_reason) == (
            want.completion_tokens,
            want.finish_reason,
        )
    joins = [_recorded(continuous, "join", r) for r in requests]
    assert len({j.step for j in joins}) > 1  # they joined at different steps


def test_a_request_arriving_while_another_decodes_starts_before_the_first_finishes(
    continuous: ContinuousEngine,
) -> None:
    long, short = _greedy(COUNTING, 48), _greedy(PROMPTS[0], 4)

    async def scenario() -> None:
        first = asyncio.create_task(_collect(continuous.generate(long)))
        # given the first request decoding
        await _wait(lambda: _event(continuous, "join", long), "the first request to start")
        base = continuous.steps
        await _wait(lambda: continuous.steps >= base + 2, "two decode steps")
        # when a second one arrives
        await _collect(continuous.generate(short))
        await first

    asyncio.run(scenario())
    # then the second joined the running batch and finished before the first did
    first_done = _recorded(continuous, "finish", long)
    second_join = _recorded(continuous, "join", short)
    second_done = _recorded(continuous, "finish", short)
    assert second_join.step < first_done.step
    assert second_done.step < first_done.step


def test_a_cancelled_request_leaves_the_batch_at_the_next_step(
    continuous: ContinuousEngine,
) -> None:
    doomed, kept = _greedy(COUNTING, 200), _greedy(PROMPTS[1], 40)

    async def scenario() -> tuple[int, tuple[str, Delta]]:
        other = asyncio.create_task(_collect(continuous.generate(kept)))
        stream = continuous.generate(doomed)
        # given a request that has streamed a few deltas
        for _ in range(3):
            await anext(stream)
        # when its client goes away
        at = continuous.steps
        await stream.aclose()  # type: ignore[attr-defined]
        await _wait(lambda: _event(continuous, "cancel", doomed), "the cancel")
        return at, await other

    at, (text, last) = asyncio.run(scenario())
    # then it left the batch at the next step and the other request went on to its end
    cancel = _recorded(continuous, "cancel", doomed)
    assert cancel.step <= at + 1
    assert _event(continuous, "finish", doomed) is None
    assert last.finish_reason is not None and text


def test_a_prompt_with_a_cached_prefix_skips_it_and_gives_the_same_answer(
    rounds: TransformersEngine, continuous: ContinuousEngine
) -> None:
    shared = "You are a terse assistant who answers in one short sentence. " * 3
    first, second = (
        _greedy(shared + "Question: what is 2+2?", 10),
        _greedy(shared + "Question: what colour is the sky?", 10),
    )
    _alone(continuous, first)
    prefix_tokens = len(continuous.tokenizer(shared, add_special_tokens=False)["input_ids"])
    # when a prompt sharing that system text arrives
    before = continuous.reused_prefix_tokens
    text, last = _alone(continuous, second)
    # then the shared tokens were not run again, and the answer is the one without reuse
    assert continuous.reused_prefix_tokens - before >= prefix_tokens - 1
    want_text, want = _alone(rounds, second)
    assert (text, last.completion_tokens) == (want_text, want.completion_tokens)


def test_stop_strings_and_max_tokens_hold(continuous: ContinuousEngine) -> None:
    # a stop string cuts the answer before it and ends the stream with finish_reason stop
    text, last = _alone(continuous, _greedy(PROMPTS[0], 20, stop=["."]))
    assert "." not in text and "Paris" in text
    assert last.finish_reason == "stop"
    # max_tokens ends it with finish_reason length after exactly that many tokens
    text, last = _alone(continuous, _greedy(COUNTING, 5))
    assert (last.finish_reason, last.completion_tokens) == ("length", 5)


def test_gauges_show_the_waiting_the_running_and_the_kv_they_hold(
    smollm2: tuple[Path, str],
) -> None:
    engine = ContinuousEngine(smollm2[0], max_batch=1)
    long, queued = _greedy(COUNTING, 200), _greedy(PROMPTS[0], 3)
    try:

        async def scenario() -> None:
            stream = engine.generate(long)
            await anext(stream)
            # given a full batch (max_batch 1), a second request waits its turn
            second = asyncio.create_task(_collect(engine.generate(queued)))
            await _wait(
                lambda: (
                    (engine.queue_depth, engine.running) == (1, 1) and 0 < engine.kv_cache_usage < 1
                ),
                "one request queued, one running and holding KV",
            )
            # when the first one's client goes away, the second runs
            await stream.aclose()  # type: ignore[attr-defined]
            await second

        asyncio.run(scenario())
        # then it started only once the first left, and nothing is held afterwards
        first_left, second_join = (
            _recorded(engine, "cancel", long),
            _recorded(engine, "join", queued),
        )
        assert second_join.step >= first_left.step
        wait_until(lambda: engine.kv_cache_usage == 0 and engine.running == 0, what="idle")
        assert engine.queue_depth == 0
    finally:
        engine.close()


def test_a_long_prompt_is_prefilled_in_chunks_between_decode_steps_of_the_running_batch(
    continuous: ContinuousEngine,
) -> None:
    running, long_prompt = _greedy(COUNTING, 200), _greedy(" ".join(PROMPTS * 4), 2)
    prompt_tokens = len(
        continuous.tokenizer(long_prompt.prompt, add_special_tokens=False)["input_ids"]
    )
    chunks = -(-prompt_tokens // continuous.prefill_chunk)
    assert chunks > 4  # the prompt is several chunks long (prefill_chunk is 8 here)

    async def scenario() -> int:
        stream = continuous.generate(running)
        await anext(stream)
        # given a sequence decoding, when a long prompt arrives
        arrived = continuous.steps
        await _collect(continuous.generate(long_prompt))
        await stream.aclose()  # type: ignore[attr-defined]
        return arrived

    arrived = asyncio.run(scenario())
    # then the running sequence went on decoding, one step per chunk, until the new one joined
    joined = _recorded(continuous, "join", long_prompt)
    assert joined.step - arrived >= chunks - 2
    assert _recorded(continuous, "cancel", running).step >= joined.step


def test_a_high_priority_request_preempts_a_low_one_which_resumes_with_the_same_answer(
    smollm2: tuple[Path, str], rounds: TransformersEngine
) -> None:
    # given a full batch (max_batch 2) of two low-priority requests, each answered alone before
    engine = ContinuousEngine(smollm2[0], max_batch=2)
    lows = [GenerationRequest(p, 24, temperature=0.0, priority=-5) for p in (COUNTING, PROMPTS[1])]
    high = GenerationRequest(PROMPTS[0], 4, temperature=0.0, priority=10)
    expected = [_alone(rounds, r)[0] for r in lows]
    try:

        async def scenario() -> list[tuple[str, Delta]]:
            tasks = [asyncio.create_task(_collect(engine.generate(r))) for r in lows]
            await _wait(
                lambda: all(_event(engine, "join", r) for r in lows), "both low requests to run"
            )
            base = engine.steps
            await _wait(lambda: engine.steps >= base + 2, "two decode steps")
            # when a high-priority request arrives
            await _collect(engine.generate(high))
            return await asyncio.gather(*tasks)

        got = asyncio.run(scenario())
        # then a low one left the batch at a decode step, the high one ran and finished, and the
        # low one came back afterwards
        preempted = next(e for e in engine.events if e.kind == "preempt")
        assert preempted.request is lows[1]  # the latest joined of the lowest priority
        high_join, high_done = _recorded(engine, "join", high), _recorded(engine, "finish", high)
        resumed = _recorded(engine, "resume", lows[1])
        assert preempted.step <= high_join.step <= high_done.step <= resumed.step
        assert high_done.step < _recorded(engine, "finish", lows[1]).step
        assert engine.preemptions == 1
        # and each low answer is the one it gives alone (greedy): only later, not different
        assert [text for text, _ in got] == expected
    finally:
        engine.close()
