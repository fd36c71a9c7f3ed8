"""``DriverVersionController``: a Node whose GPU driver or CUDA runtime is not what a DeviceClass
requires gets the condition ``DriverMismatch=True``, naming the device, its version and the class.

Drivers publish their versions as device attributes (``driverVersion`` and ``cudaDriverVersion``,
versions, as NVIDIA's DRA driver does), and a DeviceClass requires one with a CEL selector such as
``device.attributes['gpu.nvidia.com'].driverVersion.compareTo(semver('570.0.0')) >= 0``. A device
*mismatches* a class when it fails the class's selectors as published, yet passes them with the
version attributes of a device that does (anywhere in the cluster): its driver, and nothing else,
keeps it out. A class whose selectors name no version attribute requires none.

The condition is ``False`` (reason ``DriverVersionsMatch``) on every other Node with devices, and
a ``Warning`` Event ``DriverMismatch`` is recorded when it turns True. Any DeviceClass or
ResourceSlice change looks at every Node again.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from modelplane.api.errors import NotFound
from modelplane.control import (
    Controller,
    Request,
    Result,
    StatusEvent,
    Watches,
    commit_status,
    set_condition,
)
from modelplane.store import Store

from .._errors import CelRuntimeError, SchedulingInputError
from ..allocation._cel import CelDevice, SelectorProgram, compile_selector
from ..allocation._inventory import Device, Inventory

__all__ = ["DRIVER_MISMATCH", "VERSION_ATTRIBUTES", "DriverVersionController", "driver_mismatches"]

JSON = dict[str, Any]
DRIVER_MISMATCH = "DriverMismatch"
#: the device attributes that say which driver and runtime a device runs under
VERSION_ATTRIBUTES = ("driverVersion", "cudaDriverVersion")
#: a request for every Node (a DeviceClass or a ResourceSlice changed)
_EVERY_NODE = Request("", "")


def _every_node(_obj: JSON) -> list[Request]:
    return [_EVERY_NODE]


def _selectors(device_class: JSON) -> list[SelectorProgram] | None:
    """The class's compiled selectors when any names a version attribute; None otherwise."""
    expressions = [
        str((s.get("cel") or {}).get("expression") or "")
        for s in (device_class.get("spec") or {}).get("selectors") or []
    ]
    if not any(name in e for e in expressions for name in VERSION_ATTRIBUTES):
        return None
    try:
        return [compile_selector(e) for e in expressions if e]
    except Exception:  # a class that does not compile matches nothing: the scheduler says why
        return None


def _passes(programs: Sequence[SelectorProgram], device: CelDevice) -> bool:
    try:
        return all(p.matches(device) for p in programs)
    except CelRuntimeError:
        return False


def _versions(device: Device) -> dict[str, Any]:
    return {
        k: v for k, v in device.cel.attributes.items() if k.rsplit("/", 1)[-1] in VERSION_ATTRIBUTES
    }


def driver_mismatches(inv: Inventory) -> dict[str, list[str]]:
    """``{node: [message]}``: the devices of each node kept out of a class by their versions."""
    out: dict[str, list[str]] = defaultdict(list)
    for class_name, device_class in sorted(inv.classes.items()):
        programs = _selectors(device_class)
        if programs is None:
            continue
        good = [d for d in inv.devices if _passes(programs, d.cel)]
        good_ids = {d.id for d in good}
        candidates = {tuple(sorted(_versions(d).items())): d for d in good}
        for d in inv.devices:
            if d.node is None or not _versions(d) or d.id in good_ids:
                continue
            for versions, example in candidates.items():
                c = d.cel
                trial = CelDevice(
                    c.driver, {**c.attributes, **dict(versions)}, c.capacity, c.domains
                )
                if _passes(programs, trial):
                    have = ", ".join(f"{k.rsplit('/', 1)[-1]} {v}" for k, v in _versions(d).items())
                    want = ", ".join(f"{k.rsplit('/', 1)[-1]} {v}" for k, v in versions)
                    out[d.node].append(
                        f"device {d.name} ({have}) does not satisfy DeviceClass {class_name};"
                        f" it would with {want} (as {example.name} on {example.node});"
                        " upgrade the node's driver or relax the class's selector"
                    )
                    break
    return dict(out)


class DriverVersionController(Controller):
    """Sets ``DriverMismatch`` on Nodes (see the module docstring)."""

    kind = "Node"
    name = "driver-version"
    watches = (Watches("ResourceSlice", _every_node), Watches("DeviceClass", _every_node))

    def __init__(self, store: Store) -> None:
        super().__init__(store, workers=1)

    def reconcile(self, request: Request) -> Result:
        slices = self.store.list("ResourceSlice").items
        try:
            inv = Inventory.from_objects(slices, self.store.list("DeviceClass").items)
        except SchedulingInputError:
            return Result()  # the scheduler reports a bad inventory; nothing to compare here
        problems = driver_mismatches(inv)
        if request.name:
            names = [request.name]
        else:
            names = [n["metadata"]["name"] for n in self.store.list("Node").items]
        for name in names:
            if name in inv.by_node:
                self._mark(name, problems.get(name, []))
        return Result()

    def _mark(self, name: str, problems: list[str]) -> None:
        try:
            node = self.store.get("Node", "", name)
        except NotFound:
            return
        status = copy.deepcopy(node.get("status") or {})
        if problems:
            message = "; ".join(problems)
            set_condition(status, DRIVER_MISMATCH, True, "DriverVersionMismatch", message)
            event: StatusEvent | None = StatusEvent("Warning", DRIVER_MISMATCH, message)
        else:
            message = "every device's driver and runtime satisfy the DeviceClasses"
            set_condition(status, DRIVER_MISMATCH, False, "DriverVersionsMatch", message)
            event = None
        commit_status(
            self.store,
            node,
            status,
            component=self.name,
            condition=None,
            event=event,
            observed_generation=False,
        )
