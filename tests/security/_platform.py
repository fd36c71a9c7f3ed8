"""The platform the security tests attack: the REST API with two tokens (an administrator and a
tenant) and the gateway mounted at /v1, over a real store, on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.routing import Mount
from tests.server.conftest import serving

from modelplane.api import ADMIN_GROUP, Principal
from modelplane.egress import EgressRules
from modelplane.gateway import Gateway
from modelplane.server import create_app
from modelplane.store import Store

GROUP = "modelplane.dev/v1alpha1"
ADMIN_TOKEN = "admin-token-1"
TENANT_NAMESPACES = {f"modelplane:namespace:{n}" for n in ("default", "team-a", "team-b")}
TENANT_TOKEN = "tenant-token-1"
#: an authenticated principal that belongs to no namespace
OUTSIDER_TOKEN = "outsider-token-1"
TOKENS = {
    OUTSIDER_TOKEN: Principal("carol", frozenset({"system:authenticated"})),
    ADMIN_TOKEN: Principal("ops", frozenset({ADMIN_GROUP, "system:authenticated"})),
    # a member of the namespaces the tests write in (default, team-a, team-b)
    TENANT_TOKEN: Principal(
        "alice", frozenset({"team-a", *TENANT_NAMESPACES, "system:authenticated"})
    ),
}


def url(plural: str, name: str = "", namespace: str = "default") -> str:
    return f"/apis/{GROUP}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


@dataclass
class Platform:
    url: str
    store: Store
    gateway: Gateway
    admin: httpx.Client
    tenant: httpx.Client


@contextmanager
def running_platform(store: Store, *, egress: EgressRules | None = None) -> Iterator[Platform]:
    """The API (token auth) with the gateway at /v1; ``egress`` defaults to loopback allowed
    (the fake upstreams of the tests listen on loopback)."""
    gateway = Gateway(store, egress=egress or EgressRules(allow_loopback=True), read_timeout=5.0)
    app = create_app(store, tokens=TOKENS, routes=[Mount("/v1", app=gateway.app)])
    try:
        with (
            serving(app, wait=False) as base,
            httpx.Client(base_url=base, headers=_bearer(ADMIN_TOKEN), timeout=10) as admin,
            httpx.Client(base_url=base, headers=_bearer(TENANT_TOKEN), timeout=10) as tenant,
        ):
            yield Platform(base, store, gateway, admin, tenant)
    finally:
        gateway.stop()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def use_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the store opener at a key file of this test's own (not the working folder's)."""
    path = tmp_path / "keys" / "encryption.key"
    monkeypatch.setenv("MODELPLANE_ENCRYPTION_KEY_FILE", str(path))
    return path


def secret(name: str, namespace: str = "default", **string_data: str) -> dict[str, object]:
    return {
        "apiVersion": GROUP,
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": string_data,
    }


def upstream_model(name: str, source: str, **version: object) -> dict[str, object]:
    return {
        "apiVersion": GROUP,
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"versions": [{"name": "v1", "format": "upstream", "source": source, **version}]},
    }


def endpoint(name: str, model: str) -> dict[str, object]:
    return {
        "apiVersion": GROUP,
        "kind": "Endpoint",
        "metadata": {"name": name},
        "spec": {"model": model},
    }


def chat(client: httpx.Client, model: str) -> httpx.Response:
    return client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )
