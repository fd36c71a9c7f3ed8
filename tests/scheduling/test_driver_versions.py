"""Driver and runtime versions as device attributes: DeviceClass selectors check them, and a
Node whose driver a class refuses gets ``DriverMismatch=True`` saying which device and why."""

from __future__ import annotations

import copy
from typing import Any

from modelplane.control import Request, get_condition
from modelplane.drivers import file_publication, publish
from modelplane.scheduling import DRIVER_MISMATCH, DriverVersionController, Inventory, allocate
from modelplane.sim import generate_cluster
from modelplane.store import Store

NEW_DRIVER = (
    "device.driver == 'gpu.nvidia.com'"
    " && device.attributes['gpu.nvidia.com'].driverVersion.compareTo(semver('570.0.0')) >= 0"
    " && device.attributes['gpu.nvidia.com'].cudaDriverVersion.isGreaterThan(semver('12.4.0'))"
)


def _cluster_with_an_old_driver() -> list[dict[str, Any]]:
    """Two simulated nodes of two GPUs; node-0001 still runs driver 535 with CUDA 12.2."""
    objs = copy.deepcopy(generate_cluster(2, gpus_per_node=2, mig=False))
    for obj in objs:
        if obj["kind"] == "ResourceSlice" and obj["spec"]["nodeName"] == "node-0001":
            for device in obj["spec"]["devices"]:
                device["attributes"]["driverVersion"] = {"version": "535.104.5"}
                device["attributes"]["cudaDriverVersion"] = {"version": "12.2.0"}
    objs.append(
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "DeviceClass",
            "metadata": {"name": "gpu-driver-570"},
            "spec": {"selectors": [{"cel": {"expression": NEW_DRIVER}}]},
        }
    )
    return objs


def _claim() -> dict[str, Any]:
    return {
        "metadata": {"name": "serve", "namespace": "default"},
        "spec": {
            "devices": {
                "requests": [
                    {"name": "gpu", "exactly": {"deviceClassName": "gpu-driver-570", "count": 2}}
                ]
            }
        },
    }


def test_a_device_class_selects_devices_by_driver_and_cuda_version() -> None:
    objs = _cluster_with_an_old_driver()
    slices = [o for o in objs if o["kind"] == "ResourceSlice"]
    classes = [o for o in objs if o["kind"] == "DeviceClass"]
    # when a claim asks for two GPUs of the class that requires driver >= 570 and CUDA > 12.4
    result = allocate(_claim(), Inventory.from_objects(slices, classes))
    # then both come from the node with the new driver
    assert result, getattr(result, "reason", "")
    assert {r["pool"] for r in result.results} == {"node-0000"}


def test_a_node_whose_driver_a_class_refuses_gets_driver_mismatch(store: Store) -> None:
    # given the cluster published, one node on an old driver, and a class requiring the new one
    publish(store, file_publication(_cluster_with_an_old_driver(), "inventory"))
    # when the controller looks at every node
    DriverVersionController(store).reconcile(Request("", ""))
    # then the old node is marked, naming the device, its versions and the class
    old = get_condition(store.get("Node", "", "node-0001")["status"], DRIVER_MISMATCH)
    assert old is not None and old["status"] == "True"
    assert old["reason"] == "DriverVersionMismatch"
    assert "device gpu-0 (driverVersion 535.104.5, cudaDriverVersion 12.2.0)" in old["message"]
    assert "DeviceClass gpu-driver-570" in old["message"]
    # and the up-to-date node is not
    new = get_condition(store.get("Node", "", "node-0000")["status"], DRIVER_MISMATCH)
    assert new is not None and new["status"] == "False"
    # and a Warning Event says so
    events = [e for e in store.list("Event").items if e.get("reason") == DRIVER_MISMATCH]
    assert [e["involvedObject"]["name"] for e in events] == ["node-0001"]
    assert events[0]["type"] == "Warning"


def test_a_class_without_a_version_requirement_marks_no_node(store: Store) -> None:
    objs = [o for o in _cluster_with_an_old_driver() if o["metadata"]["name"] != "gpu-driver-570"]
    publish(store, file_publication(objs, "inventory"))
    DriverVersionController(store).reconcile(Request("", "node-0001"))
    cond = get_condition(store.get("Node", "", "node-0001")["status"], DRIVER_MISMATCH)
    assert cond is not None and cond["status"] == "False"
