"""Prometheus HTTP service discovery: the target groups Modelplane serves, and a real Prometheus
(Debian's ``prometheus`` package) that finds and scrapes a running ``modelplane up`` through it."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.cli._platform import UpServer, wait_for
from tests.drivers.test_drivers import FakeNvml
from tests.e2e._proc import free_port

from modelplane.api import ADMIN_GROUP, AUTHENTICATED_GROUP, METRICS_URL_ANNOTATION, Principal
from modelplane.api.errors import NotFound
from modelplane.drivers import local_publication, publish
from modelplane.policy import Tenancy
from modelplane.sim import generate_cluster
from modelplane.sre import TARGETS_PATH, metrics_targets
from modelplane.store import Store

PROMETHEUS = shutil.which("prometheus")


def _endpoint(store: Store, namespace: str, name: str, url: str) -> None:
    created = store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Endpoint",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"model": "m"},
        }
    )
    replica = {"name": f"{name}-v1-0", "version": "v1", "node": "n1", "url": url, "ready": True}
    store.update_status({**created, "status": {"replicas": [replica]}})


def _groups_of(store: Store, principal: Principal) -> list[dict[str, Any]]:
    tenancy = Tenancy()
    return metrics_targets(
        store,
        "https://10.0.0.1:8470",
        sees=lambda kind, ns: tenancy.decide(principal, "list", kind, ns).allowed,
    )


def test_targets_list_replicas_nodes_and_the_server_each_caller_may_read(store: Store) -> None:
    # given replicas in two namespaces and a node agent that wrote its metrics URL
    _endpoint(store, "team-a", "chat", "http://127.0.0.1:9001/v1")
    _endpoint(store, "team-b", "code", "http://127.0.0.1:9002/v1")
    store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Node",
            "metadata": {
                "name": "n1",
                "annotations": {METRICS_URL_ANNOTATION: "http://10.0.0.2:8471"},
            },
        }
    )
    # when an administrator asks
    admin = Principal("prometheus", frozenset({ADMIN_GROUP, AUTHENTICATED_GROUP}))
    groups = _groups_of(store, admin)
    # then every replica, the node and the server are targets, with how to scrape them
    by_component = {(g["labels"]["modelplane_component"], g["targets"][0]): g for g in groups}
    assert set(by_component) == {
        ("server", "10.0.0.1:8470"),
        ("node", "10.0.0.2:8471"),
        ("replica", "127.0.0.1:9001"),
        ("replica", "127.0.0.1:9002"),
    }
    chat = by_component[("replica", "127.0.0.1:9001")]["labels"]
    assert chat == {
        "__scheme__": "http",
        "__metrics_path__": "/metrics",
        "modelplane_component": "replica",
        "namespace": "team-a",
        "endpoint": "chat",
        "version": "v1",
        "replica": "chat-v1-0",
        "node": "n1",
    }
    assert by_component[("server", "10.0.0.1:8470")]["labels"]["__scheme__"] == "https"
    # and a member of team-a sees team-a's replicas, not another tenant's; the server and the
    # node as any authenticated user reads Nodes through the API
    member = Principal("alice", frozenset({"modelplane:namespace:team-a", AUTHENTICATED_GROUP}))
    mine = _groups_of(store, member)
    replicas = [g for g in mine if g["labels"]["modelplane_component"] == "replica"]
    assert [(g["labels"]["namespace"], g["targets"]) for g in replicas] == [
        ("team-a", ["127.0.0.1:9001"])
    ]
    assert len(mine) == 3


# -- a real Prometheus ------------------------------------------------------------------------

_WORLD = """
apiVersion: modelplane.dev/v1alpha1
kind: Model
metadata: {name: chat-model}
spec:
  versions:
  - {name: v1, source: x, format: safetensors, digest: "sha256:%s"}
---
apiVersion: modelplane.dev/v1alpha1
kind: Endpoint
metadata:
  name: chat
  annotations: {modelplane.dev/simulated: "true", modelplane.dev/simulated-ttft: "5ms"}
spec:
  model: chat-model
""" % ("a" * 64)


@pytest.fixture
def prometheus_bin() -> str:
    if PROMETHEUS is None:
        pytest.skip("the prometheus binary is not installed (Debian: apt-get install prometheus)")
    return PROMETHEUS


@pytest.fixture
def up_with_inventory(tmp_path: Path) -> Iterator[UpServer]:
    (tmp_path / "tokens").write_text(f'prom-secret,prometheus,p1,"{ADMIN_GROUP}"\n')
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(yaml.safe_dump_all(generate_cluster(1, gpus_per_node=2, mig=False)))
    world = tmp_path / "world.yaml"
    world.write_text(_WORLD)
    up = UpServer(
        tmp_path / "home",
        "--token-file",
        str(tmp_path / "tokens"),
        "--inventory",
        str(cluster),
        "-f",
        str(world),
    ).start()
    try:
        yield up.wait_ready(60)
    finally:
        up.stop()


def _prometheus_config(up: UpServer, token_file: Path) -> dict[str, Any]:
    auth = {"type": "Bearer", "credentials_file": str(token_file)}
    return {
        "global": {"scrape_interval": "2s", "scrape_timeout": "2s"},
        "scrape_configs": [
            {
                "job_name": "modelplane",
                "authorization": auth,
                "http_sd_configs": [
                    {
                        "url": f"{up.url}{TARGETS_PATH}",
                        "refresh_interval": "1s",
                        "authorization": auth,
                    }
                ],
            }
        ],
    }


@pytest.mark.slow
def test_a_real_prometheus_discovers_and_scrapes_modelplane(
    prometheus_bin: str, up_with_inventory: UpServer, tmp_path: Path
) -> None:
    up = up_with_inventory
    # the discovery answers no one without a token, as every route of the server
    assert httpx.get(f"{up.url}{TARGETS_PATH}", timeout=10).status_code == 401
    # given a running modelplane up (an inventory of two simulated GPUs, a simulated replica)
    # and Prometheus configured with nothing but its HTTP service discovery and a token
    token = tmp_path / "prom-token"
    token.write_text("prom-secret")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(_prometheus_config(up, token)))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            prometheus_bin,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        # when Prometheus has refreshed its targets
        def healthy() -> dict[str, str] | None:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                active = httpx.get(f"{api}/targets", timeout=5).json()["data"]["activeTargets"]
            except (httpx.TransportError, ValueError, KeyError):
                return None
            health = {t["labels"]["modelplane_component"]: t["health"] for t in active}
            return health if health == {"server": "up", "replica": "up"} else None

        wait_for("Prometheus to scrape the server and the replica", healthy, timeout=120)

        # then a query returns Modelplane's accelerator metrics, one series per simulated GPU
        def gpus() -> list[dict[str, Any]] | None:
            body = httpx.get(f"{api}/query", params={"query": "DCGM_FI_DEV_GPU_UTIL"}, timeout=5)
            result: list[dict[str, Any]] = body.json()["data"]["result"]
            return result if len(result) == 2 else None

        series = wait_for("DCGM_FI_DEV_GPU_UTIL in Prometheus", gpus, timeout=60)
        assert {s["metric"]["gpu"] for s in series} == {"0", "1"}
        assert {s["metric"]["modelplane_component"] for s in series} == {"server"}

        # and the replica's own metrics arrive labelled with its Endpoint
        def replica_up() -> list[dict[str, Any]] | None:
            query = 'up{modelplane_component="replica",endpoint="chat",namespace="default"}'
            body = httpx.get(f"{api}/query", params={"query": query}, timeout=5)
            result: list[dict[str, Any]] = body.json()["data"]["result"]
            return result if result and result[0]["value"][1] == "1" else None

        wait_for("the replica's up series", replica_up, timeout=60)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def test_a_node_agent_that_publishes_its_metrics_url_becomes_a_target(store: Store) -> None:
    # given a node agent that listens for probes and publishes its (GPU-less) devices
    publish(
        store, local_publication("worker-7", FakeNvml(gpus=0), metrics_url="http://10.1.2.3:8471")
    )
    # then the discovery lists its /metrics
    admin = Principal("prometheus", frozenset({ADMIN_GROUP, AUTHENTICATED_GROUP}))
    nodes = [g for g in _groups_of(store, admin) if g["labels"]["modelplane_component"] == "node"]
    assert nodes == [
        {
            "targets": ["10.1.2.3:8471"],
            "labels": {
                "__scheme__": "http",
                "__metrics_path__": "/metrics",
                "modelplane_component": "node",
                "node": "worker-7",
            },
        }
    ]


def test_modelplane_node_writes_its_probe_address_on_its_node_once_it_listens(
    sqlite_url: str, tmp_path: Path
) -> None:
    from modelplane.cli._server import _Node
    from modelplane.store import open_store

    store = open_store(sqlite_url)
    node = _Node(store, "worker-9", tmp_path / "home", [], 15.0)
    try:
        # when its probe server reports where it listens
        node.on_started("http://127.0.0.1:18471")

        # then the Node carries the address, and the discovery lists it
        def annotated() -> str | None:
            try:
                meta = store.get("Node", "", "worker-9")["metadata"]
            except NotFound:
                return None
            return (meta.get("annotations") or {}).get(METRICS_URL_ANNOTATION)

        assert wait_for("the Node's metrics URL", annotated) == "http://127.0.0.1:18471"
        targets = metrics_targets(store, "http://127.0.0.1:8470")
        assert ["127.0.0.1:18471"] in [g["targets"] for g in targets]
    finally:
        node.stop()
        store.close()
