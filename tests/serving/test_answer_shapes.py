"""The worker's answers in OpenAI's shapes, from the deltas an engine emits: a streamed choice
holds back what may be a tool call and sends it as ``delta.tool_calls``."""

from __future__ import annotations

import json

from tests.serving._schemas import WEATHER

from modelplane.serving._answer import ChoiceShaper
from modelplane.serving._engine import Delta, GenerationRequest
from modelplane.serving._request import Parsed
from modelplane.serving._tools import ToolChoice


def _parsed(choice: ToolChoice) -> Parsed:
    return Parsed(GenerationRequest("x", 16), "m", True, False, tools=[WEATHER], tool_choice=choice)


def test_streamed_auto_choice_sends_text_then_holds_back_the_call_until_it_ends() -> None:
    # given a choice that may call tools, streamed
    shaper = ChoiceShaper(0, _parsed(ToolChoice("auto")), chat=True)
    # when the model writes some text, then the start of a call, then the rest of it
    first = shaper.chunks(Delta("Let me check. <tool"))
    second = shaper.chunks(Delta('_call>{"name": "get_weather", "arguments": {"unit": "celsius"'))
    last = shaper.chunks(Delta("}}</tool_call>", finish_reason="stop"))
    # then the text went out at once (the role with it), nothing of the call before the end
    assert first == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "Let me check. "},
            "finish_reason": None,
            "logprobs": None,
        }
    ]
    assert second == []
    # and the end is the call, whole, finishing the choice with "tool_calls"
    (call_chunk,) = last
    (call,) = call_chunk["delta"]["tool_calls"]
    assert call_chunk["finish_reason"] == "tool_calls"
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"unit": "celsius"}


def test_text_that_only_looks_like_a_call_is_sent_when_the_choice_ends() -> None:
    shaper = ChoiceShaper(0, _parsed(ToolChoice("auto")), chat=True)
    assert shaper.chunks(Delta("a <tool_call> b")) == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "a "},
            "finish_reason": None,
            "logprobs": None,
        }
    ]
    (last,) = shaper.chunks(Delta("", finish_reason="stop"))
    assert last["delta"] == {"content": "<tool_call> b"}
    assert last["finish_reason"] == "stop"


def test_whole_answer_of_a_required_call_has_no_content_and_finishes_with_tool_calls() -> None:
    shaper = ChoiceShaper(0, _parsed(ToolChoice("required")), chat=True)
    text = '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}'
    choice = shaper.whole([Delta(text, finish_reason="stop")])
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
