"""Streamable-HTTP tools reach only hosts the operator's egress rules allow (as model upstreams do).

A real MCP server (the official SDK's ``MCPServer``, Streamable HTTP) on loopback, called through
the agent runtime's one tool-URL path.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
import uvicorn
from mcp.server.mcpserver import MCPServer
from tests.control._wait import wait_until

from modelplane.agents._tools import call_tool
from modelplane.agents.errors import ToolRefused
from modelplane.api._agent import Tool
from modelplane.egress import EgressRules


def _no_servers(name: str) -> None:
    return None


@pytest.fixture
def mcp_url() -> Iterator[str]:
    server = MCPServer("egress-test")

    @server.tool()
    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        server.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning"
    )
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    wait_until(lambda: web.started, what="the MCP server to listen")
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        web.should_exit = True
        thread.join(10)


def _tool(url: str) -> Tool:
    return Tool(name="calc", transport="streamable-http", url=url)


def test_a_loopback_tool_is_refused_by_default_and_reached_when_the_operator_allows_it(
    mcp_url: str,
) -> None:
    # given a tool on this machine's loopback
    tool = _tool(mcp_url)
    # when an agent calls it under the default rules, then it is refused, naming the rule
    with pytest.raises(ToolRefused, match="loopback"):
        asyncio.run(call_tool(tool, "double", {"x": 21}, _no_servers))
    # and with the operator's loopback flag (embedded setups) the same call reaches the server
    allowed = EgressRules.parse(allow_loopback=True)
    result = asyncio.run(call_tool(tool, "double", {"x": 21}, _no_servers, egress=allowed))
    assert "42" in str(result)


def test_a_tool_on_the_metadata_address_is_refused_before_any_connection() -> None:
    # given a listener standing in for nothing: the metadata address is never dialled at all
    tool = _tool("http://169.254.169.254/mcp")
    everything = EgressRules.parse(["0.0.0.0/0"], allow_loopback=True)
    with pytest.raises(ToolRefused, match=r"169\.254\.169\.254"):
        asyncio.run(call_tool(tool, "double", {"x": 1}, _no_servers, egress=everything))


def test_a_name_resolving_to_loopback_is_refused_like_the_address() -> None:
    # "localhost" is a name; the rules look at what it resolves to
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tool = _tool(f"http://localhost:{port}/mcp")
    with pytest.raises(ToolRefused):
        asyncio.run(call_tool(tool, "double", {"x": 1}, _no_servers))
