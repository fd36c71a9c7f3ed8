"""Pooled upstream MCP sessions: one long-lived client session per served ToolServer.

A stdio ToolServer's process is started on the first request and kept: every ``tools/list`` and
``tools/call`` of every caller of that ``/mcp/{namespace}/{server}`` goes over the same session
(the SDK multiplexes concurrent requests by JSON-RPC id), so a call costs one message round trip,
not a process start. A Streamable HTTP ToolServer likewise gets one session, opened after its URL
passed the egress rules.

When the session ends under a request (the process exited, the server dropped the session), that
request answers an error and the session is discarded; the next request opens a new one, which
restarts the process. ``tools/list`` is tried once more on the new session (it changes nothing);
``tools/call`` is not: the server may have run the tool before it went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import mcp_types as types
from mcp import ClientSession, MCPError, StdioServerParameters
from mcp.client._transport import TransportStreams

from modelplane.api import ToolServerSpec
from modelplane.egress import EgressRefused, EgressRules

#: commands that mean "the Python that runs the platform" (it has the ``mcp`` SDK)
_THIS_PYTHON = ("python", "python3")
#: how long a server may take to start and answer ``initialize``
START_SECONDS = 30.0

_T = TypeVar("_T")


class UpstreamUnavailable(RuntimeError):
    """The MCP server could not be started or reached, or its session ended under a request."""


class Upstream:
    """One ToolServer's MCP client session, opened on first use and reopened after it ends."""

    def __init__(self, name: str, spec: ToolServerSpec, egress: EgressRules) -> None:
        self.name = name
        self.spec = spec
        self._egress = egress
        #: how many sessions were opened (1 while the first one lives: a process start each)
        self.starts = 0
        self._session: ClientSession | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: the session being opened, while it is (a request that gives up leaves it to the next)
        self._ready: asyncio.Future[ClientSession] | None = None
        self._lock = asyncio.Lock()

    async def list_tools(self, cursor: str | None) -> types.ListToolsResult:
        """The server's tools (one page), on a new session if the current one ended."""
        params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
        try:
            return await self._request(lambda s: s.list_tools(params=params))
        except UpstreamUnavailable:
            return await self._request(lambda s: s.list_tools(params=params))

    async def call_tool(self, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
        """Run ``tool``; never retried (see the module docstring)."""
        return await self._request(lambda s: s.call_tool(tool, arguments))

    async def aclose(self) -> None:
        """End the session (and stop a stdio server's process)."""
        self._session = None
        self._ready = None
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
            self._task = None

    async def _request(self, send: Callable[[ClientSession], Awaitable[_T]]) -> _T:
        session = await self._open()
        try:
            return await send(session)
        except MCPError as exc:
            if exc.code != types.CONNECTION_CLOSED:
                raise
            if self._session is session:
                await self.aclose()
            raise UpstreamUnavailable(
                f"the MCP server {self.name!r} closed the connection (its process exited?);"
                " the next request starts it again"
            ) from None

    async def _open(self) -> ClientSession:
        session = self._session
        if session is not None:
            return session
        async with self._lock:
            if self._session is None:
                if self._ready is None:  # else a start is under way (its first asker gave up)
                    self._stop = asyncio.Event()
                    self._ready = asyncio.get_running_loop().create_future()
                    self._task = asyncio.create_task(self._hold(self._ready, self._stop))
                try:
                    self._session = await asyncio.wait_for(
                        asyncio.shield(self._ready), START_SECONDS
                    )
                except TimeoutError:
                    await self.aclose()
                    raise UpstreamUnavailable(
                        f"the MCP server {self.name!r} did not answer `initialize` within"
                        f" {START_SECONDS:.0f} s; check its ToolServer's command or url"
                    ) from None
                except UpstreamUnavailable:
                    self._ready = None  # the next request tries again
                    raise
            return self._session

    async def _hold(self, ready: asyncio.Future[ClientSession], stop: asyncio.Event) -> None:
        # the SDK's transports are task-scoped: opened and closed in this one task
        try:
            async with self._streams() as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                self.starts += 1
                ready.set_result(session)
                await stop.wait()
        except Exception as exc:
            if not ready.done():
                ready.set_exception(_unavailable(self.name, exc))
        finally:
            if not ready.done():
                ready.cancel()

    @contextlib.asynccontextmanager
    async def _streams(self) -> AsyncIterator[TransportStreams]:
        if self.spec.command is not None:
            from mcp.client.stdio import stdio_client

            command = sys.executable if self.spec.command in _THIS_PYTHON else self.spec.command
            # the SDK's minimal environment (PATH, HOME...) and the ToolServer's: not the
            # platform's own, which may hold its tokens and keys
            params = StdioServerParameters(
                command=command, args=list(self.spec.args), env=dict(self.spec.env)
            )
            async with stdio_client(params) as streams:
                yield streams
        else:
            from mcp.client.streamable_http import streamable_http_client

            assert self.spec.url is not None
            await self._egress.resolve_url(self.spec.url)
            async with streamable_http_client(self.spec.url) as streams:
                yield streams


def _unavailable(name: str, exc: Exception) -> UpstreamUnavailable:
    if isinstance(exc, EgressRefused):
        why = f"its url is refused by the egress rules: {exc}"
    elif isinstance(exc, OSError):
        why = f"it could not be started or reached: {exc.strerror or exc}"
    else:
        why = f"it failed to start: {type(exc).__name__}: {exc}"
    return UpstreamUnavailable(f"the MCP server {name!r} is unavailable: {why}")
