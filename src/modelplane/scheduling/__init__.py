"""Device scheduling: ``resource.k8s.io/v1`` (DRA) allocation, scoring and simulation.

This package owns the decision "which devices on which node does this ResourceClaim get", on
plain dicts of DeviceClasses, ResourceSlices, Nodes and ResourceClaims: selectors in CEL (with
the Kubernetes DRA environment), ``exactly``/``firstAvailable`` requests, constraints, shared
counters (MIG), consumable capacity, taints and admin access; pluggable weighted scorers
(topology, fragmentation, cost, power) and the upstream baselines (first-fit, binpack); a
cluster and workload generator and a discrete-event simulator.

It does not read or write the store and imports no other subsystem: controllers call
:func:`allocate` and write ``AllocationResult.to_status()`` into the claim's status.
"""

from ._allocator import AllocationResult, DeviceResult, Unschedulable, allocate
from ._cel import CelCompileError, CelRuntimeError, Semver, compile_selector, parse_semver
from ._generator import GPU_MODELS, generate_cluster, generate_workload
from ._inventory import Device, Inventory, SchedulingInputError
from ._quantity import QuantityError, format_quantity, parse_quantity
from ._scoring import (
    BinpackScorer,
    CostScorer,
    FragmentationScorer,
    LeastAllocatedScorer,
    Placement,
    Policy,
    PowerScorer,
    Scorer,
    TopologyScorer,
    WorkloadMix,
    policy_named,
)
from ._simulator import simulate, split_objects
from ._state import AllocatedState

__all__ = [
    "GPU_MODELS",
    "AllocatedState",
    "AllocationResult",
    "BinpackScorer",
    "CelCompileError",
    "CelRuntimeError",
    "CostScorer",
    "Device",
    "DeviceResult",
    "FragmentationScorer",
    "Inventory",
    "LeastAllocatedScorer",
    "Placement",
    "Policy",
    "PowerScorer",
    "QuantityError",
    "SchedulingInputError",
    "Scorer",
    "Semver",
    "TopologyScorer",
    "Unschedulable",
    "WorkloadMix",
    "allocate",
    "compile_selector",
    "format_quantity",
    "generate_cluster",
    "generate_workload",
    "parse_quantity",
    "parse_semver",
    "policy_named",
    "simulate",
    "split_objects",
]
