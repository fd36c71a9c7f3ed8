"""``modelplane sim cluster|workload|schedule`` and the scheduler inside a real ``modelplane up``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess

from modelplane.cli import cli


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_sim_cluster_writes_applicable_nodes_slices_and_classes(tmp_path: Path) -> None:
    result = _run("sim", "cluster", "--nodes", "3", "--seed", "1")
    assert result.exit_code == 0, result.output
    objs = list(yaml.safe_load_all(result.output))
    kinds = [o["kind"] for o in objs]
    assert kinds.count("Node") == 3 and kinds.count("ResourceSlice") == 3
    from modelplane.api import validate

    for o in objs:
        validate(o)  # every object is accepted by the API as written
    as_json = json.loads(_run("sim", "cluster", "--nodes", "2", "-o", "json").output)
    assert as_json["kind"] == "List" and len(as_json["items"]) == len(objs) - 2


def test_sim_schedule_prints_one_object_with_devices_named_as_in_the_slices(
    tmp_path: Path,
) -> None:
    cluster = tmp_path / "cluster.yaml"
    workload = tmp_path / "workload.yaml"
    cluster.write_text(_run("sim", "cluster", "--nodes", "4", "--mig").output)
    workload.write_text(_run("sim", "workload", "--claims", "40", "--infeasible", "1").output)
    result = CliRunner().invoke(
        cli,
        [
            "sim",
            "schedule",
            "--cluster",
            str(cluster),
            "--workload",
            str(workload),
            "--scorer",
            "first-fit",
            "-o",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(out) == {"allocations", "unschedulable", "metrics"}
    assert out["metrics"]["policy"] == "first-fit"
    published = {
        (s["spec"]["driver"], s["spec"]["pool"]["name"], d["name"])
        for s in yaml.safe_load_all(cluster.read_text())
        if s["kind"] == "ResourceSlice"
        for d in s["spec"]["devices"]
    }
    assert out["allocations"]
    for a in out["allocations"]:
        for r in a["results"]:
            assert (r["driver"], r["pool"], r["device"]) in published
    assert any(u["reason"].startswith("0/4 nodes are available") for u in out["unschedulable"])


def test_sim_cluster_with_nics_places_gpus_and_nics_on_one_pcie_root(tmp_path: Path) -> None:
    # given a generated cluster with NICs and claims asking for GPUs with NICs on their root
    from modelplane.api import validate
    from modelplane.drivers import load_inventory
    from modelplane.sim import NIC_DRIVER, nic_claim

    cluster = tmp_path / "cluster.yaml"
    cluster.write_text(_run("sim", "cluster", "--nodes", "3", "--nics", "--seed", "1").output)
    objs = list(yaml.safe_load_all(cluster.read_text()))
    for o in objs:
        validate(o)  # the NIC class and slices are accepted by the API as written
    assert len(load_inventory([cluster])) == len(objs)  # and by the file driver
    nic_slices = [
        o for o in objs if o["kind"] == "ResourceSlice" and o["spec"]["driver"] == NIC_DRIVER
    ]
    assert len(nic_slices) == 3  # one per node
    workload = tmp_path / "workload.yaml"
    claims = [nic_claim(f"c{i}", g, t=float(i), d=1e6) for i, g in enumerate((2, 4, 8, 4))]
    workload.write_text("---\n".join(yaml.safe_dump(c) for c in claims))
    # when the scheduler replays them
    result = CliRunner().invoke(
        cli, ["sim", "schedule", "--cluster", str(cluster), "--workload", str(workload)]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # then every claim got NICs on the PCIe root of its GPUs
    roots = {
        (s["spec"]["driver"], s["spec"]["pool"]["name"], d["name"]): d["attributes"][
            "resource.kubernetes.io/pcieRoot"
        ]["string"]
        for s in objs
        if s["kind"] == "ResourceSlice"
        for d in s["spec"]["devices"]
    }
    assert len(out["allocations"]) == len(claims), out["unschedulable"]
    for a in out["allocations"]:
        by_request: dict[str, set[str]] = {}
        for r in a["results"]:
            root = roots[(r["driver"], r["pool"], r["device"])]
            by_request.setdefault(r["request"][-1], set()).add(root)  # "gpu-a" and "nic-a"
        assert any(r["driver"] == NIC_DRIVER for r in a["results"])
        assert all(len(v) == 1 for v in by_request.values()), a


def test_sim_schedule_bad_file_says_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Node\nmetadata: {name: [unclosed\n")
    result = CliRunner().invoke(
        cli, ["sim", "schedule", "--cluster", str(bad), "--workload", str(bad)]
    )
    assert result.exit_code == 1
    assert f"{bad}:4:1: malformed YAML" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_up_allocates_a_claim_applied_through_the_api_on_the_local_cpu_slice(
    tmp_path: Path,
) -> None:
    # given a real `modelplane up`, which publishes this host's CPU and memory
    up = UpProcess(tmp_path / "home").start()
    try:
        base = f"{up.url}/apis/resource.k8s.io/v1/namespaces/default/resourceclaims"
        claim = {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {"name": "agent-worker"},
            "spec": {
                "devices": {
                    "requests": [
                        {
                            "name": "cpu",
                            "exactly": {
                                "deviceClassName": "cpu.modelplane.dev",
                                "capacity": {"requests": {"cpu": "500m", "memory": "128Mi"}},
                            },
                        }
                    ]
                }
            },
        }
        # when a claim for half a core is applied through the API
        assert httpx.post(base, json=claim, timeout=10).status_code == 201

        # then the scheduler allocates the local host's CPU device to it
        def allocation() -> Any:
            got = httpx.get(f"{base}/agent-worker", timeout=10).json()
            return (got.get("status") or {}).get("allocation")

        allocated = wait_until(allocation, timeout=30, what="the claim's allocation")
        result = allocated["devices"]["results"][0]
        assert result["driver"] == "cpu.modelplane.dev" and result["device"] == "host"
        # keyed by the device's own capacity name, as Kubernetes writes consumedCapacity
        assert result["consumedCapacity"]["cpu"] == "500m"
        nodes = httpx.get(f"{up.url}/apis/modelplane.dev/v1alpha1/nodes", timeout=10).json()
        assert [n["metadata"]["name"] for n in nodes["items"]] == [result["pool"]]
    finally:
        up.stop()
