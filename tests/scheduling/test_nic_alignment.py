"""GPUs and RDMA NICs placed together: ``matchAttribute`` on the PCIe root across two drivers.

A table of cases in the style of Kubernetes' allocator table: each names its nodes (GPU and NIC
slices), what is already held, the claim, and either the devices it must get (request, device)
or the unschedulable message. Every case runs under both the ``modelplane`` policy and
``first-fit`` (devices in slice order), which must backtrack from GPUs on a root without NICs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from modelplane.scheduling import AllocatedState, AllocationResult, Inventory, Unschedulable
from modelplane.scheduling import allocate as _allocate
from modelplane.sim import NIC_DRIVER, generate_cluster, nic_claim

from ._dra import PCIE, claim, device_class, exactly, gpu, node_slice

#: placement is checked here, not speed (a busy machine must not run out the 50 ms bound)
allocate = partial(_allocate, deadline_ms=10_000)

NUMA = "resource.kubernetes.io/numaNode"
NIC_CLASS = device_class(NIC_DRIVER, f"device.driver == '{NIC_DRIVER}'")


def nic(name: str, root: str, gbps: int = 400) -> dict[str, Any]:
    return {
        "name": name,
        "attributes": {
            "type": {"string": "nic"},
            PCIE: {"string": root},
            NUMA: {"int": 0 if root.endswith("0") else 1},
        },
        "capacity": {"bandwidth": {"value": f"{gbps}G"}},
    }


def gpus(node: str, roots: tuple[int, ...] = (4, 4)) -> dict[str, Any]:
    """GPUs of ``node``: ``roots[i]`` GPUs on PCIe root ``<node>-pci<i>``, named in order."""
    devs: list[dict[str, Any]] = []
    for r, n in enumerate(roots):
        devs += [gpu(f"gpu-{len(devs) + i}", root=f"{node}-pci{r}") for i in range(n)]
    return node_slice(node, devs)


def nics(node: str, roots: tuple[int, ...]) -> dict[str, Any]:
    """NICs of ``node``: ``roots[i]`` NICs on PCIe root ``<node>-pci<i>``."""
    devs: list[dict[str, Any]] = []
    for r, n in enumerate(roots):
        devs += [nic(f"nic-{len(devs) + i}", f"{node}-pci{r}") for i in range(n)]
    return node_slice(node, devs, driver=NIC_DRIVER)


def aligned(g: int, n: int) -> dict[str, Any]:
    """``g`` GPUs and ``n`` NICs, all on one PCIe root."""
    return claim(
        "c",
        [exactly("gpu", count=g), exactly("nic", count=n, cls=NIC_DRIVER)],
        [{"requests": ["gpu", "nic"], "matchAttribute": PCIE}],
    )


@dataclass
class Case:
    name: str
    slices: list[dict[str, Any]]
    claim: dict[str, Any]
    want: list[tuple[str, str]] | None = None  # (request, device), node first: "node/device"
    reason: str | None = None
    held: list[tuple[str, str, str]] = field(default_factory=list)  # (driver, pool, device)


CASES = [
    Case(
        "two-gpus-and-a-nic-on-the-root-that-has-it",
        [gpus("n1"), nics("n1", (0, 1))],
        aligned(2, 1),
        want=[("gpu", "n1/gpu-4"), ("gpu", "n1/gpu-5"), ("nic", "n1/nic-0")],
    ),
    Case(
        "gpus-of-the-first-root-are-given-up-for-the-root-with-nics",
        [gpus("n1", (2, 4)), nics("n1", (0, 2))],
        aligned(2, 2),
        want=[
            ("gpu", "n1/gpu-2"),
            ("gpu", "n1/gpu-3"),
            ("nic", "n1/nic-0"),
            ("nic", "n1/nic-1"),
        ],
    ),
    Case(
        "a-nic-in-use-moves-the-claim-to-the-other-root",
        [gpus("n1"), nics("n1", (1, 1))],
        aligned(4, 1),
        held=[(NIC_DRIVER, "n1", "nic-0")],
        want=[
            ("gpu", "n1/gpu-4"),
            ("gpu", "n1/gpu-5"),
            ("gpu", "n1/gpu-6"),
            ("gpu", "n1/gpu-7"),
            ("nic", "n1/nic-1"),
        ],
    ),
    Case(
        "the-node-with-nics-is-chosen",
        [gpus("n1"), gpus("n2"), nics("n2", (1, 0))],
        aligned(2, 1),
        want=[("gpu", "n2/gpu-0"), ("gpu", "n2/gpu-1"), ("nic", "n2/nic-0")],
    ),
    Case(
        "eight-gpus-as-two-roots-each-with-its-nics",
        [gpus("n1"), nics("n1", (2, 2))],
        nic_claim("c", 8),
        want=[
            *[("gpu-a", f"n1/gpu-{i}") for i in range(4)],
            ("nic-a", "n1/nic-0"),
            ("nic-a", "n1/nic-1"),
            *[("gpu-b", f"n1/gpu-{i}") for i in range(4, 8)],
            ("nic-b", "n1/nic-2"),
            ("nic-b", "n1/nic-3"),
        ],
    ),
    Case(
        "nics-only-where-too-few-gpus-are-free",
        [gpus("n1"), nics("n1", (0, 1))],
        aligned(4, 1),
        held=[("gpu.nvidia.com", "n1", "gpu-7")],
        reason=f"0/1 nodes are available: 1 had no 4 gpu + 1 nic devices with the same {PCIE}.",
    ),
    Case(
        "no-root-has-enough-nics",
        [gpus("n1"), nics("n1", (1, 1)), gpus("n2", (2, 6)), nics("n2", (2, 1))],
        aligned(4, 2),
        reason=f"0/2 nodes are available: 2 had no 4 gpu + 2 nic devices with the same {PCIE}.",
    ),
    Case(
        "a-node-without-nics-and-one-whose-nics-are-taken",
        [gpus("n1"), gpus("n2"), nics("n2", (1, 0))],
        aligned(2, 1),
        held=[(NIC_DRIVER, "n2", "nic-0")],
        reason=(
            "0/2 nodes are available: 1 had fewer than 1 free devices matching request nic,"
            " 1 had no device matching the selectors of request nic."
        ),
    ),
]


def _held(held: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "metadata": {"name": f"held-{i}", "namespace": "default"},
            "status": {
                "allocation": {
                    "devices": {"results": [{"request": "r", "driver": d, "pool": p, "device": n}]}
                }
            },
        }
        for i, (d, p, n) in enumerate(held)
    ]


@pytest.mark.parametrize("policy", ["modelplane", "first-fit"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_gpu_and_nic_alignment_table(case: Case, policy: str) -> None:
    # given the case's GPU and NIC slices and what is already held
    inv = Inventory.from_objects(case.slices, [device_class(), NIC_CLASS])
    state = AllocatedState.from_claims(inv, _held(case.held))
    # when the claim is decided
    result = allocate(case.claim, inv, allocated_state=state, policy=policy)
    # then it gets exactly the aligned devices, or the message says why no node could
    if case.want is not None:
        assert isinstance(result, AllocationResult), getattr(result, "reason", result)
        got = sorted((r["request"], f"{r['pool']}/{r['device']}") for r in result.results)
        assert got == sorted(case.want)
        # the constraint, checked on the result itself: each NIC request on its GPUs' root
        roots = {r.request: r.device.attributes[PCIE] for r in result.devices}
        for req, root in roots.items():
            partner = req.replace("gpu", "nic") if "gpu" in req else req.replace("nic", "gpu")
            assert roots[partner] == root
    else:
        assert isinstance(result, Unschedulable) and not result.timed_out
        assert result.reason == case.reason


def test_generated_nics_share_the_pcie_roots_of_their_gpus() -> None:
    # given a generated cluster with NICs
    objs = generate_cluster(8, nics=True, mig=False, seed=2)
    slices = [o for o in objs if o["kind"] == "ResourceSlice"]
    gpu_roots: dict[str, set[str]] = {}
    nic_roots: dict[str, set[str]] = {}
    for s in slices:
        into = nic_roots if s["spec"]["driver"] == NIC_DRIVER else gpu_roots
        for d in s["spec"]["devices"]:
            into.setdefault(s["spec"]["nodeName"], set()).add(d["attributes"][PCIE]["string"])
            if into is nic_roots:
                assert d["capacity"]["bandwidth"]["value"].endswith("G")
                assert d["attributes"][NUMA]["int"] in (0, 1)
    # then every node has NICs, each on a PCIe root of the node's GPUs
    assert set(nic_roots) == set(gpu_roots)
    for node, roots in nic_roots.items():
        assert roots <= gpu_roots[node]
    # and a NIC class selects them
    assert any(o["kind"] == "DeviceClass" and o["metadata"]["name"] == NIC_DRIVER for o in objs)
