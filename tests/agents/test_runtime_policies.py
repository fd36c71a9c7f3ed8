"""Messages between agent instances pass the runtime Policies (``Action::"agent.message"``): a
real Runtime on SQLite, with the Policies of a real store followed by an informer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from modelplane.agents import Runtime
from modelplane.policy import AgentPolicy, MemoryAudit, RuntimePolicies
from modelplane.store import Store

from ._harness import run, spec, url

NO_CROSS_TEAM = """
@id("same-namespace")
@reason("agents message only agents of their own namespace")
forbid(principal, action == Action::"agent.message", resource)
unless { principal in Namespace::"team-a" && resource.namespace == "team-a" };
"""


def test_a_message_a_policy_forbids_fails_the_sender_and_is_audited(
    tmp_path: Path, sqlite_store: Store
) -> None:
    # given a cluster-wide runtime Policy: team-a's agents message only team-a
    sqlite_store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Policy",
            "metadata": {"name": "same-namespace", "namespace": "modelplane-system"},
            "spec": {"scope": "runtime", "cedar": NO_CROSS_TEAM},
        }
    )
    audit = MemoryAudit()
    policies = RuntimePolicies(sqlite_store, audit=audit)
    hooks = AgentPolicy(policies)

    async def main() -> None:
        async with Runtime(
            url(tmp_path), authorizer=hooks, message_authorizer=hooks.authorize_message
        ) as rt:
            for namespace in ("team-a", "team-b"):
                rt.define(namespace, "echo", spec("agent_handlers:echo"))
                rt.instances.create(namespace, "echo", "rx", {"messages": 1})
            rt.define("team-a", "sender", spec("agent_handlers:sender"))
            # when a team-a agent messages team-a, then team-b
            rt.instances.create("team-a", "sender", "ok", {"to": "team-a/echo/rx"})
            rt.instances.create("team-a", "sender", "cross", {"to": "team-b/echo/rx"})
            delivered = await _done(rt, "team-a", "echo", "rx")
            refused = await _done(rt, "team-a", "sender", "cross")
            # then the first arrives; the second fails the sender with the policy's reason
            assert delivered["result"] == [{"hello": "ok"}]
            assert refused["status"] == "failed"
            assert "message to team-b/echo/rx denied" in refused["error"]
            assert "agents message only agents of their own namespace" in refused["error"]
            assert rt.instances.get("team-b", "echo", "rx")["status"] != "completed"
            # and the denial is in the sender's audit trail and in the sink
            trail = rt.instances.audit("team-a", "sender", "cross")
            assert [a["action"] for a in trail if a["action"].startswith("message.")] == [
                "message.deny"
            ]

    try:
        run(main)
    finally:
        policies.stop()
    decisions = {(e.resource, e.decision) for e in audit.events if e.category == "message"}
    assert decisions == {("Agent/team-a/echo", "allow"), ("Agent/team-b/echo", "deny")}
    assert all(e.principal == "system:serviceaccount:team-a:sender" for e in audit.events)


async def _done(rt: Runtime, namespace: str, agent: str, name: str) -> dict[str, object]:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        info = rt.instances.get(namespace, agent, name)
        if info["status"] in ("completed", "failed"):
            return info
        assert asyncio.get_running_loop().time() < deadline, info
        await asyncio.sleep(0.01)  # polling a condition with a deadline


def test_tool_arguments_that_are_not_json_are_denied_and_the_trail_says_why(
    tmp_path: Path, sqlite_store: Store
) -> None:
    # given the runtime Policies as the tool-call hook (no Policy at all: everything JSON passes)
    audit = MemoryAudit()
    policies = RuntimePolicies(sqlite_store, audit=audit)
    tools = [{"name": "calc", "transport": "stdio", "server": "calc"}]

    async def main() -> None:
        async with Runtime(url(tmp_path), authorizer=AgentPolicy(policies)) as rt:
            rt.define("team-a", "odd", spec("agent_handlers:odd_tool_args", tools=tools))
            # when a handler passes a set as an argument
            rt.instances.create("team-a", "odd", "o1", None)
            info = await _done(rt, "team-a", "odd", "o1")
            # then the call is denied before any server starts, naming the argument
            assert info["status"] == "failed"
            assert "the arguments are not JSON: arguments.a is a set" in info["error"]
            [denial] = [
                a for a in rt.instances.audit("team-a", "odd", "o1") if a["action"] == "tool.deny"
            ]
            assert denial["detail"]["arguments"].startswith("(not JSON:")

    try:
        run(main)
    finally:
        policies.stop()
    assert [(e.category, e.decision, e.arguments_digest) for e in audit.events] == [
        ("tool", "deny", "")
    ]
