"""MCP tool calls through the official ``mcp`` SDK: stdio and Streamable HTTP.

A stdio server starts in the folder of the manifest that declared its Agent (annotation
``modelplane.dev/source-dir``, carried here by :class:`LocatedTool`), so relative ``args`` such as
``[mcp_server.py]`` name files beside the manifest wherever ``modelplane up`` was started. A bare
``command: python`` or ``python3`` is the interpreter that runs the agent runtime, so a server
written with the ``mcp`` SDK finds it installed (it is a dependency of modelplane).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from pydantic import Field

from modelplane.api._agent import AgentSpec, Tool

#: commands that mean "the Python that runs the agents"
_THIS_PYTHON = ("python", "python3")


class LocatedTool(Tool):
    """A :class:`~modelplane.api._agent.Tool` and the folder its stdio server starts in."""

    working_dir: str | None = Field(
        default=None, exclude=True, description="stdio: the server's working directory."
    )


def locate_tools(spec: AgentSpec, source_dir: str | None) -> AgentSpec:
    """``spec`` with its stdio tools set to start in ``source_dir`` (unchanged without one)."""
    if not source_dir:
        return spec
    folder = os.path.abspath(source_dir)
    tools: list[Tool] = [
        LocatedTool(**t.model_dump(), working_dir=folder) if t.transport == "stdio" else t
        for t in spec.tools
    ]
    return spec.model_copy(update={"tools": tools})


def _command(command: str) -> str:
    return sys.executable if command in _THIS_PYTHON else command


async def call_tool(spec: Tool, tool: str, arguments: dict[str, Any]) -> Any:
    """Call ``tool`` on the MCP server ``spec`` describes; returns JSON-ready content.

    One session per call: simple and robust across restarts (a connection pool is an
    optimisation for later). A tool result flagged ``isError`` raises, so the step retries.
    """
    from mcp import ClientSession

    if spec.transport == "stdio":
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        assert spec.command is not None
        params = StdioServerParameters(
            command=_command(spec.command),
            args=list(spec.args),
            env={**os.environ, **spec.env},
            cwd=spec.working_dir if isinstance(spec, LocatedTool) else None,
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool(tool, arguments)
    else:
        from mcp.client.streamable_http import streamable_http_client

        assert spec.url is not None
        async with streamable_http_client(spec.url) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                result = await session.call_tool(tool, arguments)
    content = [block.model_dump(mode="json", exclude_none=True) for block in result.content]
    if getattr(result, "is_error", None) or getattr(result, "isError", None):
        text = " ".join(str(c.get("text", "")) for c in content)
        raise RuntimeError(f"MCP tool {spec.name}.{tool} failed: {text}")
    structured = getattr(result, "structured_content", None) or getattr(
        result, "structuredContent", None
    )
    return structured if structured is not None else content
