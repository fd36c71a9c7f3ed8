"""Namespaces are tenants, in a real `modelplane up` (SQLite, loopback): with two tenants'
tokens, the second cannot read, list, watch or call what the first owns, and the first can."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess

from modelplane.server import hash_token
from modelplane.testing.upstream import FakeUpstream

GROUP = "modelplane.dev/v1alpha1"
TOKENS = {"ops": "ops-token", "alice": "alice-token", "bob": "bob-token"}
KINDS = ("models", "endpoints", "agents")


def _objects(namespace: str, upstream: str) -> list[dict[str, Any]]:
    meta = {"name": "chat", "namespace": namespace}
    return [
        {
            "apiVersion": GROUP,
            "kind": "Model",
            "metadata": meta,
            "spec": {"versions": [{"name": "v1", "format": "upstream", "source": upstream}]},
        },
        {"apiVersion": GROUP, "kind": "Endpoint", "metadata": meta, "spec": {"model": "chat"}},
        {
            "apiVersion": GROUP,
            "kind": "Agent",
            "metadata": meta,
            "spec": {"entrypoint": "helper.agent:Helper", "models": ["chat"]},
        },
    ]


def _url(plural: str, namespace: str | None = None, name: str = "") -> str:
    where = f"/namespaces/{namespace}" if namespace else ""
    return f"/apis/{GROUP}{where}/{plural}" + (f"/{name}" if name else "")


@dataclass
class Tenants:
    ops: httpx.Client
    alice: httpx.Client  # team-a
    bob: httpx.Client  # team-b


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[Tenants]:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(
        f'{hash_token(TOKENS["ops"])},ops,u0,"system:masters"\n'
        f'{hash_token(TOKENS["alice"])},alice,u1,"modelplane:namespace:team-a"\n'
        f'{hash_token(TOKENS["bob"])},bob,u2,"modelplane:namespace:team-b"\n'
    )
    extra = ["--token-file", str(tokens), "--allow-loopback-upstreams"]
    up = UpProcess(tmp_path / "home", extra=extra).start(timeout=60)
    clients = {
        who: httpx.Client(base_url=up.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        for who, token in TOKENS.items()
    }
    try:
        yield Tenants(**clients)
    finally:
        for client in clients.values():
            client.close()
        up.stop()
    # hashed tokens only: up warned about no plain-text line
    assert "plain text" not in up.log.read_text()


def _watched(client: httpx.Client, plural: str, namespace: str | None = None) -> list[str]:
    """The namespace/name of every object a watch shows (its initial events; it ends itself)."""
    seen = []
    params = {"watch": "true", "timeoutSeconds": "1"}
    with client.stream("GET", _url(plural, namespace), params=params) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line:
                obj = orjson.loads(line)["object"]["metadata"]
                seen.append(f"{obj['namespace']}/{obj['name']}")
    return seen


def _chat(client: httpx.Client, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "user": "end-user-7"}
    return client.post("/v1/chat/completions", json=body)


def test_a_second_tenant_cannot_read_list_watch_or_call_the_first_tenants_objects(
    tenants: Tenants,
) -> None:
    with FakeUpstream("provider-a") as upstream_a, FakeUpstream("provider-b") as upstream_b:
        # given each tenant's Model, Endpoint and Agent in its namespace, written by itself
        for client, namespace, upstream in (
            (tenants.alice, "team-a", upstream_a.url),
            (tenants.bob, "team-b", upstream_b.url),
        ):
            for obj in _objects(namespace, upstream):
                plural = obj["kind"].lower() + "s"
                r = client.post(_url(plural, namespace), json=obj)
                assert r.status_code == 201, r.text
        alice, bob = tenants.alice, tenants.bob

        # then alice reads hers, and bob gets 403 for each of them, existing or not
        for plural in KINDS:
            assert alice.get(_url(plural, "team-a", "chat")).status_code == 200
            for name in ("chat", "no-such-object"):
                r = bob.get(_url(plural, "team-a", name))
                assert r.status_code == 403, r.text
                assert r.json()["reason"] == "Forbidden"
                assert "modelplane:namespace:team-a" in r.json()["message"]
            # a list or watch of team-a is refused to bob
            assert bob.get(_url(plural, "team-a")).status_code == 403
            assert bob.get(_url(plural, "team-a"), params={"watch": "true"}).status_code == 403
            # across namespaces, each sees only their own; the administrator sees both
            listed = {
                who: {o["metadata"]["namespace"] for o in c.get(_url(plural)).json()["items"]}
                for who, c in (("alice", alice), ("bob", bob), ("ops", tenants.ops))
            }
            assert listed == {"alice": {"team-a"}, "bob": {"team-b"}, "ops": {"team-a", "team-b"}}
            assert _watched(bob, plural) == ["team-b/chat"]
            assert _watched(alice, plural) == ["team-a/chat"]

        # writes: bob may not write in team-a
        intruder = {**_objects("team-a", upstream_b.url)[0], "metadata": {"name": "x"}}
        assert bob.post(_url("models", "team-a"), json=intruder).status_code == 403
        assert bob.delete(_url("models", "team-a", "chat")).status_code == 403
        assert alice.get(_url("models", "team-a", "chat")).status_code == 200

        # models: alice calls hers; bob cannot call it (the same 404 as a model that does not
        # exist), whatever `user` the body names, and /v1/models lists only each one's own
        wait_until(lambda: _chat(alice, "team-a/chat").status_code == 200, timeout=30)
        arrived = upstream_a.requests["/v1/chat/completions"]
        refused = _chat(bob, "team-a/chat")
        assert refused.status_code == 404, refused.text
        assert refused.json()["error"]["code"] == "model_not_found"
        assert "team-a" not in refused.json()["error"]["message"].replace("'team-a/chat'", "")
        assert upstream_a.requests["/v1/chat/completions"] == arrived  # bob's call never left
        wait_until(lambda: _chat(bob, "team-b/chat").status_code == 200, timeout=30)
        assert upstream_a.bodies[-1]["user"] == "end-user-7"  # passed through, not a tenant
        models = {
            who: sorted(m["id"] for m in c.get("/v1/models").json()["data"])
            for who, c in (("alice", alice), ("bob", bob))
        }
        assert models == {"alice": ["team-a/chat"], "bob": ["team-b/chat"]}

        # agents: bob reaches none of alice's instances; alice does
        instances = "/agents/team-a/chat/instances"
        created = alice.post(instances, json={"id": "one", "input": {}})
        assert created.status_code == 201, created.text
        assert alice.get(f"{instances}/one").status_code == 200
        assert bob.get(instances).status_code == 403
        assert bob.get(f"{instances}/one").status_code == 403
        assert bob.get(f"{instances}/one/journal").status_code == 403
        assert bob.post(f"{instances}/one/messages", json={"payload": "hi"}).status_code == 403
        assert bob.post(instances, json={"id": "two"}).status_code == 403


def test_up_with_an_oidc_issuer_takes_the_tenant_from_the_jwts_groups(tmp_path: Path) -> None:
    # given up trusting an issuer whose keys are in a JWKS file (no token file at all)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.get_algorithm_by_name("RS256").to_jwk(key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig"}]}))
    issuer = "https://issuer.example.com"
    extra = [
        "--oidc-issuer-url", issuer,
        "--oidc-client-id", "modelplane",
        "--oidc-jwks-file", str(jwks),
        "--oidc-username-prefix", "oidc:",
    ]  # fmt: skip
    now = int(time.time())
    claims = {"iss": issuer, "aud": "modelplane", "sub": "carol", "iat": now, "exp": now + 600}
    token = jwt.encode(
        {**claims, "groups": ["modelplane:namespace:team-c"]},
        key,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    up = UpProcess(tmp_path / "home", extra=extra).start(timeout=60)
    try:
        with httpx.Client(
            base_url=up.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as carol:
            who = carol.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", json={})
            own = carol.get(_url("models", "team-c"))
            other = carol.get(_url("models", "team-a"))
        expired = jwt.encode({**claims, "exp": now - 3600, "iat": now - 4000}, key, "RS256")
        late = httpx.get(
            up.url + _url("models", "team-c"),
            headers={"Authorization": f"Bearer {expired}"},
            timeout=30,
        )
    finally:
        up.stop()

    assert who.status_code == 201, who.text
    assert who.json()["status"]["userInfo"]["username"] == "oidc:carol"
    assert own.status_code == 200, own.text
    assert other.status_code == 403
    assert late.status_code == 401 and "expired" in late.json()["message"]
