"""The REST API's request metrics, under kube-apiserver's names and verbs, and ``/metrics`` of up
and server rendering the process's series (controllers, work queues, requests, policy)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.applications import Starlette
from starlette.testclient import TestClient
from tests.control._wait import wait_until
from tests.server.conftest import serving

from modelplane.cli._probes import metrics_route
from modelplane.server import create_app
from modelplane.server._metrics import request_labels
from modelplane.store import Store

MODELS = "/apis/modelplane.dev/v1alpha1/namespaces/default/models"


@pytest.mark.parametrize(
    ("method", "path", "query", "labels"),
    [
        ("GET", MODELS, "", ("list", "modelplane.dev", "models", "")),
        ("GET", MODELS, "watch=true", ("watch", "modelplane.dev", "models", "")),
        ("POST", MODELS, "", ("create", "modelplane.dev", "models", "")),
        ("GET", f"{MODELS}/m", "", ("get", "modelplane.dev", "models", "")),
        ("PUT", f"{MODELS}/m/status", "", ("update", "modelplane.dev", "models", "status")),
        ("PATCH", f"{MODELS}/m", "", ("patch", "modelplane.dev", "models", "")),
        ("DELETE", f"{MODELS}/m", "", ("delete", "modelplane.dev", "models", "")),
        ("DELETE", MODELS, "", ("deletecollection", "modelplane.dev", "models", "")),
        ("GET", "/apis/resource.k8s.io/v1/resourceslices", "", ("list", "resource.k8s.io", "resourceslices", "")),
        ("GET", "/apis/modelplane.dev/v1alpha1/namespaces/default/zzz-made-up", "", ("list", "modelplane.dev", "unknown", "")),
        ("GET", f"{MODELS}/m/made-up", "", ("get", "modelplane.dev", "models", "unknown")),
        ("GET", "/openapi/v2", "", ("get", "", "", "")),
        ("POST", "/v1/chat/completions", "", ("post", "", "", "")),
    ],
)  # fmt: skip
def test_each_request_gets_kube_apiservers_verb_and_a_bounded_resource_label(
    method: str, path: str, query: str, labels: tuple[str, str, str, str]
) -> None:
    assert request_labels(method, path, query) == labels


def _count(verb: str, code: str) -> float:
    labels = {"verb": verb, "group": "modelplane.dev", "resource": "models", "subresource": ""}
    return REGISTRY.get_sample_value("apiserver_request_total", {**labels, "code": code}) or 0.0


def test_requests_are_counted_with_their_code_and_timed(store: Store) -> None:
    before = {k: _count(*k) for k in [("create", "201"), ("get", "404"), ("list", "200")]}
    model = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "m", "namespace": "default"},
        "spec": {"versions": [{"name": "v1", "format": "upstream", "source": "http://x/v1"}]},
    }
    with serving(create_app(store), wait=False) as base:
        assert httpx.post(base + MODELS, json=model, timeout=10).status_code == 201
        assert httpx.get(f"{base}{MODELS}/absent", timeout=10).status_code == 404
        assert httpx.get(base + MODELS, timeout=10).status_code == 200
    for key, value in before.items():
        assert _count(*key) == value + 1, key
    timed = REGISTRY.get_sample_value(
        "apiserver_request_duration_seconds_count",
        {"verb": "list", "group": "modelplane.dev", "resource": "models", "subresource": ""},
    )
    assert timed is not None and timed >= 1


def test_an_open_watch_is_a_long_running_request_until_it_ends(store: Store) -> None:
    labels = {"verb": "watch", "group": "modelplane.dev", "resource": "models"}

    def open_watches() -> float:
        return REGISTRY.get_sample_value("apiserver_longrunning_requests", labels) or 0.0

    before = open_watches()
    seen: list[float] = []
    with serving(create_app(store), wait=False) as base:
        with httpx.stream("GET", f"{base}{MODELS}?watch=true&timeoutSeconds=1", timeout=10) as r:
            assert r.status_code == 200
            seen.append(open_watches())
            for _ in r.iter_bytes():
                pass
        assert seen == [before + 1]
        # (the server ends its side just after the client read the end)
        wait_until(lambda: open_watches() == before, what="the watch no longer counted")


def test_metrics_of_up_and_server_render_the_process_series() -> None:
    app = Starlette(routes=[metrics_route(lambda: {"modelplane_ready": 1.0})])
    text = TestClient(app).get("/metrics").text
    assert "modelplane_ready 1" in text
    for family in (
        "controller_runtime_reconcile_total",
        "workqueue_depth",
        "apiserver_request_total",
        "modelplane_policy_decisions_total",
    ):
        assert f"# TYPE {family.removesuffix('_total')}" in text, family
