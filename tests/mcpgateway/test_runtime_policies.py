"""The MCP gateway asks the runtime Policies after tenancy (as `modelplane up` wires it): a Policy
forbidding one tool hides it from tools/list and denies its call, through the official SDK."""

from __future__ import annotations

from pathlib import Path

import mcp_types as types
from tests.policy._manifests import runtime_policy

from modelplane.egress import EgressRules
from modelplane.mcpgateway import Authorizer, open_session, tenancy
from modelplane.policy import AgentPolicy, RuntimePolicies
from modelplane.store import Store

from .conftest import start_platform
from .test_gateway import ALL_TOOLS, names, run, text

NO_PID = """
@id("no-pid")
@reason("the pid tool is not for team-a")
forbid(principal in Namespace::"team-a", action in [Action::"tools/call", Action::"tools/list"],
       resource)
when { resource.tool == "pid" && resource.server == "tools" };
"""


def _runtime_rules(store: Store) -> Authorizer:
    store.create(runtime_policy("no-pid", "team-a", NO_PID))
    return AgentPolicy(RuntimePolicies(store)).tool_authorizer(tenancy)


def test_a_runtime_policy_hides_a_tool_from_the_list_and_denies_its_call(tmp_path: Path) -> None:
    # given the MCP gateway with tenancy and the runtime Policies, one forbidding `pid` in team-a
    egress = EgressRules.parse(allow_loopback=True)
    with start_platform(tmp_path, egress, _runtime_rules) as platform:

        async def main() -> tuple[list[str], types.CallToolResult, types.CallToolResult]:
            async with open_session(platform.mcp("team-a", "tools"), "alice-token") as alice:
                return (
                    await names(alice),
                    await alice.call_tool("pid", {}),
                    await alice.call_tool("add", {"a": 1, "b": 2}),
                )

        # when alice lists the tools and calls `pid`, then `add`
        listed, pid, add = run(main)

    # then `pid` is hidden, its call is a tool error naming the policy, and `add` still works
    assert listed == [t for t in ALL_TOOLS if t != "pid"]
    assert pid.is_error and "no-pid" in text(pid) and "not for team-a" in text(pid)
    assert not add.is_error and add.structured_content == {"result": 3}
    # and both calls are audited with the version of the policy set that decided
    calls = [(e.resource, e.decision) for e in platform.audit.events if e.action == "tools/call"]
    assert calls == [("tools/pid", "deny"), ("tools/add", "allow")]
    assert platform.audit.events[0].policy_version.startswith("sha256:")
