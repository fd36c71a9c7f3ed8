"""The MCP server the gateway's tests reach (official ``mcp`` SDK): stdio, or Streamable HTTP.

    python tool_server.py            # MCP on stdin/stdout
    python tool_server.py --http     # MCP at http://127.0.0.1:<port>/mcp; prints the port first

``pid`` says which process answered (one process across many calls means the session is pooled),
``calls`` lists the tool calls this process ran (a denied call must not be among them), ``exit``
ends the process (the gateway must start it again).
"""

from __future__ import annotations

import os
import socket
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("gateway-test")
_calls: list[str] = []


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    _calls.append("add")
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Answer the text."""
    _calls.append("echo")
    return text


@server.tool()
def shell_exec(command: str) -> str:
    """Pretend to run a command (the tests forbid it)."""
    _calls.append("shell_exec")
    return f"ran {command}"


@server.tool()
def pid() -> int:
    """The server process's id."""
    return os.getpid()


@server.tool()
def calls() -> list[str]:
    """The tools this process ran, in order."""
    return list(_calls)


@server.tool()
def exit() -> str:
    """End the process at once (a crash, as the gateway sees it)."""
    os._exit(3)


def _serve_http() -> None:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    app = server.streamable_http_app(json_response=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


if __name__ == "__main__":
    if "--http" in sys.argv:
        _serve_http()
    else:
        server.run("stdio")
