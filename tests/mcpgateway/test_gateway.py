"""The MCP gateway through the official SDK client, against real MCP servers over loopback."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import mcp_types as types
import pytest
from mcp import ClientSession, MCPError

from modelplane.egress import EgressRules
from modelplane.mcpgateway import open_session
from modelplane.policy import AuditEvent

from .conftest import Platform, start_platform, tool_server

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(main(), 60))


def text(result: types.CallToolResult) -> str:
    return " ".join(b.text for b in result.content if isinstance(b, types.TextContent))


async def names(session: ClientSession) -> list[str]:
    return sorted(tool.name for tool in (await session.list_tools()).tools)


#: a raw ``initialize`` request, for the tests that look at HTTP itself
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
ALL_TOOLS = ["add", "calls", "echo", "exit", "pid", "shell_exec"]


def calls(platform: Platform) -> list[AuditEvent]:
    """The audited tool calls (an SDK client also lists the tools before it calls one, and each
    listing records the tools it hid)."""
    return [e for e in platform.audit.events if e.action == "tools/call"]


def test_tools_list_shows_only_the_tools_the_caller_may_call(platform: Platform) -> None:
    async def main() -> tuple[list[str], list[str]]:
        # given a member of team-a and an administrator, both on team-a's `tools` server
        async with open_session(platform.mcp("team-a", "tools"), "alice-token") as alice:
            seen_by_alice = await names(alice)
        async with open_session(platform.mcp("team-a", "tools"), "admin-token") as admin:
            seen_by_admin = await names(admin)
        return seen_by_alice, seen_by_admin

    # when each lists the tools, then the tool the policy forbids to everyone is hidden from both,
    # and every other tool shows
    alice, admin = run(main)
    assert alice == [t for t in ALL_TOOLS if t != "shell_exec"]
    assert admin == alice
    # and each hiding is audited as a refused listing, naming the policy that decided
    hidden = [
        (e.principal, e.action, e.resource, e.decision, e.policies) for e in platform.audit.events
    ]
    assert hidden == [
        (who, "tools/list", "tools/shell_exec", "deny", ("no-shell",)) for who in ("alice", "root")
    ]


def test_an_allowed_call_reaches_the_stdio_server_and_is_audited_with_its_digest(
    platform: Platform,
) -> None:
    async def main() -> types.CallToolResult:
        async with open_session(platform.mcp("team-a", "tools"), "alice-token") as alice:
            return await alice.call_tool("add", {"b": 3, "a": 2})

    # when alice calls add, then the server's answer comes back
    result = run(main)
    assert not result.is_error, text(result)
    assert result.structured_content == {"result": 5}
    # and the call is audited: who, what, where, allowed, and the digest of canonical JSON
    [event] = calls(platform)
    digest = hashlib.sha256(b'{"a":2,"b":3}').hexdigest()
    assert (event.category, event.principal, event.action, event.resource) == (
        "tool",
        "alice",
        "tools/call",
        "tools/add",
    )
    assert (event.decision, event.namespace, event.arguments_digest) == (
        "allow",
        "team-a",
        f"sha256:{digest}",
    )


def test_a_denied_call_is_a_tool_error_naming_why_and_never_reaches_the_server(
    platform: Platform,
) -> None:
    async def main() -> tuple[types.CallToolResult, types.CallToolResult, Any]:
        async with open_session(platform.mcp("team-a", "tools"), "alice-token") as alice:
            shell = await alice.call_tool("shell_exec", {"command": "rm -rf /"})
            secret = await alice.call_tool("echo", {"text": "the secret is 42"})
            allowed = await alice.call_tool("echo", {"text": "hello"})
            assert text(allowed) == "hello"
            ran = (await alice.call_tool("calls", {})).structured_content
        return shell, secret, ran

    # when alice calls the forbidden shell, and echo with forbidden arguments
    shell, secret, ran = run(main)
    # then each answer is a tool error that says why and which policy decided
    assert shell.is_error and "shell commands are not allowed" in text(shell)
    assert "no-shell" in text(shell)
    assert secret.is_error and "echo may not send secrets" in text(secret)
    # and the server ran only the allowed call
    assert ran == {"result": ["echo"]}
    # and the denials are audited with the policies that decided
    denials = [(e.resource, e.policies) for e in calls(platform) if e.decision == "deny"]
    assert denials == [("tools/shell_exec", ("no-shell",)), ("tools/echo", ("no-secrets",))]


def test_another_tenant_is_refused_before_the_server_starts(platform: Platform) -> None:
    async def main() -> None:
        async with open_session(platform.mcp("team-a", "tools"), "bob-token"):
            pass

    # when bob of team-b connects to team-a's server, then the connection is refused
    with pytest.raises(BaseException) as refused:
        run(main)
    assert "403" in repr(refused.value) or "may not use" in repr(refused.value)
    # and nothing was started for him
    assert platform.gateway.upstream("team-a", "tools") is None


def test_another_tenant_gets_403_with_a_jsonrpc_error_naming_the_namespace(
    platform: Platform,
) -> None:
    # given an initialize request from bob to team-a's server
    body = INITIALIZE
    headers = {"Authorization": "Bearer bob-token", "Accept": "application/json, text/event-stream"}
    response = httpx2.post(platform.mcp("team-a", "tools"), json=body, headers=headers)
    # then it is refused with a JSON-RPC error that says what to do
    assert response.status_code == 403
    message = response.json()["error"]["message"]
    assert "bob may not use the MCP servers of the namespace 'team-a'" in message
    # and without a token there is no way in at all
    assert httpx2.post(platform.mcp("team-a", "tools"), json=body).status_code == 401


def test_the_stdio_server_is_started_once_for_many_calls_and_sessions(platform: Platform) -> None:
    async def main() -> set[Any]:
        pids = set()
        for _ in range(3):  # three client sessions, one after the other
            async with open_session(platform.mcp("team-a", "tools"), "alice-token") as alice:
                results = await asyncio.gather(*(alice.call_tool("pid", {}) for _ in range(10)))
                pids |= {r.structured_content["result"] for r in results if r.structured_content}
        return pids

    # when 30 calls arrive over three sessions (ten at a time)
    pids = run(main)
    # then one process answered them all
    assert len(pids) == 1
    upstream = platform.gateway.upstream("team-a", "tools")
    assert upstream is not None and upstream.starts == 1


def test_a_stdio_server_that_exits_is_started_again_by_the_next_call(platform: Platform) -> None:
    async def main() -> tuple[int, MCPError, int]:
        async with open_session(platform.mcp("team-a", "tools"), "alice-token") as alice:
            first = (await alice.call_tool("pid", {})).structured_content["result"]
            # when the server process dies under a call
            with pytest.raises(MCPError) as died:
                await alice.call_tool("exit", {})
            # then the next call, on the same client session, reaches a new process
            second = (await alice.call_tool("pid", {})).structured_content["result"]
        return first, died.value, second

    first, died, second = run(main)
    assert "closed the connection" in died.error.message
    assert first != second
    upstream = platform.gateway.upstream("team-a", "tools")
    assert upstream is not None and upstream.starts == 2


# the client is made to send what its own models refuse: pydantic says so while it serializes
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
def test_arguments_that_are_not_a_json_object_get_a_clear_error(platform: Platform) -> None:
    async def main() -> MCPError:
        async with open_session(platform.mcp("team-a", "tools"), "alice-token") as alice:
            params = types.CallToolRequestParams.model_construct(name="add", arguments=[2, 3])
            with pytest.raises(MCPError) as refused:
                await alice.send_request(types.CallToolRequest(params=params), types.CallToolResult)
            return refused.value

    # when a client sends a list where the arguments object belongs
    refused = run(main)
    # then it is told so as invalid params, and the refusal is audited
    assert refused.error.code == types.INVALID_PARAMS
    assert refused.error.message == (
        "tools/call add: `arguments` must be a JSON object of the tool's parameters"
        ' ({"name": value, ...}), not a list'
    )
    [event] = calls(platform)
    assert (event.decision, event.resource) == ("deny", "tools/add")
    assert event.arguments_digest == "sha256:" + hashlib.sha256(b"[2,3]").hexdigest()


def test_a_session_answers_only_the_principal_that_opened_it(platform: Platform) -> None:
    # given alice's session id, learnt from a raw initialize
    body = INITIALIZE
    accept = {"Accept": "application/json, text/event-stream"}
    url = platform.mcp("team-a", "tools")
    opened = httpx2.post(url, json=body, headers={**accept, "Authorization": "Bearer alice-token"})
    session_id = opened.headers["mcp-session-id"]
    # when the administrator (admitted to team-a) sends a request naming that session
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    headers = {**accept, "mcp-session-id": session_id, "mcp-protocol-version": "2025-06-18"}
    hijack = httpx2.post(
        url, json=listing, headers={**headers, "Authorization": "Bearer admin-token"}
    )
    # then the session does not exist for it
    assert hijack.status_code == 404
    # while alice herself is answered on it (the first listing starts the server: time for that)
    alice = {**headers, "Authorization": "Bearer alice-token"}
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert httpx2.post(url, json=initialized, headers=alice).status_code == 202
    own = httpx2.post(url, json=listing, headers=alice, timeout=60)
    assert own.status_code == 200, own.text
    assert "add" in {tool["name"] for tool in own.json()["result"]["tools"]}


def test_a_streamable_http_server_is_served_with_the_same_rules(
    platform: Platform, http_upstream: str
) -> None:
    # given a ToolServer for an MCP server reached over Streamable HTTP
    platform.store.create(tool_server("remote", {"url": http_upstream}))

    async def main() -> tuple[list[str], types.CallToolResult, types.CallToolResult]:
        async with open_session(platform.mcp("team-a", "remote"), "alice-token") as alice:
            listed = await names(alice)
            added = await alice.call_tool("add", {"a": 40, "b": 2})
            shell = await alice.call_tool("shell_exec", {"command": "id"})
            return listed, added, shell

    listed, added, shell = _wait_for_toolserver(platform, "remote", main)
    # then listing, allowed and denied calls behave as for a stdio server
    assert listed == [t for t in ALL_TOOLS if t != "shell_exec"]
    assert added.structured_content == {"result": 42}
    assert shell.is_error and "no-shell" in text(shell)


def test_an_http_server_the_egress_rules_refuse_is_a_clear_error(
    tmp_path: Path, http_upstream: str
) -> None:
    # given a platform whose egress rules refuse loopback, and a ToolServer on loopback
    with start_platform(tmp_path, EgressRules()) as platform:
        platform.store.create(tool_server("remote", {"url": http_upstream}))
        url = platform.mcp("team-a", "remote")

        async def main() -> MCPError:
            async with open_session(url, "alice-token") as alice:
                with pytest.raises(MCPError) as refused:
                    await alice.list_tools()
                return refused.value

        # when alice lists its tools, then the error names the egress rules
        refused = _wait_for_toolserver(platform, "remote", main)
        assert "refused by the egress rules" in refused.error.message
        assert "loopback" in refused.error.message


def _wait_for_toolserver(platform: Platform, name: str, main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` once the gateway's informer has seen ToolServer ``name``."""
    from tests.control._wait import wait_until

    cache = platform.gateway._servers  # the informer's view the requests read
    wait_until(lambda: cache(name), what=f"the gateway to see ToolServer {name}")
    return run(main)
