"""The Responses API (``POST /v1/responses``): translated to a chat completion and served through
the gateway's one request path, answered as a ``response`` object or ``response.*`` events."""

from __future__ import annotations

from typing import Any

import orjson
from tests.gateway._env import Env

from modelplane.serving import LatencyModel, create_simulated_app


def _simulated(env: Env, output_tokens: int) -> None:
    latency = LatencyModel(ttft=0, tpot=0, output_tokens=output_tokens)
    env.endpoint("sim", {"v1": [env.worker(create_simulated_app("sim", latency))]})


def _four_words(env: Env) -> None:
    fake = env.fake("w1", reply="the quick brown fox", chunks=4)
    env.endpoint("sim", {"v1": [fake]})


def test_response_carries_the_answer_as_an_output_text_message(env: Env) -> None:
    # given an endpoint whose upstream answers four words
    _four_words(env)
    # when a client asks through the Responses API, with instructions and an output limit
    body = {"model": "sim", "instructions": "Be brief.", "input": "hi", "max_output_tokens": 8}
    r = env.client.post("/responses", json=body)
    # then the answer is a completed response whose one message holds the words
    assert r.status_code == 200, r.text
    response = r.json()
    assert response["object"] == "response" and response["status"] == "completed"
    (message,) = response["output"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0] == {
        "type": "output_text",
        "text": "the quick brown fox",
        "annotations": [],
    }
    assert response["usage"]["output_tokens"] == 4
    # and it was served as a chat call of the endpoint (limits and telemetry see it so)
    assert r.headers["x-modelplane-endpoint"] == "sim"


def test_request_is_translated_into_the_chat_completion_it_asks_for(env: Env) -> None:
    # given an endpoint whose upstream records what it is sent
    fake = env.fake("w1", reply="ok")
    env.endpoint("chat", {"v1": [fake]})
    # when a Responses request uses instructions, items, a schema, a function tool
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = {
        "model": "chat",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
        "max_output_tokens": 9,
        "text": {"format": {"type": "json_schema", "name": "a", "schema": schema}},
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "f"},
    }
    r = env.client.post("/responses", json=body)
    assert r.status_code == 200, r.text
    # then the upstream got the equivalent chat completion
    sent = fake.bodies[-1]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    assert sent["max_tokens"] == 9
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "a", "schema": schema},
    }
    assert sent["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert r.json()["output"][0]["content"][0]["text"] == "ok"


def test_answer_cut_by_max_output_tokens_is_incomplete(env: Env) -> None:
    # given a simulated worker, which writes until max_tokens (finish_reason "length")
    _simulated(env, output_tokens=16)
    r = env.client.post("/responses", json={"model": "sim", "input": "hi", "max_output_tokens": 2})
    assert r.json()["status"] == "incomplete"
    assert r.json()["incomplete_details"] == {"reason": "max_output_tokens"}


def test_streamed_response_emits_the_events_in_order(env: Env) -> None:
    _four_words(env)
    body = {"model": "sim", "input": [{"role": "user", "content": "hi"}], "stream": True}
    with env.client.stream("POST", "/responses", json=body) as r:
        assert r.status_code == 200
        events = [orjson.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
    kinds = [e["type"] for e in events]
    # then the stream opens, adds a message, streams its text, closes it, and completes
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "the quick brown fox"
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[-1]["response"]["usage"]["output_tokens"] == 4


def test_fields_the_translation_cannot_carry_are_400_naming_them(env: Env) -> None:
    _four_words(env)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"store": True}, "store"),
        ({"input": 3}, "input"),
        ({"modalities": ["audio"]}, "modalities"),
    ]
    for extra, param in cases:
        r = env.client.post("/responses", json={"model": "sim", "input": "hi", **extra})
        assert r.status_code == 400, (extra, r.text)
        assert r.json()["error"]["param"] == param


def test_a_feature_the_engine_lacks_is_400_naming_it_through_the_gateway(env: Env) -> None:
    # given an endpoint whose worker is simulated: no grammar, no tools, no logprobs
    _simulated(env, output_tokens=4)
    schema = {"type": "json_schema", "name": "x", "schema": {"type": "object"}}
    # when a JSON Schema answer or token log-probabilities are asked for
    answers = [
        env.client.post(
            "/responses", json={"model": "sim", "input": "hi", "text": {"format": schema}}
        ),
        env.client.post(
            "/chat/completions",
            json={
                "model": "sim",
                "messages": [{"role": "user", "content": "hi"}],
                "logprobs": True,
            },
        ),
    ]
    # then each is refused in OpenAI's shape naming the parameter, not answered without it
    assert [a.status_code for a in answers] == [400, 400]
    assert [a.json()["error"]["param"] for a in answers] == ["response_format", "logprobs"]
