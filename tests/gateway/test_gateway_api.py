"""Gateway API HTTPRoutes, InferencePools and Endpoint header routes, end to end.

A real ``modelplane up`` on loopback runs simulated replicas of versions v1 and v2 of one Endpoint;
clients call ``/v1/chat/completions`` and read which version answered from the
``x-modelplane-version`` and ``x-modelplane-replica`` headers.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess

pytestmark = pytest.mark.slow

CLI = (sys.executable, "-m", "modelplane.cli")
OURS = "/apis/modelplane.dev/v1alpha1/namespaces/default"
ROUTES = "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes"

MANIFESTS = """
apiVersion: modelplane.dev/v1alpha1
kind: Model
metadata: {{name: m}}
spec:
  versions:
    - {{name: v1, source: x, format: safetensors, digest: "sha256:{a}"}}
    - {{name: v2, source: x, format: safetensors, digest: "sha256:{b}"}}
---
apiVersion: modelplane.dev/v1alpha1
kind: Endpoint
metadata:
  name: chat
  labels: {{app: chat}}
  annotations: {{modelplane.dev/simulated: "true"}}
spec:
  model: m
  traffic: [{{version: v1, weight: 100}}]
  routing:
    headerRoutes:
      - headers: [{{name: OpenAI-Project, value: proj_canary}}]
        version: v2
---
apiVersion: inference.networking.k8s.io/v1
kind: InferencePool
metadata: {{name: chat-v2-pool}}
spec:
  selector:
    matchLabels: {{app: chat, modelplane.dev/version: v2}}
  targetPorts: [{{number: 8000}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: llm}}
spec:
  parentRefs: [{{name: inference-gateway}}]
  rules:
    - matches:
        - headers: [{{type: RegularExpression, name: X-Tenant, value: "gold|platinum"}}]
      backendRefs:
        - {{group: inference.networking.k8s.io, kind: InferencePool, name: chat-v2-pool}}
    - backendRefs:
        - {{name: chat-v1, port: 8000, weight: 3}}
        - {{name: chat-v2, port: 8000, weight: 1}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: dangling}}
spec:
  rules:
    - backendRefs:
        - {{group: modelplane.dev, kind: Endpoint, name: nope}}
""".format(a="a" * 64, b="b" * 64)


def _cli(up: UpProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--server", up.url, *args], capture_output=True, text=True, timeout=60
    )


def _ready_versions(client: httpx.Client) -> set[str]:
    status = client.get(f"{OURS}/endpoints/chat").json().get("status") or {}
    return {r["version"] for r in status.get("replicas") or [] if r.get("ready")}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    home = tmp_path_factory.mktemp("gwapi")
    proc = UpProcess(home / "home").start()
    try:
        manifests = home / "routes.yaml"
        manifests.write_text(MANIFESTS)
        applied = _cli(proc, "apply", "-f", str(manifests))
        assert applied.returncode == 0, applied.stderr
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            # v2 has no share of the split, yet runs: a header route names it
            wait_until(
                lambda: _ready_versions(client) == {"v1", "v2"},
                timeout=90,
                what="ready replicas of v1 and v2",
            )
        yield proc
    finally:
        proc.stop()


def _ask(client: httpx.Client, model: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    return client.post("/v1/chat/completions", json=body, headers=headers or {})


def _versions(
    client: httpx.Client, model: str, n: int, headers: dict[str, str] | None = None
) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(n):
        r = _ask(client, model, headers)
        assert r.status_code == 200, r.text
        seen[r.headers["x-modelplane-version"]] += 1
    return seen


def test_openai_project_header_pins_the_endpoint_to_its_canary_version(up: UpProcess) -> None:
    with httpx.Client(base_url=up.url, timeout=30) as client:
        assert _versions(client, "chat", 10, {"OpenAI-Project": "proj_canary"}) == {"v2": 10}
        assert _versions(client, "chat", 10, {"OpenAI-Project": "proj_other"}) == {"v1": 10}
        assert _versions(client, "chat", 10) == {"v1": 10}


def test_httproute_weights_split_traffic_between_versions(up: UpProcess) -> None:
    with httpx.Client(base_url=up.url, timeout=30) as client:
        seen = _versions(client, "llm", 200)
    assert set(seen) == {"v1", "v2"}
    # weights 3:1 -> 150 of 200 expected; these bounds are over 5 standard deviations wide
    assert 110 <= seen["v1"] <= 185, seen


def test_models_lists_the_names_httproutes_serve(up: UpProcess) -> None:
    with httpx.Client(base_url=up.url, timeout=10) as client:
        listed = {m["id"]: m["modelplane"]["kind"] for m in client.get("/v1/models").json()["data"]}
    assert listed["llm"] == "HTTPRoute" and listed["chat"] == "Endpoint"


def test_httproute_header_match_reaches_the_pool_selected_by_labels(up: UpProcess) -> None:
    with httpx.Client(base_url=up.url, timeout=30) as client:
        for tenant in ("gold", "platinum"):
            r = _ask(client, "llm", {"X-Tenant": tenant})
            assert r.status_code == 200, r.text
            assert r.headers["x-modelplane-endpoint"] == "chat-v2-pool"
            published = client.get(f"{OURS}/endpoints/chat").json()["status"]["replicas"]
            v2 = {p["name"] for p in published if p["version"] == "v2"}
            assert r.headers["x-modelplane-replica"] in v2


def test_httproute_status_says_whether_its_backends_resolve(up: UpProcess) -> None:
    def condition(name: str, kind: str) -> dict[str, Any] | None:
        with httpx.Client(base_url=up.url, timeout=10) as client:
            status = client.get(f"{ROUTES}/{name}").json().get("status") or {}
        for parent in status.get("parents") or []:
            for c in parent.get("conditions") or []:
                if c["type"] == kind:
                    return dict(c)
        return None

    ok = wait_until(lambda: condition("llm", "ResolvedRefs"), timeout=30, what="llm status")
    assert (ok["status"], ok["reason"]) == ("True", "ResolvedRefs")
    bad = wait_until(lambda: condition("dangling", "ResolvedRefs"), timeout=30, what="status")
    assert (bad["status"], bad["reason"]) == ("False", "BackendNotFound")
    assert "no Endpoint 'nope'" in bad["message"]
    accepted = condition("dangling", "Accepted")
    assert accepted is not None and accepted["status"] == "True"
    pools = "/apis/inference.networking.k8s.io/v1/namespaces/default/inferencepools"

    def pool_parents() -> list[dict[str, Any]] | None:
        with httpx.Client(base_url=up.url, timeout=10) as client:
            status = client.get(f"{pools}/chat-v2-pool").json().get("status") or {}
        return status.get("parents") or None

    (parent,) = wait_until(pool_parents, timeout=30, what="the pool's status.parents")
    assert parent["parentRef"]["name"] == "inference-gateway"
    assert {c["type"]: c["status"] for c in parent["conditions"]} == {
        "Accepted": "True",
        "ResolvedRefs": "True",
    }
    with httpx.Client(base_url=up.url, timeout=10) as client:
        r = _ask(client, "dangling")
    assert r.status_code == 500 and "no Endpoint 'nope'" in r.json()["error"]["message"]


def test_bad_httproute_is_refused_with_field_paths_and_nothing_is_stored(
    up: UpProcess, tmp_path: Path
) -> None:
    route = yaml.safe_load(MANIFESTS.split("---")[3])
    route["metadata"]["name"] = "bad"
    route["spec"]["rules"][0]["matches"][0]["headers"][0]["value"] = "gold|(["
    route["spec"]["rules"][1]["backendRefs"][0]["weight"] = -1
    with httpx.Client(base_url=up.url, timeout=10) as client:
        r = client.post(ROUTES, json=route)
        assert r.status_code == 422, r.text
        fields = {c["field"] for c in r.json()["details"]["causes"]}
        assert "spec.rules[0].matches[0].headers[0].value" in fields
        assert "spec.rules[1].backendRefs[0].weight" in fields
        assert client.get(f"{ROUTES}/bad").status_code == 404
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(route))
    applied = _cli(up, "apply", "-f", str(path))
    assert applied.returncode != 0
    assert "spec.rules[1].backendRefs[0].weight" in applied.stderr
    assert "Traceback" not in applied.stderr


def test_cli_gets_describes_and_explains_the_gateway_api_kinds(up: UpProcess) -> None:
    listed = _cli(up, "get", "httproutes")
    assert listed.returncode == 0, listed.stderr
    assert "llm" in listed.stdout and "dangling" in listed.stdout
    described = _cli(up, "describe", "inferencepool", "chat-v2-pool")
    assert described.returncode == 0, described.stderr
    assert "modelplane.dev/version" in described.stdout
    explained = _cli(up, "explain", "httproute.spec.rules.backendRefs")
    assert explained.returncode == 0, explained.stderr
    assert "weight" in explained.stdout
