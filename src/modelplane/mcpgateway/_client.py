"""A client of the gateway: an initialized SDK ``ClientSession`` to ``/mcp/{namespace}/{server}``.

The official SDK's Streamable HTTP client with the platform's bearer token, for programs (and
tests, and the benchmark) that call tools through the gateway::

    async with open_session("http://127.0.0.1:8470/mcp/team-a/files", token) as session:
        result = await session.call_tool("read", {"path": "notes.txt"})
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


@asynccontextmanager
async def open_session(
    url: str, token: str | None, *, timeout: float = 30.0
) -> AsyncIterator[ClientSession]:
    """An initialized session to the MCP server at ``url``, sending ``token`` when there is one."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session
