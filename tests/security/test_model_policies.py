"""Runtime Policies on model calls: the gateway asks them after tenancy, over a real server with
bearer tokens; a deny is an OpenAI-shaped 403 naming the policy, and both outcomes are audited."""

from __future__ import annotations

import httpx
from starlette.routing import Mount
from tests.policy._manifests import runtime_policy
from tests.security.test_identity import GATEWAY_TOKENS, _served_model
from tests.server.conftest import serving

from modelplane.egress import EgressRules
from modelplane.gateway import Gateway
from modelplane.policy import MemoryAudit, RuntimePolicies
from modelplane.server import create_app
from modelplane.store import Store
from modelplane.testing.upstream import FakeUpstream

SMALL_CALLS = """
@id("small-calls")
@reason("team-a asks for at most 100 tokens")
forbid(principal in Namespace::"team-a", action == Action::"model.call", resource)
when { context.max_tokens > 100 };
"""


def _runtime_policy(store: Store) -> None:
    store.create(runtime_policy("small-calls", "team-a", SMALL_CALLS))


def _chat(base: str, max_tokens: int) -> httpx.Response:
    body = {"model": "team-a/chat", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(
        f"{base}/v1/chat/completions",
        json={**body, "max_tokens": max_tokens},
        headers={"Authorization": "Bearer alice-token"},
        timeout=30,
    )


def test_a_runtime_policy_caps_a_tenants_max_tokens_with_a_403_naming_it(
    sqlite_store: Store,
) -> None:
    # given a tenant's model and a runtime Policy forbidding it calls over 100 tokens
    audit = MemoryAudit()
    gateway = Gateway(
        sqlite_store,
        egress=EgressRules(allow_loopback=True),
        audit=audit,
        runtime=RuntimePolicies(sqlite_store),
    )
    app = create_app(sqlite_store, tokens=GATEWAY_TOKENS, routes=[Mount("/v1", app=gateway.app)])
    with FakeUpstream("provider") as upstream:
        _served_model(sqlite_store, "team-a", upstream.url)
        _runtime_policy(sqlite_store)
        try:
            with serving(app, wait=False) as base:
                # when the tenant asks for 500 tokens, then for 50
                over, under = _chat(base, 500), _chat(base, 50)
        finally:
            gateway.stop()

    # then the first is refused, naming the policy and its reason, and the second is served
    assert over.status_code == 403, over.text
    error = over.json()["error"]
    assert error["code"] == "policy_denied" and error["type"] == "permission_error"
    assert "small-calls" in error["message"]
    assert "team-a asks for at most 100 tokens" in error["message"]
    assert under.status_code == 200, under.text
    # and the audit sink holds both decisions, the deny naming the policy set's version
    decisions = [(e.category, e.principal, e.resource, e.decision) for e in audit.events]
    assert decisions == [
        ("model", "alice", "Endpoint/team-a/chat", "deny"),
        ("model", "alice", "Endpoint/team-a/chat", "allow"),
    ]
    denied = audit.events[0]
    assert any("small-calls" in p for p in denied.policies)
    assert denied.policy_version.startswith("sha256:")
