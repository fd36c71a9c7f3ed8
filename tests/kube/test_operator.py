"""The operator against a fake Kubernetes API server (there is no kube-apiserver on these machines).

The custom resources are written with the official ``kubernetes`` client, as ``kubectl`` would;
the test plays the kubelet (it sets a Deployment's ready replicas).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes
import pytest
import yaml
from tests.control._wait import wait_until

from modelplane.kube import (
    CLAIM_TEMPLATES,
    DEPLOYMENTS,
    ENDPOINTS,
    SERVICES,
    KubeClient,
    KubeConfig,
    Operator,
    review,
)
from modelplane.testing.kube import FakeKubeAPI

ROOT = Path(__file__).resolve().parents[2]
MODEL, ENDPOINT = yaml.safe_load_all((ROOT / "examples/kubernetes/llama-gpu.yaml").read_text())
NS = "team-a"
GROUP, VERSION = "modelplane.dev", "v1alpha1"


@pytest.fixture
def kube() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as api:
        yield api


@pytest.fixture
def kubeconfig(kube: FakeKubeAPI, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "fake",
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "op"}}],
                "clusters": [{"name": "fake", "cluster": {"server": kube.url}}],
                "users": [{"name": "op", "user": {"token": "operator-token"}}],
            }
        )
    )
    return path


@pytest.fixture
def objects(kube: FakeKubeAPI) -> kubernetes.client.CustomObjectsApi:
    """The official client's custom-objects API, pointed at the fake."""
    config = kubernetes.client.Configuration(host=kube.url)
    return kubernetes.client.CustomObjectsApi(kubernetes.client.ApiClient(config))


@pytest.fixture
def operator(kubeconfig: Path) -> Iterator[Operator]:
    client = KubeClient(KubeConfig.from_kubeconfig(kubeconfig))
    op = Operator(client, "modelplane:test", resync=5)
    stop = threading.Event()
    thread = threading.Thread(target=op.run, args=(stop,), daemon=True)
    thread.start()
    assert op.synced.wait(20)
    yield op
    stop.set()
    thread.join(10)
    client.close()


def _create(objects: kubernetes.client.CustomObjectsApi, obj: dict[str, Any]) -> None:
    plural = obj["kind"].lower() + "s"
    objects.create_namespaced_custom_object(GROUP, VERSION, NS, plural, copy.deepcopy(obj))


def _ready(kube: FakeKubeAPI, name: str = "llama") -> dict[str, Any] | None:
    status = (kube.get(ENDPOINTS, NS, name) or {}).get("status") or {}
    for cond in status.get("conditions") or []:
        if cond["type"] == "Ready":
            return dict(cond)
    return None


def test_an_endpoint_gets_owned_deployments_services_and_claim_template(
    kube: FakeKubeAPI, objects: kubernetes.client.CustomObjectsApi, operator: Operator
) -> None:
    _create(objects, MODEL)
    _create(objects, ENDPOINT)

    starting = wait_until(lambda: _ready(kube), timeout=20)  # written after every object
    assert (starting["status"], starting["reason"]) == ("False", "ReplicasStarting")
    deployment = kube.get(DEPLOYMENTS, NS, "llama-v2")
    assert deployment is not None
    uid = kube.get(ENDPOINTS, NS, "llama")["metadata"]["uid"]  # type: ignore[index]
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == uid
    assert deployment["spec"]["replicas"] == 2
    assert kube.get(DEPLOYMENTS, NS, "llama-v1") is not None
    assert {s["metadata"]["name"] for s in kube.list(SERVICES, NS)} == {"llama-v1", "llama-v2"}
    template = kube.get(CLAIM_TEMPLATES, NS, "llama-devices")
    assert template is not None
    assert template["spec"]["spec"]["devices"] == ENDPOINT["spec"]["devices"]


def test_ready_deployments_make_the_endpoint_ready_with_service_addresses(
    kube: FakeKubeAPI, objects: kubernetes.client.CustomObjectsApi, operator: Operator
) -> None:
    _create(objects, MODEL)
    _create(objects, ENDPOINT)
    for name in ("llama-v1", "llama-v2"):
        wait_until(lambda n=name: kube.get(DEPLOYMENTS, NS, n), timeout=20)  # type: ignore[misc]
        kube.set_status(DEPLOYMENTS, NS, name, {"readyReplicas": 2})

    ready = wait_until(lambda: (c := _ready(kube)) and c["status"] == "True" and c, timeout=20)
    assert ready["reason"] == "ReplicasReady"
    status = kube.get(ENDPOINTS, NS, "llama")["status"]  # type: ignore[index]
    assert status["readyReplicas"] == 4
    assert [r["url"] for r in status["replicas"]] == [
        "http://llama-v1.team-a.svc:8000/v1",
        "http://llama-v2.team-a.svc:8000/v1",
    ]


def test_a_version_dropped_from_the_split_loses_its_deployment_and_service(
    kube: FakeKubeAPI, objects: kubernetes.client.CustomObjectsApi, operator: Operator
) -> None:
    _create(objects, MODEL)
    _create(objects, ENDPOINT)
    wait_until(lambda: kube.get(DEPLOYMENTS, NS, "llama-v1"), timeout=20)

    patch = {"spec": {"traffic": [{"version": "v2", "weight": 100}]}}
    objects.patch_namespaced_custom_object(GROUP, VERSION, NS, "endpoints", "llama", patch)

    def versions() -> list[str]:
        status = kube.get(ENDPOINTS, NS, "llama")["status"] or {}  # type: ignore[index]
        return [r["version"] for r in status.get("replicas", [])]

    wait_until(lambda: versions() == ["v2"], timeout=20, what="status of v2 alone")  # after pruning
    assert kube.get(DEPLOYMENTS, NS, "llama-v1") is None
    assert kube.get(SERVICES, NS, "llama-v1") is None
    assert kube.get(DEPLOYMENTS, NS, "llama-v2") is not None


def test_an_invalid_endpoint_or_a_missing_model_is_said_in_its_status_and_nothing_is_made(
    kube: FakeKubeAPI, objects: kubernetes.client.CustomObjectsApi, operator: Operator
) -> None:
    bad = copy.deepcopy(ENDPOINT)
    bad["metadata"]["name"] = "bad"
    bad["spec"]["traffic"][0]["weight"] = 50  # 50 + 10 is not 100
    _create(objects, bad)
    orphan = copy.deepcopy(ENDPOINT)
    orphan["metadata"]["name"] = "orphan"
    orphan["spec"]["model"] = "missing"
    _create(objects, orphan)

    invalid = wait_until(lambda: _ready(kube, "bad"), timeout=20)
    assert (invalid["status"], invalid["reason"]) == ("False", "Invalid")
    assert "spec.traffic" in invalid["message"]
    missing = wait_until(lambda: _ready(kube, "orphan"), timeout=20)
    assert (missing["status"], missing["reason"]) == ("False", "ModelNotFound")
    assert "'missing'" in missing["message"]
    assert kube.list(DEPLOYMENTS, NS) == []


def _admission(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "7f0b", "operation": "CREATE", "namespace": NS, "object": obj},
    }


def test_the_webhook_refuses_what_our_api_refuses_with_field_paths() -> None:
    bad = copy.deepcopy(ENDPOINT)
    bad["spec"]["traffic"][0]["weight"] = 50

    refused = review(_admission(bad))["response"]
    allowed = review(_admission(ENDPOINT))["response"]

    assert refused["uid"] == "7f0b" and refused["allowed"] is False
    assert refused["status"]["code"] == 422
    assert any(
        c["field"].startswith("spec.traffic") for c in refused["status"]["details"]["causes"]
    )
    assert allowed == {"uid": "7f0b", "allowed": True}
    assert review({"kind": "AdmissionReview"})["response"]["allowed"] is False


def test_modelplane_operator_reconciles_and_serves_its_webhook(
    kube: FakeKubeAPI, objects: kubernetes.client.CustomObjectsApi, kubeconfig: Path, tmp_path: Path
) -> None:
    _create(objects, MODEL)
    _create(objects, ENDPOINT)
    port_log = tmp_path / "operator.log"
    with port_log.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "modelplane.cli", "operator", "--kubeconfig", str(kubeconfig),
             "--port", "0", "--log-level", "info"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MODELPLANE_DEBUG": ""},
        )  # fmt: skip
    try:

        def url() -> str | None:
            assert proc.poll() is None, port_log.read_text()
            for line in port_log.read_text().splitlines():
                if "serving http://" in line:
                    return line.rsplit("serving ", 1)[1].strip()
            return None

        base = wait_until(url, timeout=60, what="the operator's address")
        wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, timeout=30)
        wait_until(lambda: kube.get(DEPLOYMENTS, NS, "llama-v1"), timeout=30)
        bad = copy.deepcopy(ENDPOINT)
        bad["spec"]["replicas"]["min"] = 9  # above max 4
        answer = httpx.post(f"{base}/validate", json=_admission(bad)).json()
        assert answer["response"]["allowed"] is False
        assert "min" in answer["response"]["status"]["message"]
        assert httpx.post(f"{base}/validate", content=b"[1]").status_code == 400
    finally:
        proc.terminate()
        proc.wait(20)
    assert "Traceback" not in port_log.read_text()
