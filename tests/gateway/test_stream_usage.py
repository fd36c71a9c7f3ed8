"""A streamed answer is charged with the ``usage`` its upstream reported, in whatever network
chunk that event came: the limiter's windows and the metrics settle with it when the stream ends."""

from __future__ import annotations

from typing import Any

import orjson
from tests.control._wait import wait_until
from tests.gateway._env import Env

from modelplane.api import LOCAL_OPERATOR
from modelplane.gateway import PRICE_ANNOTATION
from modelplane.gateway._telemetry import StreamWatch

_REPLY = "one two three four five six seven"  # 7 words in 3 content chunks


def _stream(env: Env, model: str, **extra: Any) -> dict[str, Any]:
    """Read a whole streamed chat answer; the usage event the client saw."""
    body = {
        "model": model,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 500,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }
    with env.client.stream("POST", "/chat/completions", json=body) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    (usage,) = [orjson.loads(x[6:])["usage"] for x in lines if '"usage":{' in x]
    assert isinstance(usage, dict)
    return usage


def test_tokens_per_minute_window_holds_the_reported_total_when_done_comes_in_a_later_chunk(
    env: Env,
) -> None:
    # given an upstream that sends `data: [DONE]` in a write of its own, after the usage event
    fake = env.fake(reply=_REPLY, chunks=3)
    fake.done_gap = 0.2
    env.endpoint("ep", {"v1": [fake]}, limits={"tokensPerMinute": 100_000})
    # when a client reads a whole streamed answer that reserved max_tokens 500
    usage = _stream(env, "ep")
    # then the window holds exactly the total the upstream reported, not the reservation
    assert usage["total_tokens"] == 12 and usage["completion_tokens"] == 7
    limiter = env.gw.gateway.limiter
    wait_until(
        lambda: limiter.used("default", "ep", LOCAL_OPERATOR.name) == (1.0, 12.0),
        timeout=10,
        what="the stream to settle its reported usage",
    )


def test_budget_is_spent_by_the_reported_total_when_done_comes_in_a_later_chunk(
    env: Env,
) -> None:
    # given $1 per million tokens, a budget of $0.00002 (20 tokens), [DONE] sent separately
    fake = env.fake(reply=_REPLY, chunks=3)
    fake.done_gap = 0.1
    env.endpoint(
        "ep",
        {"v1": [fake]},
        limits={"budget": {"amount": 0.00002, "period": "day"}},
        annotations={PRICE_ANNOTATION: "1"},
    )
    # when two streamed answers of 12 tokens each are read (24 > 20)
    _stream(env, "ep", max_tokens=5)
    _stream(env, "ep", max_tokens=5)
    # then the third is refused: what was spent is the usage, however it was chunked
    # (the relay settles before it ends the response, so the client has seen its end after that)
    r = env.chat("ep", max_tokens=5)
    assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded"


def test_metrics_count_the_reported_completion_tokens_not_the_content_chunks(env: Env) -> None:
    # given [DONE] in a separate write, and 7 completion tokens in 3 content chunks
    fake = env.fake(reply=_REPLY, chunks=3)
    fake.done_gap = 0.1
    env.endpoint("ep", {"v1": [fake]})
    # when two streamed answers are read
    _stream(env, "ep")
    _stream(env, "ep")
    # then the output token counter holds 2 x 7
    line = 'modelplane_gateway_output_tokens_total{model="ep",version="v1"} 14'
    wait_until(
        lambda: line in env.client.get("/_modelplane/metrics").text,
        timeout=10,
        what="the output tokens to be counted",
    )


def test_a_client_that_leaves_after_the_usage_event_is_charged_what_it_saw(env: Env) -> None:
    # given an upstream that waits long before its [DONE]
    fake = env.fake(reply=_REPLY, chunks=3)
    fake.done_gap = 30.0
    env.endpoint("ep", {"v1": [fake]}, limits={"tokensPerMinute": 100_000})
    body = {
        "model": "ep",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 500,
        "messages": [{"role": "user", "content": "hi"}],
    }
    # when the client reads up to the usage event and disconnects
    with env.client.stream("POST", "/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if '"usage":{' in line:
                break
    # then the reservation is replaced by the usage seen
    limiter = env.gw.gateway.limiter
    wait_until(
        lambda: limiter.used("default", "ep", LOCAL_OPERATOR.name) == (1.0, 12.0),
        timeout=10,
        what="the abandoned stream to settle",
    )


def _fed(*chunks: bytes) -> StreamWatch:
    watch = StreamWatch()
    for chunk in chunks:
        watch.feed(chunk)
    return watch


def test_stream_watch_keeps_the_last_usage_event_across_any_chunking() -> None:
    usage = (
        b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}'
    )
    finish = b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
    stream = b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n' + finish + b"\n\n"
    stream += usage + b"\r\n\r\ndata: [DONE]\n\n"
    # split at every position: the usage event may straddle two reads, or [DONE] come alone
    for at in range(1, len(stream)):
        watch = _fed(stream[:at], stream[at:])
        assert watch.tokens() == (7, 12), at
        assert watch.finish == finish, at
    # one byte per read
    assert _fed(*(stream[i : i + 1] for i in range(len(stream)))).tokens() == (7, 12)
    # no usage at all: zeros
    assert _fed(b"data: [DONE]\n\n").tokens() == (0, 0)
