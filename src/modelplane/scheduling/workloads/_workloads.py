"""From stored ResourceClaims and Jobs to the :class:`Workload` objects :class:`Admission` admits.

The control plane's claims come from ``JobClaimController`` (``<job>-claim-<i>``, annotated with
the gang and its size) or from users; this module turns them, and the allocations they already
carry, back into workloads and placements so that an :class:`Admission` can be rebuilt from what
the store says at any time.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from modelplane.api import (
    CONSUMER_ANNOTATION,
    CONSUMER_CLAIMS_ANNOTATION,
    GANG_ANNOTATION,
    GANG_SIZE_ANNOTATION,
    parse_quantity,
)

from ..allocation._allocator import AllocationResult, DeviceResult
from ..allocation._inventory import Inventory
from ._gang import Workload, workloads_from
from ._queues import priority_of, queue_of

__all__ = [
    "CONSUMER_ANNOTATION",
    "CONSUMER_CLAIMS_ANNOTATION",
    "GANG_ANNOTATION",
    "GANG_SIZE_ANNOTATION",
    "claim_key",
    "consumer_claims",
    "consumer_key",
    "endpoint_replica_slots",
    "gang_key",
    "job_workload",
]


JSON = dict[str, Any]


def claim_key(claim: Mapping[str, Any]) -> str:
    meta = claim.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def gang_key(claim: Mapping[str, Any]) -> str | None:
    """``namespace/job`` of the gang a claim is a replica of, or None."""
    meta = claim.get("metadata") or {}
    gang = (meta.get("annotations") or {}).get(GANG_ANNOTATION)
    return f"{meta.get('namespace') or 'default'}/{gang}" if gang else None


def consumer_key(claim: Mapping[str, Any]) -> str | None:
    """``namespace/consumer`` of the consumer a claim belongs to, or None."""
    meta = claim.get("metadata") or {}
    consumer = (meta.get("annotations") or {}).get(CONSUMER_ANNOTATION)
    return f"{meta.get('namespace') or 'default'}/{consumer}" if consumer else None


def consumer_claims(claim: Mapping[str, Any]) -> int:
    """How many claims the claim's consumer has (0: not said; group those that exist)."""
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    try:
        return max(0, int(str(annotations.get(CONSUMER_CLAIMS_ANNOTATION))))
    except (TypeError, ValueError):
        return 0


def gang_size(claim: Mapping[str, Any]) -> int:
    value = ((claim.get("metadata") or {}).get("annotations") or {}).get(GANG_SIZE_ANNOTATION)
    try:
        return max(1, int(str(value)))
    except (TypeError, ValueError):
        return 1


def claim_workload(claim: Mapping[str, Any]) -> Workload:
    """One claim as its own workload (queue and priority from its annotations)."""
    return Workload(claim_key(claim), [dict(claim)], queue_of(claim), priority_of(claim))


def job_workload(job: Mapping[str, Any], claims: list[JSON]) -> Workload:
    """The gang of ``job`` made of its stored replica ``claims`` (in replica order).

    Topology, queue and priority come from the Job (``workloads_from`` checks them, raising
    :class:`SchedulingInputError` naming the field).
    """
    template = workloads_from(job)[0]
    return Workload(
        key=template.key,
        claims=claims,
        queue=template.queue,
        priority=template.priority,
        gang=True,
        required=template.required,
        preferred=template.preferred,
        source=job,
    )


def result_from_allocation(
    key: str, allocation: Mapping[str, Any], inventory: Inventory
) -> AllocationResult | None:
    """The :class:`AllocationResult` a stored ``status.allocation`` stands for, or None when a
    device of it is not in ``inventory`` any more."""
    devices: list[DeviceResult] = []
    node = ""
    for r in (allocation.get("devices") or {}).get("results") or ():
        dev = inventory.device(str(r.get("driver")), str(r.get("pool")), str(r.get("device")))
        if dev is None:
            return None
        consumed: dict[str, Fraction] = {
            (k if "/" in k else f"{dev.driver}/{k}"): Fraction(parse_quantity(v))
            for k, v in (r.get("consumedCapacity") or {}).items()
        }
        devices.append(
            DeviceResult(
                str(r.get("request", "")),
                dev,
                bool(r.get("adminAccess")),
                consumed,
                list(r.get("tolerations") or ()),
            )
        )
        node = node or (dev.node or "")
    return AllocationResult(key, node, devices, 0.0, 0)


def endpoint_replica_slots(endpoint: Mapping[str, Any]) -> int:
    """The replica slots an Endpoint wants: ``status.desiredReplicas`` once its node agent said,
    else ``spec.replicas.min``."""
    desired = (endpoint.get("status") or {}).get("desiredReplicas")
    if isinstance(desired, int) and not isinstance(desired, bool) and desired >= 0:
        return desired
    replicas = (endpoint.get("spec") or {}).get("replicas") or {}
    return int(replicas.get("min", 1) if isinstance(replicas, dict) else 1)
