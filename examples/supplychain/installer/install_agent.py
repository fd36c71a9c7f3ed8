"""The installer agent: asks its tool to install packages and returns what it answered."""

from __future__ import annotations

from typing import Any

from modelplane.agents import Context, ToolDenied


async def installer(ctx: Context, input: Any) -> Any:
    """Asks the install tool for ``input["packages"]``; a denial is the result, not a failure."""
    try:
        done = await ctx.call_tool("installer", "pip_install", {"packages": input["packages"]})
    except ToolDenied as exc:
        return {"denied": str(exc)}
    return {"installed": done}
