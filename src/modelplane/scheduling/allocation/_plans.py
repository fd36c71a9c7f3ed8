"""A claim as the allocator reads it: each request's alternatives and the claim's constraints.

A ResourceClaim is resolved here once per decision: its requests (``exactly`` or the
``firstAvailable`` alternatives) against their DeviceClasses, into :class:`RequestPlan` objects
holding the compiled selectors' matches, and its ``constraints`` into typed constraints (see
:mod:`.constraints`). The allocator, and the exact optimum of :mod:`modelplane.sim` (through
:func:`plan_claim`), reason about the same choices without reading a claim a second way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TypeAlias

from modelplane.api import QuantityError, parse_quantity

from .._errors import CelCompileError
from ._cel import compile_selector
from ._inventory import Device, Inventory
from .constraints._base import Constraint
from .constraints._registry import CONSTRAINT_TYPES, parse_constraint

__all__ = [
    "MAX_RESULTS",
    "ClaimPlan",
    "ConstraintPlan",
    "InvalidClaim",
    "RequestPlan",
    "claim_key",
    "plan_claim",
    "plans",
    "tolerates",
    "untolerated",
]

#: Kubernetes' ``AllocationResultsMaxSize``: at most this many devices per claim.
MAX_RESULTS = 128

#: a claim's constraint, parsed into its type (``matchAttribute``, ``distinctAttribute``)
ConstraintPlan: TypeAlias = Constraint


@dataclass(slots=True)
class RequestPlan:
    """One request (or ``firstAvailable`` subrequest) resolved against its DeviceClass.

    ``index`` maps a node to its matching devices; ``constraints`` are indices into the
    constraints of the decision.
    """

    name: str  # "gpu" or "gpu/large"
    base: str
    sub: str
    expressions: tuple[str, ...]
    all_mode: bool
    count: int
    admin: bool
    tolerations: list[dict[str, Any]]
    capacity: dict[str, Fraction]
    constraints: list[int] = field(default_factory=list)
    index: dict[str, list[Device]] = field(default_factory=dict)
    min_units: float = 1.0
    claim: int = 0
    class_name: str = ""
    sources: dict[str, str] = field(default_factory=dict)  # expression -> where it comes from


@dataclass(frozen=True, slots=True)
class ClaimPlan:
    """One claim resolved: per request its alternatives in order of preference, its constraints."""

    key: str
    requests: list[list[RequestPlan]]
    constraints: list[ConstraintPlan]


class InvalidClaim(Exception):
    """The claim can never be allocated as written; the message names the field and the fix."""


def claim_key(claim: Mapping[str, Any]) -> str:
    """``namespace/name`` of a claim, as decisions and results name it."""
    meta = claim.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def plan_claim(claim: Mapping[str, Any], inventory: Inventory) -> ClaimPlan:
    """Resolve ``claim`` against ``inventory``; ``ValueError`` (with the reason) if it is invalid."""
    key = claim_key(claim)
    try:
        requests, constraints = plans([(claim, key)], inventory)
    except InvalidClaim as exc:
        raise ValueError(str(exc)) from None
    return ClaimPlan(key, requests, constraints)


def plans(
    claims: Sequence[tuple[Mapping[str, Any], str]],
    inv: Inventory,
    deadline: float | None = None,
) -> tuple[list[list[RequestPlan]], list[Constraint]]:
    """Requests of every claim (in order), resolved; constraints stay within their claim."""
    slots: list[list[RequestPlan]] = []
    constraints: list[Constraint] = []
    for ci, (claim, key) in enumerate(claims):
        spec = (claim.get("spec") or {}).get("devices") or {}
        own = _requests(spec, inv, key, ci, deadline)
        own_constraints = _constraints(spec, key, own, len(constraints))
        slots.extend(own)
        constraints.extend(own_constraints)
    return slots, constraints


def _requests(
    spec: Mapping[str, Any], inv: Inventory, key: str, claim_index: int, deadline: float | None
) -> list[list[RequestPlan]]:
    """Per request of the claim, its alternatives (one for ``exactly``), in order."""
    requests = spec.get("requests") or []
    if not requests:
        raise InvalidClaim(f"claim {key}: spec.devices.requests is empty; add at least one request")
    slots: list[list[RequestPlan]] = []
    least = 0  # the fewest devices the claim can be served with
    for i, req in enumerate(requests):
        name = req.get("name")
        if not name:
            raise InvalidClaim(f"claim {key}: spec.devices.requests[{i}].name is required")
        if req.get("exactly") and req.get("firstAvailable"):
            raise InvalidClaim(
                f"claim {key}, request {name}: set exactly one of exactly or firstAvailable"
            )
        if req.get("exactly"):
            alts = [_exactly(req["exactly"], name, inv, key, f"requests[{i}].exactly", deadline)]
        elif req.get("firstAvailable"):
            alts = _first_available(req["firstAvailable"], name, inv, key, i, deadline)
        else:
            raise InvalidClaim(
                f"claim {key}, request {name}: set spec.devices.requests[{i}].exactly "
                "or .firstAvailable"
            )
        for p in alts:
            p.claim = claim_index
        least += min(0 if p.all_mode else p.count for p in alts)
        slots.append(alts)
    if least > MAX_RESULTS:
        raise InvalidClaim(
            f"claim {key}: asks for at least {least} devices, which exceeds the claim limit of "
            f"{MAX_RESULTS}; split it over several claims"
        )
    return slots


def _exactly(
    r: Mapping[str, Any], name: str, inv: Inventory, key: str, where: str, deadline: float | None
) -> RequestPlan:
    plan = _request_plan(r, name, "", inv, key, where, deadline)
    if plan.count > MAX_RESULTS:
        raise InvalidClaim(
            f"claim {key}, request {name}: asks for {plan.count} devices, which exceeds "
            f"the claim limit of {MAX_RESULTS}; split it over several claims"
        )
    return plan


def _first_available(
    subs: Sequence[Mapping[str, Any]],
    name: str,
    inv: Inventory,
    key: str,
    i: int,
    deadline: float | None,
) -> list[RequestPlan]:
    alts: list[RequestPlan] = []
    for j, sub in enumerate(subs):
        if not sub.get("name"):
            raise InvalidClaim(f"claim {key}, request {name}: firstAvailable[{j}].name is required")
        where = f"requests[{i}].firstAvailable[{j}]"
        alt = _request_plan(sub, name, sub["name"], inv, key, where, deadline)
        if alt.count <= MAX_RESULTS:  # an alternative that can never fit is skipped
            alts.append(alt)
    if not alts:
        raise InvalidClaim(
            f"claim {key}, request {name}: every firstAvailable alternative exceeds the "
            f"claim limit of {MAX_RESULTS} devices"
        )
    return alts


def _constraints(
    spec: Mapping[str, Any], key: str, slots: list[list[RequestPlan]], offset: int
) -> list[Constraint]:
    """The claim's constraints, parsed; each plan learns which ones cover it (by index)."""
    constraints: list[Constraint] = []
    for i, c in enumerate(spec.get("constraints") or ()):
        con = parse_constraint(c)
        if con is None:
            raise InvalidClaim(
                f"claim {key}: spec.devices.constraints[{i}] needs "
                f"{' or '.join(CONSTRAINT_TYPES)} with a fully qualified name such as "
                "resource.kubernetes.io/pcieRoot (empty constraint: unsupported constraint type?)"
            )
        constraints.append(con)
        covered = [alts for alts in slots if any(con.covers(p) for p in alts)]
        for alts in covered:
            for p in alts:
                if con.covers(p):
                    p.constraints.append(offset + len(constraints) - 1)
        con.needed = sum(min(p.count for p in alts) for alts in covered)
        con.parts = tuple((alts[0].base, min(p.count for p in alts)) for alts in covered)
    return constraints


def _request_plan(
    r: Mapping[str, Any],
    base: str,
    sub: str,
    inv: Inventory,
    key: str,
    where: str,
    deadline: float | None = None,
) -> RequestPlan:
    name = f"{base}/{sub}" if sub else base
    cls_name = r.get("deviceClassName")
    if not cls_name:
        raise InvalidClaim(
            f"claim {key}, request {name}: {where}.deviceClassName is required "
            "(missing device class name)"
        )
    cls = inv.classes.get(cls_name)
    if cls is None:
        raise InvalidClaim(f"claim {key}, request {name}: device class {cls_name!r} does not exist")
    exprs: list[tuple[str, str]] = []
    for j, s in enumerate((cls.get("spec") or {}).get("selectors") or ()):
        e = (s.get("cel") or {}).get("expression")
        if not e:
            raise InvalidClaim(f"class {cls_name}: spec.selectors[{j}].cel.expression is empty")
        exprs.append((e, f"class {cls_name}: selector #{j}"))
    for j, s in enumerate(r.get("selectors") or ()):
        e = (s.get("cel") or {}).get("expression")
        if not e:
            raise InvalidClaim(
                f"claim {key}, request {name}: selector #{j}: cel.expression is empty"
            )
        exprs.append((e, f"claim {key}, request {name}: selector #{j}"))
    for e, who in exprs:
        try:
            compile_selector(e)
        except CelCompileError as exc:
            raise InvalidClaim(f"{who}: CEL compile error in {e!r}: {exc}") from None
    mode = r.get("allocationMode") or "ExactCount"
    if mode not in ("ExactCount", "All"):
        raise InvalidClaim(
            f"claim {key}, request {name}: unsupported allocationMode {mode!r} (ExactCount or All)"
        )
    count = int(r.get("count") or 1)
    if count < 1:
        raise InvalidClaim(f"claim {key}, request {name}: count must be at least 1")
    capacity: dict[str, Fraction] = {}
    for cname, v in ((r.get("capacity") or {}).get("requests") or {}).items():
        try:
            capacity[cname] = parse_quantity(v)
        except QuantityError as exc:
            raise InvalidClaim(
                f"claim {key}, request {name}: capacity.requests[{cname}]: {exc}"
            ) from None
    plan = RequestPlan(
        name=name,
        base=base,
        sub=sub,
        expressions=tuple(e for e, _ in exprs),
        all_mode=mode == "All",
        count=count,
        admin=bool(r.get("adminAccess")),
        tolerations=list(r.get("tolerations") or ()),
        capacity=capacity,
        class_name=str(cls_name),
        sources={e: who for e, who in reversed(exprs)},
    )
    if plan.all_mode and r.get("count"):
        plan.count = 1  # ``count`` means nothing with allocationMode All
    plan.index = inv.matching(plan.expressions, deadline)
    plan.min_units = inv.min_units(plan.expressions)
    return plan


def tolerates(tol: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Does toleration ``tol`` tolerate ``taint`` (Kubernetes' rules)?"""
    if tol.get("effect") and tol["effect"] != taint.get("effect"):
        return False
    op = tol.get("operator") or "Equal"
    if not tol.get("key"):
        return op == "Exists"
    if tol["key"] != taint.get("key"):
        return False
    return op == "Exists" or tol.get("value", "") == taint.get("value", "")


def untolerated(device: Device, plan: RequestPlan) -> dict[str, Any] | None:
    """The first ``NoSchedule``/``NoExecute`` taint of ``device`` the request does not tolerate."""
    for taint in device.taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(t, taint) for t in plan.tolerations):
            return taint
    return None
