"""Handlers of the MCP tool tests (entrypoints ``tool_handlers:<name>``)."""

from __future__ import annotations

from typing import Any

from modelplane.agents import Context


async def geographer(ctx: Context, input: Any) -> Any:
    capital = await ctx.call_tool("geo", "lookup_capital", {"country": input["country"]})
    total = await ctx.call_tool("geo", "add", {"a": 2, "b": 3})
    answer = await ctx.wait_for_input(f"is {capital} right?")
    return {"capital": capital, "sum": total, "answer": answer}
