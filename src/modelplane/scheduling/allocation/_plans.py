"""A claim as the allocator reads it: each request's alternatives and the claim's constraints.

Public (through :mod:`modelplane.scheduling`) for code outside the package that reasons about the
same choices as :func:`allocate` without reading a claim a second way: the exact optimum of
:mod:`modelplane.sim` builds its integer program from these plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from ._allocator import _claim_key, _Constraint, _Invalid, _Plan, _plans, _untolerated
from ._inventory import Device, Inventory

__all__ = ["ClaimPlan", "ConstraintPlan", "RequestPlan", "claim_key", "plan_claim", "untolerated"]

#: one request (or ``firstAvailable`` subrequest) resolved against its DeviceClass: ``name``,
#: ``count``, ``index`` (node -> matching devices), ``constraints`` (indices into the claim's)
RequestPlan: TypeAlias = _Plan
#: a ``matchAttribute`` (``match``) or ``distinctAttribute`` constraint on ``attribute``
ConstraintPlan: TypeAlias = _Constraint


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """One claim resolved: per request its alternatives in order of preference, its constraints."""

    key: str
    requests: list[list[RequestPlan]]
    constraints: list[ConstraintPlan]


def claim_key(claim: Mapping[str, Any]) -> str:
    """``namespace/name`` of a claim, as decisions and results name it."""
    return _claim_key(claim)


def plan_claim(claim: Mapping[str, Any], inventory: Inventory) -> ClaimPlan:
    """Resolve ``claim`` against ``inventory``; ``ValueError`` (with the reason) if it is invalid."""
    key = _claim_key(claim)
    try:
        requests, constraints = _plans([(claim, key)], inventory)
    except _Invalid as exc:
        raise ValueError(str(exc)) from None
    return ClaimPlan(key, requests, constraints)


def untolerated(device: Device, plan: RequestPlan) -> dict[str, Any] | None:
    """The first ``NoSchedule``/``NoExecute`` taint of ``device`` the request does not tolerate."""
    return _untolerated(device, plan)
