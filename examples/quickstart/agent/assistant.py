"""The quickstart's assistant: holds a conversation through the gateway, looks facts up with an
MCP tool, and paces itself with a durable timer.

Entrypoint ``assistant:Assistant`` of the Agent in ``agent.yaml`` beside this file (the runtime
imports it from this folder). ``start`` takes ``{"model": "smollm2", "pause": 5}`` (both
optional). Each message is one turn:

1. the message is appended to the conversation ``memory``;
2. if it names a country the MCP server knows, ``geo.lookup_capital`` is called (journaled, and
   authorized by the runtime's hook: the decision is in the instance's audit trail);
3. the model answers through the gateway, greedily, with the last 20 entries of memory and the
   looked-up fact as context (journaled: a replay after a crash returns the same answer without
   calling the model again);
4. the assistant paces itself on a durable timer: it answers ``state["pause"]`` seconds after
   the question (``ctx.sleep`` counts from ``ctx.now()``, the time the message was consumed). A
   crash or a passivation meanwhile does not lose the timer: after a restart the turn replays to
   here, without calling the tool or the model again, and waits out the rest;
5. the answer goes into ``memory`` and ``state["answer"]``, and is the turn's result.

A message ``run <command>`` (``run date``) is answered by the MCP server's ``shell.exec`` tool
instead of the model: an allowlisted command picked by name. Runtime Policies decide whether
the call may run (``examples/policies/forbid-shell.yaml`` forbids it outside sandbox
namespaces); a refusal is the answer, with its reason.

Two tools run sandboxed (docs/sandbox.md), each answering instead of the model:
``count <text>`` calls ``words.run``, a WebAssembly module of this bundle (``tools/words.wat``),
and ``fetch <url>`` calls ``fetch.run``, the program ``tools/fetch.py`` under bubblewrap, which
reaches only the hosts its ``hosts`` grants. A sandbox failure is a ``StepFailed``: the answer
says so and the instance goes on.
"""

from __future__ import annotations

from typing import Any

from modelplane.agents import Context, StepFailed, ToolDenied

COUNTRIES = ("france", "germany", "italy", "japan", "kenya", "peru", "spain")


class Assistant:
    async def start(self, ctx: Context, input: Any) -> None:
        options = input or {}
        ctx.state["model"] = options.get("model", "smollm2")
        ctx.state["pause"] = float(options.get("pause", 5.0))
        ctx.state["turns"] = 0

    async def on_message(self, ctx: Context, message: Any) -> dict[str, Any]:
        text = str(message)
        ctx.memory.append({"role": "user", "content": text})
        if text.lower().startswith("run "):
            return self._finish(ctx, await _run(ctx, text[4:].strip()))
        if text.lower().startswith(("count ", "fetch ")):
            return self._finish(ctx, await _sandboxed(ctx, text[:5].lower(), text[6:].strip()))
        context = "You are a concise assistant."
        country = next((c for c in COUNTRIES if c in text.lower()), None)
        if country is not None:
            try:
                capital = await ctx.call_tool("geo", "lookup_capital", {"country": country})
                context += f" Fact: the capital of {country.title()} is {_text(capital)}."
            except ToolDenied as denied:
                context += f" (A lookup was refused: {denied.message})"
        reply = await ctx.call_model(
            ctx.state["model"],
            [{"role": "system", "content": context}, *ctx.memory.last(20)],
            max_tokens=64,
            temperature=0,
        )
        answer = str(reply["choices"][0]["message"].get("content") or "")
        await ctx.sleep(float(ctx.state["pause"]))
        return self._finish(ctx, answer)

    def _finish(self, ctx: Context, answer: str) -> dict[str, Any]:
        ctx.memory.append({"role": "assistant", "content": answer})
        ctx.state["answer"] = answer
        ctx.state["turns"] = int(ctx.state["turns"]) + 1
        return {"answer": answer, "turn": ctx.state["turns"]}


async def _run(ctx: Context, command: str) -> str:
    """``shell.exec`` of the MCP server: its output, or why it was refused."""
    try:
        return _text(await ctx.call_tool("geo", "shell.exec", {"command": command}))
    except ToolDenied as denied:
        return f"I may not run {command!r}: {denied.message}"


async def _sandboxed(ctx: Context, verb: str, rest: str) -> str:
    """``words.run`` (count) or ``fetch.run`` (fetch) in their sandboxes: the answer."""
    try:
        if verb == "count":
            counted = await ctx.call_tool("words", "run", {"text": rest})
            return f"{counted['words']} words"
        fetched = await ctx.call_tool("fetch", "run", {"url": rest})
    except (StepFailed, ToolDenied) as failed:
        return f"the {verb} tool failed: {failed.message}"
    if "refused" in fetched:
        return f"refused: {fetched['refused']}"
    return f"{fetched['status']}: {fetched['body']}"


def _text(result: Any) -> str:
    """A tool result as text: structured ``{"result": ...}`` or a list of content blocks."""
    if isinstance(result, dict) and "result" in result:
        return str(result["result"])
    if isinstance(result, list):
        return " ".join(str(block.get("text", "")) for block in result if isinstance(block, dict))
    return str(result)
