"""Device scheduling: ``resource.k8s.io/v1`` (DRA) allocation, scoring, queues and gangs.

This package owns the decision "which devices on which node does this ResourceClaim get", on
plain dicts of DeviceClasses, ResourceSlices, Nodes and ResourceClaims: selectors in CEL (with
the Kubernetes DRA environment), ``exactly``/``firstAvailable`` requests, constraints, shared
counters (MIG), consumable capacity, taints and admin access; pluggable weighted scorers
(topology, fragmentation, cost, power) and the upstream baselines (first-fit, binpack). Workload
policy on top of it: Queues (Kueue-like quotas counted in devices, capacity and counters; cohorts
with borrowing and lending; fair sharing by weight), Jobs placed as gangs with topology
requirements, and preemption of the cheapest allowed victims (:class:`Admission`).

The allocator does not read or write the store and no module imports another subsystem: the
controllers (:class:`ResourceClaimController`, and :class:`EndpointClaimController` /
:class:`JobClaimController` for claims from templates) call :func:`allocate` and write
``AllocationResult.to_status()`` into the claim's status. The cluster generator, the
discrete-event simulator and the exact optimum are in :mod:`modelplane.sim`, on these public names.

The package is laid out by role, imports going down only: ``controllers/`` (the reconcilers),
``workloads/`` (queues, gangs, admission, preemption), ``allocation/`` (the allocator; one module
per DRA constraint type in ``allocation/constraints/``) and ``_errors.py``. Their modules are
private; every public name is here.
"""

from modelplane.api import QuantityError, format_quantity, parse_quantity

from ._errors import CelCompileError, CelRuntimeError, SchedulingInputError
from .allocation._allocator import (
    AllocationResult,
    DeviceResult,
    Unschedulable,
    allocate,
    allocate_many,
)
from .allocation._cel import Semver, compile_selector, parse_semver
from .allocation._inventory import CounterKey, Device, Inventory
from .allocation._plans import (
    ClaimPlan,
    ConstraintPlan,
    RequestPlan,
    claim_key,
    plan_claim,
    untolerated,
)
from .allocation._scoring import (
    TOPOLOGY_LEVELS,
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
    topology_level,
)
from .allocation._state import PRICE_ATTRIBUTE, AllocatedState
from .controllers._claims import AgentClaimController, EndpointClaimController, JobClaimController
from .controllers._controller import ResourceClaimController, scheduling_controllers
from .controllers._drivers import (
    DRIVER_MISMATCH,
    VERSION_ATTRIBUTES,
    DriverVersionController,
    driver_mismatches,
)
from .workloads._admission import Admission, Admitted, Pending, Running
from .workloads._gang import GangPlacement, GangPlacer, Workload, workloads_from
from .workloads._preemption import Preemption
from .workloads._queues import QueueSet, claim_usage, priority_of, queue_of

__all__ = [
    "DRIVER_MISMATCH",
    "PRICE_ATTRIBUTE",
    "TOPOLOGY_LEVELS",
    "VERSION_ATTRIBUTES",
    "Admission",
    "Admitted",
    "AgentClaimController",
    "AllocatedState",
    "AllocationResult",
    "BinpackScorer",
    "CelCompileError",
    "CelRuntimeError",
    "ClaimPlan",
    "ConstraintPlan",
    "CostScorer",
    "CounterKey",
    "Device",
    "DeviceResult",
    "DriverVersionController",
    "EndpointClaimController",
    "FragmentationScorer",
    "GangPlacement",
    "GangPlacer",
    "Inventory",
    "JobClaimController",
    "LeastAllocatedScorer",
    "Pending",
    "Placement",
    "Policy",
    "PowerScorer",
    "Preemption",
    "QuantityError",
    "QueueSet",
    "RequestPlan",
    "ResourceClaimController",
    "Running",
    "SchedulingInputError",
    "Scorer",
    "Semver",
    "TopologyScorer",
    "Unschedulable",
    "Workload",
    "WorkloadMix",
    "allocate",
    "allocate_many",
    "claim_key",
    "claim_usage",
    "compile_selector",
    "driver_mismatches",
    "format_quantity",
    "parse_quantity",
    "parse_semver",
    "plan_claim",
    "policy_named",
    "priority_of",
    "queue_of",
    "scheduling_controllers",
    "topology_level",
    "untolerated",
    "workloads_from",
]
