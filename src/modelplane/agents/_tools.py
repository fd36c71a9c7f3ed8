"""MCP tool calls through the official ``mcp`` SDK: stdio and Streamable HTTP.

A stdio tool names a ``ToolServer`` (``tools[].server``): the program, its arguments and its
environment are an administrator's, looked up by name through the runtime's ``tool_servers``; the
Agent spec cannot name a program. The server starts in the Agent's bundle folder when it has one,
so relative ``args`` such as ``[mcp_server.py]`` name files of the bundle. A bare ``command:
python`` or ``python3`` is the interpreter that runs the agent runtime, so a server written with
the ``mcp`` SDK finds it installed (it is a dependency of modelplane).

A streamable-http tool's ``url`` is used in one place, :func:`_open_http`, where rules on which
hosts agents may reach apply.

A wasm tool is a WebAssembly module of the Agent's bundle (``tools[].module``), pinned by
``tools[].digest`` and run by :mod:`modelplane.sandbox` with no capabilities granted; a sandbox
failure (deadline, trap, out of memory) raises like any failed tool, so the step retries.

A process tool is a program of the Agent's bundle (``tools[].command``, or the system's
``python3`` or ``sh``) run by :class:`~modelplane.sandbox.ProcessSandbox`: JSON arguments on
stdin, a JSON result on stdout. Each call gets a copy of the bundle in a fresh folder (read-only
inside; a root platform's sandbox runs as another user, who could not enter the bundle store),
no network, and, when ``tools[].hosts`` grants some, a :class:`~modelplane.sandbox.HostForwarder`
socket beside the copy that reaches only those hosts (``on_network`` hears each decision).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from modelplane.agents.errors import ToolRefused, ToolServerMissing
from modelplane.api import Tool, ToolServerSpec
from modelplane.egress import EgressRefused, EgressRules
from modelplane.sandbox import (
    PROXY_ENV,
    HostForwarder,
    NetworkEvent,
    ProcessGrants,
    ProcessSandbox,
    WasmRuntime,
)

#: commands that mean "the Python that runs the agents"
_THIS_PYTHON = ("python", "python3")

#: the system programs a process tool may name instead of a file of its bundle
SYSTEM_PROGRAMS = {"python3": "/usr/bin/python3", "sh": "/bin/sh"}

#: the operator's ToolServers by name (None: no such ToolServer)
ToolServers = Callable[[str], ToolServerSpec | None]


def _command(command: str) -> str:
    return sys.executable if command in _THIS_PYTHON else command


def _server(spec: Tool, tool_servers: ToolServers) -> ToolServerSpec:
    assert spec.server is not None
    server = tool_servers(spec.server)
    if server is None:
        raise ToolServerMissing(
            f"tool {spec.name}: there is no ToolServer {spec.server!r}; ask an administrator to"
            f" create it (`modelplane get toolservers` lists those there are)"
        )
    if server.command is None:
        raise ToolServerMissing(
            f"tool {spec.name}: the ToolServer {spec.server!r} is a Streamable HTTP server"
            f" ({server.url}); write `transport: streamable-http` and its url in the tool instead"
        )
    return server


@asynccontextmanager
async def _open_http(url: str, egress: EgressRules) -> AsyncIterator[tuple[Any, Any]]:
    """The read and write streams of a Streamable HTTP MCP server: the one use of a tool URL.

    The host must pass the operator's egress rules (the same as for model upstreams) on every
    address it resolves to, before anything is sent. The MCP client then resolves the name again:
    a name that rebinds between the two lookups is not caught here (unlike the gateway's upstream
    client, which connects to the address it checked); the rules still stop every URL naming a
    refused address or name, and every name that resolves to one.
    """
    from mcp.client.streamable_http import streamable_http_client

    try:
        await egress.resolve_url(url)
    except EgressRefused as refused:
        raise ToolRefused(f"tool URL {url!r} refused by the egress rules: {refused}") from None
    async with streamable_http_client(url) as streams:
        yield streams[0], streams[1]


_wasm_runtime: list[WasmRuntime] = []
_wasm_lock = threading.Lock()


def _wasm() -> WasmRuntime:
    """The process's WASM runtime: each module is compiled once per digest (in memory)."""
    with _wasm_lock:
        if not _wasm_runtime:
            _wasm_runtime.append(WasmRuntime())
        return _wasm_runtime[0]


def _only_run(spec: Tool, tool: str) -> None:
    """A wasm or process tool has one function, ``run``."""
    what = "a WebAssembly module" if spec.transport == "wasm" else "a sandboxed program"
    if tool != "run":
        raise ToolServerMissing(
            f"tool {spec.name} is {what} with one function: call {spec.name}.run"
        )


def _bundle_file(spec: Tool, tool: str, folder: Path | None, relative: str) -> Path:
    """``relative`` inside the bundle ``folder`` of a wasm or process tool called as ``.run``."""
    _only_run(spec, tool)
    if folder is None:
        raise ToolServerMissing(
            f"tool {spec.name}: a {spec.transport} tool's program is a file of the Agent's bundle;"
            " upload the bundle (spec.bundle) with it in it"
        )
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise ToolServerMissing(f"tool {spec.name}: the bundle has no file {relative!r}")
    return path


async def _call_wasm(spec: Tool, tool: str, arguments: dict[str, Any], folder: Path | None) -> Any:
    assert spec.module is not None
    path = _bundle_file(spec, tool, folder, spec.module)
    loaded = _wasm().load(path.read_bytes(), digest=spec.digest)
    return await asyncio.to_thread(loaded.call, arguments)


async def _call_process(
    spec: Tool,
    tool: str,
    arguments: dict[str, Any],
    folder: Path | None,
    egress: EgressRules,
    on_network: Callable[[NetworkEvent], None],
) -> Any:
    assert spec.command is not None
    _only_run(spec, tool)
    system = SYSTEM_PROGRAMS.get(spec.command)
    if system is None:
        _bundle_file(spec, tool, folder, spec.command)
    async with AsyncExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modelplane-tool-")))
        os.chmod(root, 0o755)
        bundle = root / "bundle"
        if folder is not None:
            # links stay links: a link never copies a host file into the sandbox's reach
            await asyncio.to_thread(shutil.copytree, folder, bundle, symlinks=True)
        else:
            bundle.mkdir()
        env: dict[str, str] = {}
        if spec.hosts:
            forwarder = HostForwarder(spec.hosts, egress, on_network)
            env[PROXY_ENV] = str(await stack.enter_async_context(forwarder.serving(root)))
        argv = [system or str(bundle / spec.command), *spec.args]
        grants = ProcessGrants(ro_dirs=(root,), env=env, cwd=bundle)
        return await asyncio.to_thread(ProcessSandbox().call_json, argv, arguments, grants=grants)


async def call_tool(
    spec: Tool,
    tool: str,
    arguments: dict[str, Any],
    tool_servers: ToolServers,
    folder: Path | None = None,
    egress: EgressRules | None = None,
    on_network: Callable[[NetworkEvent], None] | None = None,
) -> Any:
    """Call ``tool`` on the MCP server ``spec`` describes; returns JSON-ready content.

    ``folder``: where a stdio server starts (the Agent's bundle). One session per call: simple and
    robust across restarts (a connection pool is an optimisation for later). A tool result
    flagged ``isError`` raises, so the step retries. ``on_network``: hears each host a process
    tool asked for, allowed or refused.
    """
    from mcp import ClientSession

    rules = egress if egress is not None else EgressRules()
    if spec.transport == "wasm":
        return await _call_wasm(spec, tool, arguments, folder)
    if spec.transport == "process":
        heard = on_network if on_network is not None else _ignore
        return await _call_process(spec, tool, arguments, folder, rules, heard)
    if spec.transport == "stdio":
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        server = _server(spec, tool_servers)
        assert server.command is not None
        params = StdioServerParameters(
            command=_command(server.command),
            args=list(server.args),
            env={**os.environ, **server.env},
            cwd=str(folder) if folder is not None else None,
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.call_tool(tool, arguments)
    else:
        assert spec.url is not None
        async with (
            _open_http(spec.url, rules) as (read, write),
            ClientSession(read, write) as session,
        ):
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


def _ignore(event: NetworkEvent) -> None:
    return None
