"""Cost and power accounting: money per hour and watts of allocated devices, by owner, namespace,
node and rack; shared devices split; devices without a price counted as unpriced, not as free."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from tests.cli._platform import run_cli

from modelplane.sre import cost_report
from modelplane.store import Store


def _slice(node: str, rack: str, devices: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": f"{node}-gpu"},
        "spec": {
            "driver": "gpu.nvidia.com",
            "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
            "nodeName": node,
            "devices": [{"name": name, "attributes": attrs} for name, attrs in devices],
        },
    }


def _node(name: str, rack: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.modelplane.dev/rack": rack}},
    }


def _claim(namespace: str, name: str, owner: str | None, devices: list[tuple[str, str]]) -> Any:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner:
        kind, _, owner_name = owner.partition("/")
        meta["ownerReferences"] = [
            {"apiVersion": "modelplane.dev/v1alpha1", "kind": kind, "name": owner_name, "uid": "u"}
        ]
    results = [
        {"request": "gpu", "driver": "gpu.nvidia.com", "pool": pool, "device": device}
        for pool, device in devices
    ]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": meta,
        "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "g"}}]}},
        "status": {"allocation": {"devices": {"results": results}}},
    }


def _priced(price: str, watts: int) -> dict[str, Any]:
    return {
        "modelplane.dev/pricePerHour": {"string": price},
        "modelplane.dev/powerWatts": {"int": watts},
    }


def _world() -> tuple[list[Any], list[Any], list[Any]]:
    slices = [
        _slice("n1", "r1", [("gpu-0", _priced("2.50", 700)), ("gpu-1", _priced("2.50", 700))]),
        _slice("n2", "r1", [("gpu-0", _priced("1.00", 300)), ("gpu-1", {})]),
    ]
    nodes = [_node("n1", "r1"), _node("n2", "r1")]
    claims = [
        # an Endpoint's two replicas, one GPU each on n1
        _claim("team-a", "chat-0", "Endpoint/chat", [("n1", "gpu-0")]),
        _claim("team-a", "chat-1", "Endpoint/chat", [("n1", "gpu-1")]),
        # a Job and a bare claim sharing one device on n2, and the Job on an unpriced one too
        _claim("team-b", "train-0", "Job/train", [("n2", "gpu-0"), ("n2", "gpu-1")]),
        _claim("team-b", "scratch", None, [("n2", "gpu-0")]),
        # not allocated: costs nothing
        {**_claim("team-b", "waiting", "Job/train", []), "status": {}},
    ]
    return claims, slices, nodes


def test_each_owner_pays_for_its_devices_and_a_shared_device_is_split() -> None:
    report = cost_report(*_world())
    by_owner = {o.owner: o for o in report.owners}
    assert by_owner["Endpoint/team-a/chat"].per_hour == pytest.approx(5.0)
    assert by_owner["Endpoint/team-a/chat"].watts == pytest.approx(1400)
    assert by_owner["Endpoint/team-a/chat"].devices == 2
    train = by_owner["Job/team-b/train"]
    assert (train.per_hour, train.watts, train.devices, train.unpriced) == (0.5, 150, 1.5, 1)
    scratch = by_owner["ResourceClaim/team-b/scratch"]
    assert (scratch.per_hour, scratch.watts, scratch.devices) == (0.5, 150, 0.5)
    assert report.namespaces() == {"team-a": 5.0, "team-b": 1.0}
    # the costliest first
    assert report.owners[0].owner == "Endpoint/team-a/chat"


def test_power_is_reported_published_and_allocated_per_node_and_rack() -> None:
    report = cost_report(*_world())
    nodes = {p.name: (p.published, p.allocated) for p in report.nodes}
    assert nodes == {"n1": (1400, 1400), "n2": (300, 300)}
    assert [(r.name, r.published, r.allocated) for r in report.racks] == [("r1", 1700, 1700)]


def test_modelplane_cost_prints_owners_with_a_total_and_the_report_as_json(
    platform: tuple[str, Store],
) -> None:
    url, store = platform
    claims, slices, nodes = _world()
    for obj in [*slices, *nodes]:
        store.create(obj)
    for claim in claims:
        status = claim.pop("status")
        created = store.create(claim)
        if status:
            store.update_status({**created, "status": status})
    table = run_cli("--server", url, "cost", "-A", "--power")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["NAMESPACE", "OWNER", "DEVICES", "PER", "HOUR", "WATTS", "UNPRICED"]
    assert lines[1].split() == ["team-a", "Endpoint/team-a/chat", "2", "5.00", "1400", "0"]
    assert any(line.split()[:2] == ["TOTAL", "6.00"] for line in lines)
    assert any(line.split() == ["r1", "1700", "1700"] for line in lines)
    # one namespace by default
    mine = run_cli("--server", url, "-n", "team-b", "cost", "-o", "json")
    assert mine.exit_code == 0, mine.output
    assert orjson.loads(mine.output)["namespaces"] == {"team-b": 1.0}
