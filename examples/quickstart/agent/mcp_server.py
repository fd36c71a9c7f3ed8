"""A tiny MCP server (official ``mcp`` SDK, stdio) for the quickstart's assistant: ``add``,
``lookup_capital`` and ``shell.exec``.

``shell.exec`` runs one of a few harmless commands chosen by name (``date``, ``uptime``,
``whoami``): never its input, which only picks an entry of :data:`COMMANDS`. It is the tool the
example policy ``examples/policies/forbid-shell.yaml`` forbids outside sandbox namespaces.

    python examples/quickstart/agent/mcp_server.py     # speaks MCP on stdin/stdout

If ``MCP_EXAMPLE_CALL_LOG`` names a file, every tool call appends one line to it (``tool args``),
so a test can see how often the server really ran a tool (journaled calls are not repeated).
"""

from __future__ import annotations

import json
import os
import subprocess

from mcp.server.mcpserver import MCPServer

CAPITALS = {
    "france": "Paris",
    "germany": "Berlin",
    "italy": "Rome",
    "japan": "Tokyo",
    "kenya": "Nairobi",
    "peru": "Lima",
    "spain": "Madrid",
}

#: what ``shell.exec`` may run: a name picks one fixed argument list, input never reaches a shell
COMMANDS: dict[str, list[str]] = {
    "date": ["date", "-u"],
    "uptime": ["uptime"],
    "whoami": ["whoami"],
}

server = MCPServer("modelplane-example")


def _log(tool: str, arguments: dict[str, object]) -> None:
    path = os.environ.get("MCP_EXAMPLE_CALL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{tool} {json.dumps(arguments, sort_keys=True)}\n")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    _log("add", {"a": a, "b": b})
    return a + b


@server.tool()
def lookup_capital(country: str) -> str:
    """The capital city of ``country`` (a few countries only)."""
    _log("lookup_capital", {"country": country})
    capital = CAPITALS.get(country.strip().lower())
    if capital is None:
        raise ValueError(f"no capital known for {country!r}; try one of {sorted(CAPITALS)}")
    return capital


@server.tool(name="shell.exec")
def shell_exec(command: str) -> str:
    """Run an allowlisted command by name (date, uptime, whoami) and return its output."""
    _log("shell.exec", {"command": command})
    argv = COMMANDS.get(command.strip().lower())
    if argv is None:
        raise ValueError(f"command {command!r} is not allowed; use one of {sorted(COMMANDS)}")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True)
    return done.stdout.strip()


if __name__ == "__main__":
    server.run("stdio")
