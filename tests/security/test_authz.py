"""Principals with groups from the token file, and kinds only administrators may write."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from tests.security._platform import ADMIN_TOKEN, TENANT_TOKEN, TOKENS, url
from tests.server.conftest import serving

from modelplane.api import ADMIN_GROUP, Principal, kinds
from modelplane.server import create_app, load_tokens
from modelplane.server._auth import BearerAuth
from modelplane.server._catalog import Catalog
from modelplane.server._context import ServerContext
from modelplane.store import Store

POLICY = {
    "apiVersion": "modelplane.dev/v1alpha1",
    "kind": "Policy",
    "metadata": {"name": "quota"},
    "spec": {"scope": "admission", "cedar": "permit(principal, action, resource);"},
}


def _with_admin_only_policies(app: Starlette) -> Starlette:
    """The app with Policy operator-owned (no kind is, yet, on this branch)."""
    ctx: ServerContext = app.state.context
    ctx.catalog = Catalog.of(
        dataclasses.replace(info, admin_only=True) if info.kind == "Policy" else info
        for info in kinds()
    )
    return app


def _client(base: str, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base, headers=headers, timeout=10)


def test_a_token_file_line_gives_a_principal_with_its_groups(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text('t1,ops,uid-1,"system:masters,sre"\nt2,alice,uid-2\nt3\n')

    tokens = load_tokens(path)

    assert tokens["t1"] == Principal("ops", frozenset({ADMIN_GROUP, "sre", "system:authenticated"}))
    assert tokens["t1"].is_admin
    assert tokens["t2"] == Principal("alice", frozenset({"system:authenticated"}))
    assert not tokens["t3"].is_admin


def test_a_token_file_line_with_too_many_fields_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "tokens.csv"
    path.write_text("t1,ops,uid,system:masters,sre\n")

    with pytest.raises(Exception, match=r"tokens.csv:1: 5 fields"):
        load_tokens(path)


def test_the_middleware_keeps_no_token_in_memory() -> None:
    auth = BearerAuth(Starlette(), TOKENS)
    assert not any(token.encode() in repr(vars(auth)).encode() for token in TOKENS)


def test_a_non_admin_may_not_write_an_admin_only_kind(sqlite_store: Store) -> None:
    app = _with_admin_only_policies(create_app(sqlite_store, tokens=TOKENS))
    with serving(app, wait=False) as base, _client(base, TENANT_TOKEN) as tenant:
        with _client(base, ADMIN_TOKEN) as admin:
            # an administrator may create it
            assert admin.post(url("policies"), json=POLICY).status_code == 201
        stored = tenant.get(url("policies", "quota"))
        changed = {**stored.json(), "spec": {**POLICY["spec"], "scope": "runtime"}}
        # a tenant may read it, and no write of any kind goes through
        attempts = {
            "create": tenant.post(url("policies"), json={**POLICY, "metadata": {"name": "b"}}),
            "update": tenant.put(url("policies", "quota"), json=changed),
            "patch": tenant.patch(
                url("policies", "quota"),
                json={"spec": {"scope": "runtime"}},
                headers={"Content-Type": "application/merge-patch+json"},
            ),
            "status": tenant.put(url("policies", "quota") + "/status", json=changed),
            "delete": tenant.delete(url("policies", "quota")),
        }
    assert stored.status_code == 200
    for verb, r in attempts.items():
        assert r.status_code == 403, (verb, r.text)
        status = r.json()
        assert status["reason"] == "Forbidden"
        assert "Policy" in status["message"] and ADMIN_GROUP in status["message"]
        assert "alice" in status["message"]
        assert status["details"]["kind"] == "Policy"
    assert sqlite_store.get("Policy", "default", "quota")["spec"]["scope"] == "admission"
    assert [p["metadata"]["name"] for p in sqlite_store.list("Policy").items] == ["quota"]


def test_kinds_that_are_not_admin_only_stay_open_to_tenants(sqlite_store: Store) -> None:
    app = _with_admin_only_policies(create_app(sqlite_store, tokens=TOKENS))
    with serving(app, wait=False) as base, _client(base, TENANT_TOKEN) as tenant:
        model = {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "m"},
            "spec": {
                "versions": [
                    {"name": "v1", "format": "upstream", "source": "https://api.example.com/v1"}
                ]
            },
        }
        assert tenant.post(url("models"), json=model).status_code == 201


def test_without_authentication_the_local_operator_may_write_admin_only_kinds(
    sqlite_store: Store,
) -> None:
    app = _with_admin_only_policies(create_app(sqlite_store))
    with serving(app, wait=False) as base, _client(base, None) as local:
        assert local.post(url("policies"), json=POLICY).status_code == 201


def test_a_tenant_may_not_write_status_that_the_gateway_would_trust(sqlite_store: Store) -> None:
    # given an Endpoint a tenant created
    app = create_app(sqlite_store, tokens=TOKENS)
    endpoint = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Endpoint",
        "metadata": {"name": "chat"},
        "spec": {"model": "m"},
    }
    hostile = {
        "status": {"replicas": [{"name": "r", "url": "http://169.254.169.254/v1", "ready": True}]}
    }
    merge = {"Content-Type": "application/merge-patch+json"}
    with serving(app, wait=False) as base, _client(base, TENANT_TOKEN) as tenant:
        assert tenant.post(url("endpoints"), json=endpoint).status_code == 201
        # when the tenant writes a replica URL into its status (the gateway sends requests there)
        patched = tenant.patch(url("endpoints", "chat") + "/status", json=hostile, headers=merge)
        current = tenant.get(url("endpoints", "chat")).json()
        replaced = tenant.put(url("endpoints", "chat") + "/status", json={**current, **hostile})
        # then both are refused, naming why, and the status is unchanged
        with _client(base, ADMIN_TOKEN) as admin:
            allowed = admin.patch(
                url("endpoints", "chat") + "/status",
                json={"status": {"readyReplicas": 0}},
                headers=merge,
            )
    for r in (patched, replaced):
        assert r.status_code == 403, r.text
        assert "written by the platform's components" in r.json()["message"]
    assert "replicas" not in (sqlite_store.get("Endpoint", "default", "chat").get("status") or {})
    # and an administrator (the platform's components act as one) may write it
    assert allowed.status_code == 200, allowed.text
