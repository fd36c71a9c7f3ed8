"""GPU power caps end to end on one host: NVML's power figures are published, the power
controller plans caps under the Node's budget, and the node's device service sets them through
NVML (a stand-in for NVIDIA's library: the hardware is outside the project)."""

from __future__ import annotations

from modelplane.api import NODE_POWER_BUDGET_ANNOTATION
from modelplane.control import Request, get_condition
from modelplane.drivers import LocalDevices
from modelplane.scheduling import PowerController
from modelplane.store import Store

from .test_drivers import FakeNvml


class PowerNvml(FakeNvml):
    """Two 700 W GPUs that accept limits from 200 W to 700 W, and remember the limits set."""

    def __init__(self) -> None:
        super().__init__(gpus=2)
        self.limits_mw: dict[int, int] = {}

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: int) -> int:
        return 700_000

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: int) -> tuple[int, int]:
        return (200_000, 700_000)

    def nvmlDeviceSetPowerManagementLimit(self, handle: int, milliwatts: int) -> None:
        assert self.initialised
        self.limits_mw[handle] = milliwatts


def test_the_node_agent_sets_the_caps_the_controller_planned(store: Store) -> None:
    # given this host's two GPUs published with their power figures
    nvml = PowerNvml()
    local = LocalDevices(store, node="gpu-host", nvml=nvml)
    local.publish_once()
    gpus = next(
        s for s in store.list("ResourceSlice").items if s["spec"]["driver"] == "gpu.nvidia.com"
    )
    attrs = gpus["spec"]["devices"][0]["attributes"]
    assert attrs["modelplane.dev/powerWatts"] == {"int": 700}
    assert attrs["modelplane.dev/minPowerWatts"] == {"int": 200}
    # and no budget yet: nothing is set
    assert local.apply_power_caps() == {} and nvml.limits_mw == {}
    # when the Node gets a 1000 W budget and the controller plans for it
    node = store.get("Node", "", "gpu-host")
    node["metadata"].setdefault("annotations", {})[NODE_POWER_BUDGET_ANNOTATION] = "1000"
    store.update(node)
    PowerController(store).reconcile(Request("", "gpu-host"))
    status = store.get("Node", "", "gpu-host")["status"]
    assert (get_condition(status, "PowerBudget") or {}).get("reason") == "WithinBudget"
    # then the device service sets those caps through NVML, within the budget
    caps = local.apply_power_caps()
    assert caps == {"gpu-0": 500.0, "gpu-1": 500.0}
    assert nvml.limits_mw == {0: 500_000, 1: 500_000}
    assert not nvml.initialised  # NVML shut down again
