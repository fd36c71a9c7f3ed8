"""The OpenAI API as clients use it: the official ``openai`` Python client against SmolLM2 served
by `modelplane up -f examples/quickstart/` (chat, streaming, tools, JSON Schema, n, logprobs,
and the Responses API), through the gateway to the transformers worker.

One real `modelplane up` for the module, started as the quickstart tests start it.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from openai import BadRequestError, OpenAI
from tests.e2e._proc import UpProcess
from tests.e2e.test_quickstart_serving import (  # noqa: F401 (the quickstart's fixtures)
    client,
    serving,
    up,
)
from tests.serving._schemas import CITY, WEATHER, WEATHER_PARAMETERS

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def openai(serving: Any, up: UpProcess) -> OpenAI:  # noqa: F811
    """The official client, pointed at `modelplane up`'s /v1 once SmolLM2 is served."""
    return OpenAI(base_url=f"{up.url}/v1", api_key="unused", timeout=300, max_retries=0)


def _chat(openai: OpenAI, **overrides: Any) -> Any:
    """A greedy, short chat completion of the quickstart's model; ``overrides`` change any of it."""
    asked: dict[str, Any] = {
        "model": "smollm2",
        "messages": QUESTION,
        "temperature": 0,
        "max_tokens": 12,
        **overrides,
    }
    return openai.chat.completions.create(**asked)


def test_chat_answers_with_the_official_client(openai: OpenAI) -> None:
    # when the client asks a factual question greedily
    answer = _chat(openai)
    # then the parsed answer names Paris and counts its tokens
    assert "Paris" in (answer.choices[0].message.content or "")
    assert answer.usage is not None and answer.usage.completion_tokens > 0


def test_streamed_chat_assembles_in_the_official_client(openai: OpenAI) -> None:
    # when the same question is streamed, usage included
    stream = _chat(openai, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    # then the deltas join into the answer, and the last chunk carries the usage
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_required_tool_choice_calls_a_tool_with_arguments_valid_for_its_schema(
    openai: OpenAI,
) -> None:
    # when the client requires a tool call
    answer = _chat(
        openai,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        tools=[WEATHER],
        tool_choice="required",
        max_tokens=40,
    )
    # then the answer is one call of get_weather whose arguments satisfy its parameters
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_")
    assert call.function.name == "get_weather"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER_PARAMETERS)


def test_streamed_named_tool_call_is_assembled_from_delta_tool_calls(openai: OpenAI) -> None:
    # given a conversation where the tool already answered once
    history: list[Any] = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees, sunny"},
        {"role": "user", "content": "And in Rome?"},
    ]
    # when the client streams a call of the named function
    with openai.chat.completions.stream(
        model="smollm2",
        messages=history,
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
        max_tokens=40,
    ) as stream:
        final = stream.get_final_completion()
    # then the client's own assembly of the deltas is a valid call
    (call,) = final.choices[0].message.tool_calls or []
    assert final.choices[0].finish_reason == "tool_calls"
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER_PARAMETERS)


def test_json_schema_response_format_yields_json_that_validates(openai: OpenAI) -> None:
    # when the client asks for an answer in a strict JSON Schema
    answer = _chat(
        openai,
        messages=[{"role": "user", "content": "Name the capital of France as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": CITY, "strict": True},
        },
        max_tokens=40,
    )
    # then the content parses and satisfies the schema
    jsonschema.validate(json.loads(answer.choices[0].message.content or ""), CITY)
    assert answer.choices[0].finish_reason == "stop"


def test_n_choices_with_logprobs_each_carry_their_tokens(openai: OpenAI) -> None:
    # when the client asks for two sampled choices with log-probabilities
    answer = _chat(
        openai, n=2, temperature=0.8, seed=7, max_tokens=6, logprobs=True, top_logprobs=3
    )
    # then there are two choices, each with a logprob per token and three alternatives each
    assert [c.index for c in answer.choices] == [0, 1]
    for choice in answer.choices:
        content = choice.logprobs.content if choice.logprobs else None
        assert content, "no logprobs"
        assert all(t.logprob <= 0 and len(t.top_logprobs) == 3 for t in content)
        assert "".join(t.token for t in content) == choice.message.content
    assert answer.usage is not None
    assert answer.usage.completion_tokens == sum(
        len(c.logprobs.content or []) for c in answer.choices if c.logprobs
    )


def test_streamed_n_choices_each_assemble_with_their_logprobs(openai: OpenAI) -> None:
    # when two greedy choices are streamed with log-probabilities
    stream = _chat(openai, n=2, max_tokens=6, stream=True, logprobs=True)
    texts: list[str] = ["", ""]
    tokens: list[list[str]] = [[], []]
    finished = set()
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.logprobs and choice.logprobs.content:
                tokens[choice.index] += [t.token for t in choice.logprobs.content]
            if choice.finish_reason:
                finished.add(choice.index)
    # then each choice's chunks carry its own text, token by token, and each choice ends
    assert finished == {0, 1}
    assert all(texts) and ["".join(t) for t in tokens] == texts
    assert texts[0] == texts[1]  # greedy: the same answer, sent once per choice


def test_completions_carry_logprobs_in_their_own_shape(openai: OpenAI) -> None:
    answer = openai.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=4, temperature=0, logprobs=2
    )
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.top_logprobs
    assert answer.usage is not None and len(logprobs.tokens) == answer.usage.completion_tokens
    assert "".join(logprobs.tokens) == answer.choices[0].text
    assert all(len(top) == 2 for top in logprobs.top_logprobs)
    assert logprobs.text_offset == sorted(logprobs.text_offset)


def test_responses_api_answers_and_streams(openai: OpenAI) -> None:
    # when the client uses the Responses API, plainly and streamed
    response = openai.responses.create(
        model="smollm2",
        input="What is the capital of France?",
        temperature=0,
        max_output_tokens=12,
    )
    events = list(
        openai.responses.create(
            model="smollm2",
            input=[{"role": "user", "content": "What is the capital of France?"}],
            temperature=0,
            max_output_tokens=12,
            stream=True,
        )
    )
    # then the answer names Paris both ways, the stream ending in response.completed
    assert "Paris" in response.output_text
    assert response.usage is not None and response.usage.output_tokens > 0
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] in {
        "response.completed",
        "response.incomplete",
    }
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "Paris" in text


def test_responses_api_json_schema_and_required_function_call(openai: OpenAI) -> None:
    # when the Responses API asks for a JSON Schema answer, then for a required function call
    structured = openai.responses.create(
        model="smollm2",
        input="Name the capital of France as JSON.",
        text={"format": {"type": "json_schema", "name": "city", "schema": CITY, "strict": True}},
        temperature=0,
        max_output_tokens=40,
    )
    called = openai.responses.create(
        model="smollm2",
        input="What is the weather in Paris?",
        tools=[{"type": "function", **WEATHER["function"]}],
        tool_choice="required",
        temperature=0,
        max_output_tokens=40,
    )
    # then the text validates, and the output holds one function call with valid arguments
    jsonschema.validate(json.loads(structured.output_text), CITY)
    (call,) = [item for item in called.output if item.type == "function_call"]
    assert call.name == "get_weather"
    jsonschema.validate(json.loads(call.arguments), WEATHER_PARAMETERS)


def test_an_unsupported_option_is_refused_naming_it(openai: OpenAI) -> None:
    # when the client sends an option the worker does not implement
    with pytest.raises(BadRequestError) as refused:
        _chat(openai, max_tokens=4, logit_bias={"42": 5})
    # then it is a 400 naming the parameter, not an answer that ignored it
    assert refused.value.status_code == 400
    assert refused.value.param == "logit_bias"
