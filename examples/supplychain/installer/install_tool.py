"""An MCP server (official ``mcp`` SDK, stdio) whose tool ``pip_install`` installs Python packages
for an agent's tools, through the dependency guard.

The agent runtime checks every call of a tool named like this against the operator's index
snapshot before the call reaches the server (docs/supplychain.md, "Agents installing
packages"); the tool checks again with :func:`modelplane.supplychain.guarded_install`, so that it
is safe outside the platform too. A blocked name (invented, typosquat) never reaches pip.

    MODELPLANE_INDEX_SNAPSHOT=examples/supplychain/index-snapshot.json \
        python examples/supplychain/installer/install_tool.py    # speaks MCP on stdin/stdout

Packages go into ``INSTALL_TOOL_TARGET`` (default ``site-packages`` in the server's folder), never
into the Python that runs the server; ``INSTALL_TOOL_PIP_ARGS`` adds the operator's pip options
(``--no-index --find-links DIR``, ``--dry-run``). If ``MCP_EXAMPLE_CALL_LOG`` names a file, every
call appends one line to it (``tool args``), so a test can see whether the server ran at all.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from mcp.server.mcpserver import MCPServer

from modelplane.supplychain import InstallRefused, guarded_install

server = MCPServer("modelplane-install-tool")


def _log(tool: str, arguments: dict[str, object]) -> None:
    path = os.environ.get("MCP_EXAMPLE_CALL_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{tool} {json.dumps(arguments, sort_keys=True)}\n")


def _pip(argv: list[str]) -> int:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    sys.stderr.write(done.stdout + done.stderr)
    return done.returncode


@server.tool()
def pip_install(packages: list[str]) -> str:
    """Install these Python packages (requirements such as ``requests>=2``) for the agent's tools,
    once the dependency guard has checked each of them."""
    _log("pip_install", {"packages": packages})
    snapshot = os.environ.get("MODELPLANE_INDEX_SNAPSHOT")
    if not snapshot:
        raise ValueError("no index snapshot: the operator sets MODELPLANE_INDEX_SNAPSHOT")
    target = os.environ.get("INSTALL_TOOL_TARGET", "site-packages")
    pip_args = ["--target", target, *shlex.split(os.environ.get("INSTALL_TOOL_PIP_ARGS", ""))]
    try:
        result = guarded_install(packages, snapshot=snapshot, runner=_pip, pip_args=pip_args)
    except InstallRefused as exc:
        raise ValueError(exc.message) from None
    if result.returncode != 0:
        raise ValueError(f"pip exited with {result.returncode}")
    return f"installed {', '.join(packages)} into {target}"


if __name__ == "__main__":
    server.run("stdio")
