"""OpenTelemetry traces of gateway requests: one CLIENT span per request with the GenAI
attributes, a child span per upstream attempt; recorded by the real SDK's in-memory exporter."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import orjson
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tests.control._wait import wait_until
from tests.gateway._env import Env
from tests.gateway._spans import children, requests

from modelplane.gateway._telemetry import configure_tracing


def test_a_chat_completion_gives_one_client_span_with_the_genai_attributes(
    env: Env, spans: InMemorySpanExporter
) -> None:
    # given an endpoint served by one fake replica
    fake = env.fake("smollm2")
    env.endpoint("ep", {"v1": [fake]})
    # when a client asks for a chat completion with max_tokens and temperature
    r = env.chat("ep", "tell me a story", max_tokens=32, temperature=0.5)
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]
    # then one span named after the operation and the model, kind CLIENT, carries them
    (span,) = requests(spans, 1)
    assert span.name == "chat ep"
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes or {})
    host = urlsplit(fake.url)
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "ep"
    assert attrs["gen_ai.response.model"] == "smollm2"
    assert attrs["gen_ai.request.max_tokens"] == 32
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == usage["completion_tokens"] > 0
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert (attrs["server.address"], attrs["server.port"]) == (host.hostname, host.port)
    assert attrs["modelplane.endpoint"] == "default/ep"
    assert attrs["modelplane.version"] == "v1"
    assert attrs["modelplane.replica"] == r.headers["x-modelplane-replica"]
    assert "error.type" not in attrs
    assert span.status.status_code is not StatusCode.ERROR
    # and one attempt under it
    (attempt,) = children(spans, span)
    assert (attempt.attributes or {})["http.response.status_code"] == 200


def test_a_streamed_chat_span_ends_with_the_stream_with_usage_and_time_to_first_token(
    env: Env, spans: InMemorySpanExporter
) -> None:
    fake = env.fake("smollm2")
    env.endpoint("ep", {"v1": [fake]})
    body = {
        "model": "ep",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "one two three"}],
    }
    # when a client reads a whole streamed answer
    with env.client.stream("POST", "/chat/completions", json=body) as r:
        assert r.status_code == 200
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    # then its span carries the usage of the final chunk, the finish reason and the TTFT
    (span,) = requests(spans, 1)
    attrs = dict(span.attributes or {})
    assert span.name == "chat ep"
    (usage,) = [orjson.loads(x[6:])["usage"] for x in lines if '"usage":{' in x]
    assert attrs["gen_ai.usage.input_tokens"] == usage["prompt_tokens"] == 5
    assert attrs["gen_ai.usage.output_tokens"] == usage["completion_tokens"] > 0
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.response.model"] == "smollm2"
    ttft = attrs["modelplane.time_to_first_token_s"]
    assert isinstance(ttft, float) and ttft > 0
    assert span.end_time is not None and span.start_time is not None
    assert ttft <= (span.end_time - span.start_time) / 1e9
    assert [e.name for e in span.events] == ["first_token"]


def test_a_retry_shows_two_attempts_the_first_failed(env: Env, spans: InMemorySpanExporter) -> None:
    # given a failing replica beside a healthy one, round-robin
    broken, good = env.fake("broken"), env.fake("good")
    broken.mode = "fail"
    env.endpoint("ep", {"v1": [broken, good]}, policy="round-robin")
    # when two requests arrive (at least one of them tries the broken replica first)
    assert all(env.chat("ep").status_code == 200 for _ in range(2))
    finished = requests(spans, 2)
    retried = [s for s in finished if len(children(spans, s)) == 2]
    # then that request's span holds two attempts: a 500, then the answer
    assert retried, [s.name for s in spans.get_finished_spans()]
    first, second = children(spans, retried[0])
    assert (first.attributes or {})["http.response.status_code"] == 500
    assert (first.attributes or {})["error.type"] == "500"
    assert first.status.status_code is StatusCode.ERROR
    assert (second.attributes or {})["http.response.status_code"] == 200
    assert second.status.status_code is not StatusCode.ERROR
    # and the request itself succeeded, on the healthy replica
    assert (retried[0].attributes or {})["modelplane.replica"] == "ep-v1-1"
    assert retried[0].status.status_code is not StatusCode.ERROR


def test_an_upstream_failure_sets_error_type_and_an_error_status(
    env: Env, spans: InMemorySpanExporter
) -> None:
    down = env.fake()
    down.mode = "fail"
    env.endpoint("ep", {"v1": [down]})
    r = env.chat("ep")
    assert r.status_code == 503
    (span,) = requests(spans, 1)
    assert (span.attributes or {})["error.type"] == "upstream_unavailable"
    assert span.status.status_code is StatusCode.ERROR
    (attempt,) = children(spans, span)
    assert attempt.status.status_code is StatusCode.ERROR


def test_tracing_is_configured_only_when_the_environment_asks() -> None:
    # given no OTLP endpoint and no MODELPLANE_TRACE, then nothing is installed
    assert configure_tracing({}) is None
    assert configure_tracing({"MODELPLANE_TRACE": "off"}) is None


def test_a_request_carrying_trace_context_continues_that_trace_to_the_replica(
    env: Env, spans: InMemorySpanExporter
) -> None:
    # given a client (an agent's turn, say) whose own span is the request's parent
    fake = env.fake("smollm2")
    env.endpoint("ep", {"v1": [fake]})
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    headers = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
    # when it calls through the gateway
    body = {"model": "ep", "messages": [{"role": "user", "content": "hi"}]}
    r = env.client.post("/chat/completions", json=body, headers=headers)
    assert r.status_code == 200, r.text

    # then the gateway's span is in the client's trace, under the client's span
    def in_trace() -> list[Any] | None:
        found = [s for s in spans.get_finished_spans() if s.name == "chat ep"]
        return found or None

    (span,) = wait_until(in_trace, timeout=10, what="the request span")
    assert span.context is not None and span.parent is not None
    assert f"{span.context.trace_id:032x}" == trace_id
    assert f"{span.parent.span_id:016x}" == parent_id
    # and the replica was asked within the same trace, on behalf of the gateway's span
    sent = fake.headers[-1]["traceparent"].split("-")
    assert sent[1] == trace_id and sent[2] == f"{span.context.span_id:016x}"
