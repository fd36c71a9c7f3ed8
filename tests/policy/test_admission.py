"""Admission Policies (Cedar) on every API write, and whoami / can-i, over a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry
from tests.control._wait import wait_until
from tests.security._platform import (
    ADMIN_TOKEN,
    OUTSIDER_TOKEN,
    TENANT_TOKEN,
    TOKENS,
    use_key_file,
)
from tests.server.conftest import serving

from modelplane.cli import cli
from modelplane.server import create_app
from modelplane.store import Store, open_store

GROUP = "modelplane.dev/v1alpha1"
MAX_THREE = """
@id("max-replicas")
@reason("an Endpoint in team-a may have at most 3 replicas")
forbid(principal, action in [Action::"create", Action::"update", Action::"patch"], resource)
when { resource is Endpoint && resource.spec has replicas && resource.spec.replicas.max > 3 };
"""
KEEP_PROTECTED = """
@reason("protected objects are not deleted")
forbid(principal, action == Action::"delete", resource)
when { resource.labels has "protected" && resource.labels["protected"] == "true" };
"""


def _url(plural: str, name: str = "", namespace: str = "team-a") -> str:
    return f"/apis/{GROUP}/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")


def _policy(name: str, cedar: str, namespace: str = "team-a") -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Policy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scope": "admission", "cedar": cedar},
    }


def _endpoint(name: str, replicas: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Endpoint",
        "metadata": {"name": name, **({"labels": labels} if labels else {})},
        "spec": {"model": "llama", "replicas": {"min": 1, "max": replicas}},
    }


class Api:
    def __init__(self, base: str, registry: CollectorRegistry) -> None:
        self.admin = httpx.Client(base_url=base, headers=_bearer(ADMIN_TOKEN), timeout=10)
        self.tenant = httpx.Client(base_url=base, headers=_bearer(TENANT_TOKEN), timeout=10)
        self.outsider = httpx.Client(base_url=base, headers=_bearer(OUTSIDER_TOKEN), timeout=10)
        self.registry = registry


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    use_key_file(tmp_path, monkeypatch)
    registry = CollectorRegistry()
    store: Store = open_store(sqlite_url)
    app = create_app(store, tokens=TOKENS, registry=registry)
    try:
        with serving(app) as base:
            client = Api(base, registry)
            yield client
            client.admin.close()
            client.tenant.close()
            client.outsider.close()
    finally:
        store.close()


def test_an_endpoint_over_the_replica_limit_is_refused_naming_the_policy(api: Api) -> None:
    # given a Policy in team-a forbidding Endpoints with more than 3 replicas
    assert api.admin.post(_url("policies"), json=_policy("replicas", MAX_THREE)).status_code == 201

    # when a tenant creates one with 5, and one with 2
    refused = api.tenant.post(_url("endpoints"), json=_endpoint("big", 5))
    allowed = api.tenant.post(_url("endpoints"), json=_endpoint("small", 2))

    # then the first is a 403 naming the policy and its reason, the second is created
    assert refused.status_code == 403, refused.text
    status = refused.json()
    assert status["reason"] == "Forbidden"
    assert "team-a/replicas (max-replicas)" in status["message"]
    assert "at most 3 replicas" in status["message"]
    assert status["details"]["policies"] == ["team-a/replicas (max-replicas)"]
    assert allowed.status_code == 201, allowed.text
    # and a patch raising the small one over the limit is refused too
    patch = api.tenant.patch(
        _url("endpoints", "small"),
        json={"spec": {"replicas": {"max": 9}}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert patch.status_code == 403
    samples = {
        s.labels["result"]: s.value
        for m in api.registry.collect()
        for s in m.samples
        if s.name == "modelplane_policy_decisions_total"
    }
    assert samples["deny"] >= 2 and samples["allow"] >= 1


def test_a_namespaced_policy_does_not_apply_to_another_namespace(api: Api) -> None:
    api.admin.post(_url("policies"), json=_policy("replicas", MAX_THREE))

    other = api.tenant.post(_url("endpoints", namespace="team-b"), json=_endpoint("big", 5))

    assert other.status_code == 201, other.text


def test_a_cluster_wide_policy_applies_to_every_namespace(api: Api) -> None:
    wide = _policy("replicas", MAX_THREE, namespace="modelplane-system")
    assert (
        api.admin.post(_url("policies", namespace="modelplane-system"), json=wide).status_code
        == 201
    )

    refused = api.tenant.post(_url("endpoints", namespace="team-b"), json=_endpoint("big", 5))

    assert refused.status_code == 403
    assert "modelplane-system/replicas" in refused.json()["message"]


def test_a_policy_with_invalid_cedar_is_refused_naming_line_and_column(api: Api) -> None:
    broken = _policy(
        "broken",
        "permit(principal, action, resource);\nforbid(principal, action,\n  resource) when { resource.x > };",
    )

    response = api.admin.post(_url("policies"), json=broken)

    assert response.status_code == 422, response.text
    status = response.json()
    assert status["details"]["causes"][0]["field"] == "spec.cedar"
    assert "line 3, column 34" in status["message"] and "unexpected token" in status["message"]


def test_a_forbid_on_delete_for_a_label_blocks_deletes(api: Api) -> None:
    api.admin.post(_url("policies"), json=_policy("keep", KEEP_PROTECTED))
    api.tenant.post(_url("endpoints"), json=_endpoint("kept", 1, {"protected": "true"}))
    api.tenant.post(_url("endpoints"), json=_endpoint("loose", 1))

    kept = api.tenant.delete(_url("endpoints", "kept"))
    loose = api.tenant.delete(_url("endpoints", "loose"))

    assert kept.status_code == 403 and "team-a/keep" in kept.json()["message"]
    assert loose.status_code == 200
    assert api.admin.get(_url("endpoints", "kept")).status_code == 200


def test_a_policy_change_takes_effect_without_a_restart(api: Api) -> None:
    assert api.tenant.post(_url("endpoints"), json=_endpoint("first", 5)).status_code == 201

    api.admin.post(_url("policies"), json=_policy("replicas", MAX_THREE))
    wait_until(
        lambda: (
            api.tenant.post(
                _url("endpoints"), json=_endpoint("second", 5), params={"dryRun": "All"}
            ).status_code
            == 403
        ),
        what="the new Policy to refuse writes",
    )
    api.admin.delete(_url("policies", "replicas"))

    wait_until(
        lambda: api.tenant.post(_url("endpoints"), json=_endpoint("third", 5)).status_code == 201,
        what="the deleted Policy to stop refusing writes",
    )


def test_a_tenant_may_not_write_policies(api: Api) -> None:
    response = api.tenant.post(_url("policies"), json=_policy("mine", KEEP_PROTECTED))

    assert response.status_code == 403


def test_a_runtime_policy_is_enforced_at_run_time_not_on_writes(api: Api) -> None:
    # given a runtime Policy that would forbid deleting protected objects
    runtime = {
        **_policy("later", KEEP_PROTECTED),
        "spec": {"scope": "runtime", "cedar": KEEP_PROTECTED},
    }
    later = api.admin.post(_url("policies"), json=runtime)
    assert later.status_code == 201, later.text
    # then it no longer warns that it is not enforced (agents' tool calls pass it)
    assert "not enforced" not in later.headers.get("warning", "")
    # and it does not take part in admission: a protected object is still deleted
    created = api.tenant.post(_url("endpoints"), json=_endpoint("keep", 1, {"protected": "true"}))
    assert created.status_code == 201, created.text
    assert api.tenant.delete(_url("endpoints", "keep")).status_code == 200


def test_whoami_names_the_tenant_and_the_admin(api: Api) -> None:
    path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}

    tenant = api.tenant.post(path, json=body).json()["status"]["userInfo"]
    admin = api.admin.post(path, json=body).json()["status"]["userInfo"]

    assert tenant == {
        "username": "alice",
        "groups": [
            "modelplane:namespace:default",
            "modelplane:namespace:team-a",
            "modelplane:namespace:team-b",
            "system:authenticated",
            "team-a",
        ],
    }
    assert admin["username"] == "ops" and "system:masters" in admin["groups"]


def _can_i(client: httpx.Client, **attributes: str) -> dict[str, Any]:
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attributes},
    }
    response = client.post("/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=body)
    assert response.status_code == 201, response.text
    status: dict[str, Any] = response.json()["status"]
    return status


def test_can_i_answers_by_the_builtin_rules_and_the_policies(api: Api) -> None:
    api.admin.post(
        _url("policies"),
        json=_policy(
            "no-deletes",
            'forbid(principal in Group::"team-a", action == Action::"delete", resource is Endpoint);',
        ),
    )

    assert _can_i(api.tenant, verb="create", resource="endpoints", namespace="team-a")["allowed"]
    assert not _can_i(api.tenant, verb="create", resource="policies", namespace="team-a")["allowed"]
    denied = _can_i(api.tenant, verb="delete", resource="endpoints", namespace="team-a", name="x")
    assert not denied["allowed"] and "team-a/no-deletes" in denied["reason"]
    assert _can_i(api.tenant, verb="delete", resource="endpoints", namespace="team-b")["allowed"]
    assert _can_i(api.admin, verb="create", resource="policies", namespace="team-a")["allowed"]
    assert _can_i(api.tenant, verb="list", resource="secrets", namespace="team-a")["allowed"]


def test_the_cli_asks_the_same_questions_as_kubectl_auth(api: Api) -> None:
    # given a forbid on deleting Endpoints in team-a
    api.admin.post(
        _url("policies"),
        json=_policy(
            "no-deletes",
            'forbid(principal in Group::"team-a", action == Action::"delete", resource is Endpoint);',
        ),
    )
    base = str(api.tenant.base_url).rstrip("/")

    def run(token: str, *args: str) -> Any:
        return CliRunner().invoke(cli, ["--server", base, "--token", token, "-n", "team-a", *args])

    # when the tenant asks who it is and what it may do
    whoami = run(TENANT_TOKEN, "auth", "whoami")
    delete = run(TENANT_TOKEN, "auth", "can-i", "delete", "endpoints", "chat")
    create = run(TENANT_TOKEN, "auth", "can-i", "create", "endpoints")
    tool = run(TENANT_TOKEN, "auth", "can-i", "create", "toolservers")
    as_admin = run(ADMIN_TOKEN, "auth", "can-i", "create", "toolservers", "-q")
    # then the answers are the server's, with kubectl's exit codes
    assert whoami.exit_code == 0 and "alice" in whoami.output and "team-a" in whoami.output
    assert delete.exit_code == 1 and delete.output.startswith("no - ")
    assert "team-a/no-deletes" in delete.output
    assert create.exit_code == 0 and create.output.strip() == "yes"
    assert tool.exit_code == 1 and "system:masters" in tool.output
    assert as_admin.exit_code == 0 and as_admin.output == ""


def _model(name: str, signature: str | None) -> dict[str, Any]:
    version = {"name": "v1", "source": "m.safetensors", "format": "safetensors"}
    version["digest"] = "sha256:" + "a" * 64
    if signature:
        version["signature"] = signature
    return {
        "apiVersion": GROUP,
        "kind": "Model",
        "metadata": {"name": name},
        "spec": {"versions": [version]},
    }


def test_a_namespace_requiring_signed_models_refuses_an_unsigned_version(api: Api) -> None:
    # given the documented Policy requiring signed Model versions in team-a
    example = Path(__file__).parents[2] / "examples/policies/require-signed-models.yaml"
    import yaml

    policy = yaml.safe_load(example.read_text())
    assert api.admin.post(_url("policies"), json=policy).status_code == 201

    # when a tenant creates an unsigned Model version, and a signed one
    refused = api.tenant.post(_url("models"), json=_model("plain", None))
    allowed = api.tenant.post(_url("models"), json=_model("signed", "sha256:" + "b" * 64))

    # then the unsigned one is refused naming the policy and what to do, the signed one admitted
    assert refused.status_code == 403, refused.text
    assert "require-signed-models" in refused.json()["message"]
    assert "modelplane models sign" in refused.json()["message"]
    assert allowed.status_code == 201, allowed.text
    # and another namespace is not bound by it
    other = api.admin.post(_url("models", namespace="team-b"), json=_model("plain", None))
    assert other.status_code == 201, other.text
