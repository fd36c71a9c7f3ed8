"""The per-sequence decoding features with SmolLM2 on the CPU: constrained decoding to a JSON
Schema, token log-probabilities, and the tool-call format around them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from tests.serving._schemas import CITY, WEATHER, WEATHER_PARAMETERS

from modelplane.serving import EngineError
from modelplane.serving._engine import Delta, GenerationRequest
from modelplane.serving._request import parse_request
from modelplane.serving._tools import ToolChoice, call_schema, parse_calls, plain_messages
from modelplane.serving._transformers import TransformersEngine

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "Name the capital of France as JSON."}]


@pytest.fixture(scope="module")
def engine(smollm2: tuple[Path, str]) -> Iterator[TransformersEngine]:
    folder, _ = smollm2
    engine = TransformersEngine(folder, max_batch=4)
    try:
        yield engine
    finally:
        engine.close()


def _generate(engine: TransformersEngine, request: GenerationRequest) -> list[Delta]:
    async def run() -> list[Delta]:
        return [d async for d in engine.generate(request)]

    return asyncio.run(run())


def test_output_constrained_to_a_json_schema_parses_and_validates(
    engine: TransformersEngine,
) -> None:
    # when SmolLM2 answers greedily under a JSON Schema
    prompt = engine.render_chat(QUESTION)
    request = GenerationRequest(prompt, max_tokens=40, temperature=0, json_schema=CITY)
    deltas = _generate(engine, request)
    # then the text is JSON satisfying the schema, ended by the grammar rather than the limit
    jsonschema.validate(json.loads("".join(d.text for d in deltas)), CITY)
    assert deltas[-1].finish_reason == "stop"


def test_sampled_output_under_a_schema_still_validates(engine: TransformersEngine) -> None:
    prompt = engine.render_chat(QUESTION)
    request = GenerationRequest(
        prompt, max_tokens=40, temperature=1.0, seed=3, json_schema=call_schema([WEATHER], None)
    )
    text = "".join(d.text for d in _generate(engine, request))
    _, (call,) = parse_calls(text, ToolChoice("required"), parallel=True)
    assert call.name == "get_weather"
    jsonschema.validate(json.loads(call.arguments), WEATHER_PARAMETERS)


def test_a_schema_that_cannot_be_enforced_is_refused_naming_response_format(
    engine: TransformersEngine,
) -> None:
    request = GenerationRequest("x", max_tokens=4, json_schema={"type": "no-such-type"})
    with pytest.raises(EngineError) as refused:
        _generate(engine, request)
    assert refused.value.param == "response_format"
    assert refused.value.status == 400


def test_logprobs_cover_every_token_with_the_alternatives_asked_for(
    engine: TransformersEngine,
) -> None:
    # when a greedy answer records two alternatives per token
    prompt = engine.render_chat([{"role": "user", "content": "What is the capital of France?"}])
    deltas = _generate(engine, GenerationRequest(prompt, max_tokens=6, temperature=0, logprobs=2))
    entries = [e for d in deltas for e in d.logprobs]
    # then there is one entry per generated token, its text joining into the answer
    assert len(entries) == deltas[-1].completion_tokens
    assert "".join(e.token for e in entries) == "".join(d.text for d in deltas)
    # and greedy decoding chose the most likely token each time
    for entry in entries:
        assert len(entry.top) == 2
        assert entry.logprob == pytest.approx(entry.top[0][1])
        assert entry.top[0][1] >= entry.top[1][1]


def test_tools_render_into_the_system_prompt_of_a_template_without_tools() -> None:
    history: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "function": {"name": "get_weather", "arguments": '{"unit": "x"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    messages = plain_messages(history, [WEATHER])
    assert messages[0]["content"].startswith("Be brief.\n\n# Tools")
    assert '"name": "get_weather"' in messages[0]["content"]
    assert messages[2]["content"] == (
        '<tool_call>\n{"name": "get_weather", "arguments": {"unit": "x"}}\n</tool_call>'
    )
    assert messages[3] == {"role": "user", "content": "<tool_response>\nsunny\n</tool_response>"}


def test_calls_written_by_the_model_are_parsed_and_the_rest_stays_content() -> None:
    text = (
        'Let me check.<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>'
        '<tool_call>{"name": "b", "arguments": {}}</tool_call><tool_call>not json</tool_call>'
    )
    content, calls = parse_calls(text, ToolChoice("auto"), parallel=True)
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("a", {"x": 1}), ("b", {})]
    assert content == "Let me check.<tool_call>not json</tool_call>"
    _, first_only = parse_calls(text, ToolChoice("auto"), parallel=False)
    assert [c.name for c in first_only] == ["a"]


@pytest.mark.parametrize(
    ("body", "chat", "param"),
    [
        ({"response_format": {"type": "xml"}}, True, "response_format"),
        ({"response_format": {"type": "json_schema"}}, True, "response_format.json_schema.schema"),
        ({"tools": [{"type": "web_search"}]}, True, "tools[0]"),
        ({"tools": [WEATHER], "tool_choice": {"function": {"name": "nope"}}}, True, "tool_choice"),
        ({"tool_choice": "required"}, True, "tool_choice"),
        ({"tools": [WEATHER], "prompt": "x"}, False, "tools"),
        ({"top_logprobs": 2}, True, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, True, "top_logprobs"),
        ({"logprobs": 6}, False, "logprobs"),
        ({"n": 9}, True, "n"),
        ({"presence_penalty": 0.5}, True, "presence_penalty"),
        (
            {
                "tools": [WEATHER],
                "tool_choice": "required",
                "response_format": {"type": "json_object"},
            },
            True,
            "response_format",
        ),
    ],
)
def test_a_request_the_worker_cannot_honour_is_refused_naming_the_field(
    engine: TransformersEngine, body: dict[str, Any], chat: bool, param: str
) -> None:
    base: dict[str, Any] = {"messages": QUESTION} if chat else {"prompt": "x"}
    with pytest.raises(EngineError) as refused:
        parse_request(engine, "smollm2", {**base, **body}, chat)
    assert refused.value.param == param
    assert refused.value.status == 400


def test_a_chat_template_that_takes_tools_renders_them_itself(engine: TransformersEngine) -> None:
    # given a model whose chat template takes tools (and iterates over calls' arguments)
    template = (
        "{% if tools %}TOOLS {{ tools | map(attribute='function.name') | join(',') }}\n{% endif %}"
        "{% for m in messages %}{{ m.role }}: {{ m.content }}"
        "{% for c in m.tool_calls or [] %}CALL {{ c.function.name }}"
        "{% for k, v in c.function.arguments.items() %} {{ k }}={{ v }}{% endfor %}{% endfor %}"
        "{{ '|' }}{% endfor %}"
    )
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "function": {"name": "get_weather", "arguments": '{"unit": "x"}'}}
            ],
        },
    ]
    original = engine.tokenizer.chat_template
    engine.tokenizer.chat_template = template
    try:
        prompt = engine.render_chat(history, [WEATHER])
    finally:
        engine.tokenizer.chat_template = original
    # then the template got the tools, and each call's arguments as an object
    assert prompt == "TOOLS get_weather\nuser: Weather?|assistant: CALL get_weather unit=x|"
