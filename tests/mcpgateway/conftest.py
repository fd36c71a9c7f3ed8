"""A real ``modelplane`` server on loopback with the MCP gateway mounted, token-authenticated.

``platform`` serves the REST API over a SQLite store with three principals: ``alice`` of
``team-a``, ``bob`` of ``team-b`` and an administrator. The gateway's authorizer is tenancy plus
two rules of the kind a Cedar runtime policy states: ``shell_exec`` is forbidden everywhere, and
``echo`` may not send text containing ``secret``. ToolServer ``tools`` starts ``tool_server.py``
over stdio; ``http_upstream`` runs the same server over Streamable HTTP in a process of its own.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.server._objects import GROUP
from tests.server.conftest import serving

from modelplane.api import ADMIN_GROUP, AUTHENTICATED_GROUP, Principal
from modelplane.egress import EgressRules
from modelplane.mcpgateway import Authorizer, McpGateway, mount, tenancy
from modelplane.policy import Decision, MemoryAudit
from modelplane.server import create_app
from modelplane.store import Store, open_store

SERVER_SCRIPT = Path(__file__).with_name("tool_server.py")
TOKENS = {
    "alice-token": Principal(
        "alice", frozenset({"modelplane:namespace:team-a", AUTHENTICATED_GROUP})
    ),
    "bob-token": Principal("bob", frozenset({"modelplane:namespace:team-b", AUTHENTICATED_GROUP})),
    "admin-token": Principal("root", frozenset({ADMIN_GROUP, AUTHENTICATED_GROUP})),
}


def authorizer(
    principal: Principal,
    namespace: str,
    server: str,
    tool: str,
    arguments: Mapping[str, Any] | None,
) -> Decision:
    """Tenancy, then: no shell; no ``secret`` in what ``echo`` sends (a rule on arguments)."""
    decision = tenancy(principal, namespace, server, tool, arguments)
    if not decision.allowed:
        return decision
    if tool == "shell_exec":
        return Decision(False, ("no-shell",), ("shell commands are not allowed",))
    if tool == "echo" and arguments is not None and "secret" in str(arguments.get("text")):
        return Decision(False, ("no-secrets",), ("echo may not send secrets",))
    return Decision(True)


def tool_server(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": GROUP, "kind": "ToolServer", "metadata": {"name": name}, "spec": spec}


@dataclass
class Platform:
    url: str
    store: Store
    gateway: McpGateway
    audit: MemoryAudit

    def mcp(self, namespace: str, server: str) -> str:
        return f"{self.url}/mcp/{namespace}/{server}"


@contextmanager
def start_platform(
    tmp_path: Path,
    egress: EgressRules,
    rules: Callable[[Store], Authorizer] = lambda store: authorizer,
) -> Iterator[Platform]:
    with open_store(f"sqlite:///{tmp_path / 'modelplane.db'}") as store:
        store.create(tool_server("tools", {"command": "python", "args": [str(SERVER_SCRIPT)]}))
        audit = MemoryAudit()
        route = mount(store, egress=egress, authorizer=rules(store), audit=audit)
        assert isinstance(route.endpoint, McpGateway)
        app = create_app(store, tokens=TOKENS, routes=[route])
        with serving(app) as url:
            yield Platform(url, store, route.endpoint, audit)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    with start_platform(tmp_path, EgressRules.parse(allow_loopback=True)) as started:
        yield started


@pytest.fixture
def http_upstream() -> Iterator[str]:
    """The test server over Streamable HTTP in its own process; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--http"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert port.isdigit(), f"the HTTP MCP server did not start (said {port!r})"
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
