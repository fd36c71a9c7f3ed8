"""``/approvals`` over a real server with authentication: who sees and decides approvals (admins,
or principals a runtime Policy permits ``approval.decide``), and the decision reaching the
waiting instance."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from tests.control._wait import wait_until
from tests.server.conftest import serving

from modelplane.agents import Decision, InstanceRef, Runtime, approval_routes
from modelplane.api import Principal
from modelplane.policy import AgentPolicy, MemoryAudit, RuntimePolicies
from modelplane.server import create_app
from modelplane.store import Store

from ._harness import spec

TOKENS = {
    "admin-token": Principal("root", frozenset({"system:masters", "system:authenticated"})),
    "alice-token": Principal("alice", frozenset({"system:authenticated", "approvers"})),
    "bob-token": Principal("bob", frozenset({"system:authenticated"})),
}
PERMIT_APPROVERS = (
    'permit(principal in Group::"approvers", action == Action::"approval.decide",'
    ' resource in Namespace::"default");'
)


def _asks(instance: InstanceRef, server: str, tool: str, args: Mapping[str, Any]) -> Decision:
    return Decision(False, "a person decides", approval=True)


class _RuntimeThread:
    """A Runtime on its own event loop in a thread, with a waiting instance."""

    def __init__(self, database_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.rt = Runtime(database_url, authorizer=_asks)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._call(self.rt.start())

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def define_and_create(self) -> None:
        async def go() -> None:
            agent = spec("agent_handlers:tool_user", tools=[_calc()])
            self.rt.define("default", "calc", agent)
            self.rt.instances.create("default", "calc", "c1", {"a": 1, "b": 2})

        self._call(go())

    def close(self) -> None:
        self._call(self.rt.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _calc() -> dict[str, Any]:
    return {"name": "calc", "transport": "stdio", "server": "calc"}


def test_only_admins_and_permitted_principals_see_and_decide_approvals(
    sqlite_store: Store, tmp_path: Path
) -> None:
    store = sqlite_store
    audit = MemoryAudit()
    policies = RuntimePolicies(store, audit=audit)
    app = create_app(store, tokens=TOKENS, routes=approval_routes(store, AgentPolicy(policies)))
    # the runtime's tables beside the store, where the routes read them (agents.db)
    runtime = _RuntimeThread(f"sqlite:///{tmp_path / 'agents.db'}")
    try:
        with serving(app) as base:
            # given an instance whose tool call waits for a person
            runtime.define_and_create()

            def client(token: str | None) -> httpx.Client:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                return httpx.Client(base_url=base, headers=headers, timeout=10)

            admin, alice, bob = client("admin-token"), client("alice-token"), client("bob-token")
            items = wait_until(
                lambda: admin.get("/approvals").json()["items"], what="the approval listed"
            )
            approval = items[0]["id"]
            # then an unauthenticated caller is refused, and bob neither sees nor decides it
            assert client(None).get("/approvals").status_code == 401
            assert bob.get("/approvals").json()["items"] == []
            refused = bob.post(f"/approvals/{approval}/approve", json={})
            assert refused.status_code == 403 and "may not decide" in refused.json()["message"]
            assert admin.get(f"/approvals/{approval}").json()["decision"] == "pending"
            # given a runtime Policy permitting the group approvers, alice may deny it
            store.create(
                {
                    "apiVersion": "modelplane.dev/v1alpha1",
                    "kind": "Policy",
                    "metadata": {"name": "approvers", "namespace": "modelplane-system"},
                    "spec": {"scope": "runtime", "cedar": PERMIT_APPROVERS},
                }
            )
            wait_until(lambda: alice.get("/approvals").json()["items"], what="alice's view")
            denied = alice.post(f"/approvals/{approval}/deny", json={"reason": "not now"})
            assert denied.status_code == 200, denied.text
            assert denied.json()["decision"] == "denied"
            # then the waiting call fails with who and why, and the decision is in the sink
            info = wait_until(
                lambda: (
                    (i := runtime.rt.instances.get("default", "calc", "c1"))["status"] == "failed"
                    and i
                ),
                what="the instance failed with ToolDenied",
            )
            assert "denied by alice" in info["error"] and "not now" in info["error"]
            decided = [e for e in audit.events if e.principal == "alice"]
            assert [(e.category, e.decision) for e in decided] == [("approval", "deny")]
            assert [e.principal for e in audit.events if e.decision == "deny"] == ["bob", "alice"]
            # and a bad reason is a 400 that changes nothing
            bad = admin.post(f"/approvals/{approval}/approve", json={"reason": 5})
            assert bad.status_code == 400
    finally:
        runtime.close()
        policies.stop()
