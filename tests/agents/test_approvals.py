"""Tool calls that need a person's approval: they wait durably (journaled, across a restart, no
thread held), and run once approved or fail with ToolDenied once denied."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from modelplane.agents import Database, Decision, InstanceRef, Instances, Runtime
from modelplane.api.errors import Conflict

from ._harness import run, spec, url, wait_status
from .test_tools import _calls, _catalogue, _geo


class _AsksForCapitals:
    """A hook that sends every ``lookup_capital`` to a person, allows the rest, and counts."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(
        self, instance: InstanceRef, server: str, tool: str, arguments: Mapping[str, Any]
    ) -> Decision:
        self.asked.append(tool)
        if tool == "lookup_capital":
            return Decision(False, "lookups need a person", approval=True, policy_version="v1")
        return Decision(True, "allowed")


def test_a_call_needing_approval_waits_across_a_restart_and_runs_once_approved(
    tmp_path: Path,
) -> None:
    log = tmp_path / "calls.log"
    hook = _AsksForCapitals()
    agent = spec("tool_handlers:geographer", tools=[_geo(log)])

    async def main() -> None:
        # given an instance whose first tool call needs approval
        async with Runtime(url(tmp_path), authorizer=hook, tool_servers=_catalogue(log)) as rt:
            rt.define("default", "geo", agent)
            rt.instances.create("default", "geo", "g1", {"country": "Japan"})
            info = await wait_status(rt, "geo", "g1", ("waiting_approval",), timeout=120)
            assert "approve geo.lookup_capital?" in info["prompt"]
            [waiting] = rt.instances.approvals.list()
            assert (waiting["instance"], waiting["tool"]) == ("g1", "lookup_capital")
            assert waiting["arguments"] == {"country": "Japan"}
            assert waiting["decision"] == "pending" and waiting["reason"] == "lookups need a person"
        # when the runtime is gone, a person approves, and a new runtime takes the instance
        async with Runtime(url(tmp_path), authorizer=hook, tool_servers=_catalogue(log)) as rt:
            rt.define("default", "geo", agent)
            decided = rt.instances.approvals.decide(waiting["id"], True, "fine", actor="alice")
            assert decided["decision"] == "approved" and decided["decidedBy"] == "alice"
            info = await wait_status(rt, "geo", "g1", ("waiting_input",), timeout=120)
            rt.instances.give_input("default", "geo", "g1", "yes")
            info = await wait_status(rt, "geo", "g1", timeout=120)
            # then the call ran once, after the approval, and the hook was not asked again
            assert info["status"] == "completed", info
            assert info["result"]["capital"] == {"result": "Tokyo"}
            assert _calls(log) == ['lookup_capital {"country": "Japan"}', 'add {"a": 2, "b": 3}']
            assert hook.asked == ["lookup_capital", "add"]
            # and the trail holds the request and the decision; a second decision is refused
            actions = [a["action"] for a in rt.instances.audit("default", "geo", "g1")]
            assert actions[:3] == ["create", "tool.approval", "approval.approved"]
            with pytest.raises(Conflict, match="already approved by alice: fine"):
                rt.instances.approvals.decide(waiting["id"], False, "too late", actor="bob")
            assert rt.instances.approvals.list() == []
            assert [a["id"] for a in rt.instances.approvals.list(state="decided")] == [
                waiting["id"]
            ]

    run(main)


def test_a_denied_approval_raises_tool_denied_and_the_server_never_runs(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"

    async def main() -> None:
        async with Runtime(
            url(tmp_path), authorizer=_AsksForCapitals(), tool_servers=_catalogue(log)
        ) as rt:
            rt.define("default", "geo", spec("tool_handlers:geographer", tools=[_geo(log)]))
            rt.instances.create("default", "geo", "g2", {"country": "Peru"})
            await wait_status(rt, "geo", "g2", ("waiting_approval",), timeout=120)
            [waiting] = rt.instances.approvals.list()
            # when a person denies it
            rt.instances.approvals.decide(waiting["id"], False, "not today", actor="alice")
            info = await wait_status(rt, "geo", "g2", timeout=120)
            # then the handler got ToolDenied with who and why, and the tool never ran
            assert info["status"] == "failed"
            assert "denied by alice" in info["error"] and "not today" in info["error"]
            assert _calls(log) == []

    run(main)


@pytest.mark.postgres
def test_two_people_deciding_at_once_on_postgresql_one_decision_wins(pg_url: str) -> None:
    tools = [{"name": "calc", "transport": "stdio", "server": "calc"}]

    async def main() -> None:
        async with Runtime(pg_url, authorizer=_AsksForAll()) as rt:
            # given an instance on PostgreSQL whose tool call waits for a person
            rt.define("default", "calc", spec("agent_handlers:tool_user", tools=tools))
            rt.instances.create("default", "calc", "c1", {"a": 1, "b": 2})
            await wait_status(rt, "calc", "c1", ("waiting_approval",), timeout=60)
            [waiting] = rt.instances.approvals.list()
            # when two people deny it at the same instant, each through their own connection
            outcomes: list[str] = []

            def decide(who: str) -> None:
                mine = Instances(Database(pg_url))
                try:
                    mine.approvals.decide(waiting["id"], False, f"{who} says no", actor=who)
                    outcomes.append(f"won:{who}")
                except Conflict:
                    outcomes.append(f"lost:{who}")
                finally:
                    mine.db.close()

            threads = [threading.Thread(target=decide, args=(w,)) for w in ("alice", "bob")]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            # then exactly one decision won, and the instance got that one answer
            [winner] = [o.split(":")[1] for o in outcomes if o.startswith("won:")]
            assert len(outcomes) == 2
            info = await wait_status(rt, "calc", "c1", timeout=60)
            assert info["status"] == "failed" and f"{winner} says no" in info["error"]
            decided = rt.instances.approvals.get(waiting["id"])
            assert decided["decidedBy"] == winner
            trail = [a["actor"] for a in rt.instances.audit("default", "calc", "c1")]
            assert trail.count(winner) == 1 and len({"alice", "bob"} & set(trail)) == 1

    run(main)


class _AsksForAll:
    def __call__(
        self, instance: InstanceRef, server: str, tool: str, arguments: Mapping[str, Any]
    ) -> Decision:
        return Decision(False, "a person decides", approval=True)
