"""Tool (function) calling for the models served here: OpenAI's ``tools`` and ``tool_choice``
checked, the tools and an earlier conversation's calls rendered into the prompt, and the calls a
model writes parsed back into OpenAI's ``message.tool_calls``.

The model writes each call in the Hermes/Qwen format, which most tool-trained open models use::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

A chat template that takes ``tools`` renders them (and the history's calls and tool answers)
itself. For one that does not (SmolLM2's), the tools go at the end of the system message as
:func:`system_prompt` writes them, an assistant's earlier calls become ``<tool_call>`` blocks of
its content, and a tool's answer a user message in ``<tool_response>`` tags.

``tool_choice``: ``auto`` lets the model write text or calls (parsed from its text afterwards);
``none`` renders no tools; ``required`` and a named function constrain decoding to one call (the
JSON Schema of :func:`call_schema`: a tool's name and arguments satisfying its ``parameters``).
``parallel_tool_calls: false`` keeps only the first call the model wrote.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from modelplane.serving._errors import EngineError

_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)
#: text that opens a call: a stream holds back what may be its start
CALL_OPEN = "<tool_call>"


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """What ``tool_choice`` asks: ``mode`` (auto, none, required) and a named ``function``."""

    mode: str = "auto"
    function: str | None = None

    @property
    def constrained(self) -> bool:
        """Decoding is constrained to exactly one call."""
        return self.mode == "required" or self.function is not None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call the model made: its name and its arguments (a JSON object, as text)."""

    name: str
    arguments: str
    id: str = ""

    def openai(self, index: int) -> dict[str, Any]:
        """The call as an item of OpenAI's ``tool_calls`` (``index`` for a stream's deltas)."""
        return {
            "index": index,
            "id": self.id or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


def check_tools(tools: Any) -> list[dict[str, Any]]:
    """``tools`` as OpenAI takes them (function tools), or an EngineError naming the bad field."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise EngineError("tools must be a list of function tools", param="tools")
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(function, dict)
        ):
            raise EngineError(
                f'tools[{i}] must be {{"type": "function", "function": {{"name": ...}}}}; only'
                " function tools are supported",
                param=f"tools[{i}]",
            )
        name = function.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
            raise EngineError(
                f"tools[{i}].function.name must be 1 to 64 letters, digits, '_', '.' or '-'",
                param=f"tools[{i}].function.name",
            )
        parameters = function.get("parameters", {})
        if not isinstance(parameters, dict):
            raise EngineError(
                f"tools[{i}].function.parameters must be a JSON Schema object",
                param=f"tools[{i}].function.parameters",
            )
    return tools


def check_tool_choice(choice: Any, tools: list[dict[str, Any]]) -> ToolChoice:
    """``tool_choice`` checked against ``tools``."""
    if choice is None:
        return ToolChoice("auto" if tools else "none")
    if choice in ("auto", "none", "required"):
        if choice != "none" and not tools:
            raise EngineError(
                f"tool_choice {choice!r} needs tools; give tools or drop tool_choice",
                param="tool_choice",
            )
        return ToolChoice(str(choice))
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise EngineError(
            'tool_choice must be "auto", "none", "required" or'
            ' {"type": "function", "function": {"name": ...}}',
            param="tool_choice",
        )
    if name not in {t["function"]["name"] for t in tools}:
        raise EngineError(
            f"tool_choice names function {name!r}, which is not among the tools",
            param="tool_choice",
        )
    return ToolChoice("required", name)


def call_schema(tools: list[dict[str, Any]], function: str | None) -> dict[str, Any]:
    """The JSON Schema of one call: ``{"name": ..., "arguments": ...}`` of one of ``tools`` (of
    ``function`` alone, when named), its arguments satisfying the tool's ``parameters``."""
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t["function"]["name"]},
                "arguments": t["function"].get("parameters") or {"type": "object"},
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
        if function is None or t["function"]["name"] == function
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def system_prompt(tools: list[dict[str, Any]]) -> str:
    """The tools as a system prompt, for a chat template that does not take them."""
    listed = "\n".join(json.dumps(t["function"], ensure_ascii=False) for t in tools)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n"
        f"<tools>\n{listed}\n</tools>\n\n"
        "For each function call, return a json object with function name and arguments within"
        " <tool_call></tool_call> XML tags:\n<tool_call>\n"
        '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
    )


def plain_messages(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[Any]:
    """``messages`` for a chat template that takes no tools: the tools in the system message,
    earlier calls as ``<tool_call>`` blocks, tool answers as ``<tool_response>`` user messages."""
    out: list[dict[str, Any]] = []
    for m in messages:
        content = m.get("content") or ""
        if m["role"] == "tool":
            out.append({"role": "user", "content": f"<tool_response>\n{content}\n</tool_response>"})
            continue
        calls = [_with_object_arguments(c)["function"] for c in m.get("tool_calls") or []]
        blocks = [json.dumps({"name": c["name"], "arguments": c["arguments"]}) for c in calls]
        text = "\n".join([content, *(f"<tool_call>\n{b}\n</tool_call>" for b in blocks)])
        out.append({"role": m["role"], "content": text.strip("\n")})
    if tools:
        prompt = system_prompt(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{prompt}"}
        else:
            out.insert(0, {"role": "system", "content": prompt})
    return out


def parse_calls(text: str, choice: ToolChoice, parallel: bool) -> tuple[str, list[ToolCall]]:
    """The content and the calls in a model's output. A constrained output is one call's JSON;
    otherwise calls are the ``<tool_call>`` blocks that hold a JSON object with a ``name``
    (text outside them stays content; a block that does not parse stays text)."""
    if choice.constrained:
        call = _call(text)
        return ("", [call]) if call is not None else (text, [])
    calls: list[ToolCall] = []
    kept: list[str] = []
    last = 0
    for match in _CALL.finditer(text):
        call = _call(match.group(1))
        if call is None:
            continue
        kept.append(text[last : match.start()])
        last = match.end()
        calls.append(call)
    if not calls:
        return text, []
    kept.append(text[last:])
    return "".join(kept).strip(), calls if parallel else calls[:1]


def _call(text: str) -> ToolCall | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        return ToolCall(value["name"], arguments)
    return ToolCall(value["name"], json.dumps(arguments, ensure_ascii=False))


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` for a chat template that takes tools: calls' arguments as objects (what HF
    templates iterate over), other fields as sent."""
    out: list[dict[str, Any]] = []
    for m in messages:
        calls = m.get("tool_calls")
        if calls:
            m = {**m, "tool_calls": [_with_object_arguments(c) for c in calls]}
        out.append({**m, "content": m.get("content") or ""})
    return out


def _with_object_arguments(call: dict[str, Any]) -> dict[str, Any]:
    function = dict(call["function"])
    if isinstance(function.get("arguments"), str):
        with contextlib.suppress(ValueError):
            function["arguments"] = json.loads(function["arguments"])
    return {**call, "function": function}
