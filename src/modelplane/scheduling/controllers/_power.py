"""Power budgets: per-device power caps that keep a node's and a rack's sum under budget.

:func:`plan_power_caps` is the policy (pure): every device starts at its TDP; when the sum is
over the budget, the cut is spread over the devices in proportion to their headroom (TDP minus
the lowest cap the device accepts) times a weight that doubles at each lower priority class, so
low-priority load gives up power first; no device goes under its minimum cap. A budget below
the devices' idle draw, or below the sum of their minimum caps, is refused with the reason and
no caps. :class:`PowerController` applies it in the control plane (see its docstring).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from modelplane.api import (
    NODE_POWER_BUDGET_ANNOTATION,
    RACK_LABEL,
    RACK_POWER_BUDGET_ANNOTATION,
)
from modelplane.api.errors import NotFound
from modelplane.control import (
    Controller,
    Request,
    Result,
    Watches,
    commit_status,
    get_condition,
    set_condition,
)
from modelplane.store import Store

from ..allocation._state import WATTS_ATTRIBUTE
from ..workloads._queues import priority_of

__all__ = ["PowerController", "PowerDevice", "PowerPlan", "plan_power_caps", "power_devices"]


@dataclass(frozen=True)
class PowerDevice:
    """One device under a budget: its TDP, idle draw, lowest settable cap and priority."""

    key: str
    tdp_watts: float
    idle_watts: float
    min_cap_watts: float
    priority: int = 0


@dataclass(frozen=True)
class PowerPlan:
    """Caps per device key (all of them, or none with ``reason`` set), and their sum."""

    caps: dict[str, float]
    total_watts: float
    reason: str | None = None  # "BelowIdleDraw" or "BelowMinimumCaps" when refused
    message: str = ""


def plan_power_caps(budget_watts: float, devices: Sequence[PowerDevice]) -> PowerPlan:
    """Caps for ``devices`` whose sum is at most ``budget_watts`` (see the module docstring)."""
    idle = sum(d.idle_watts for d in devices)
    if budget_watts < idle:
        return PowerPlan(
            {},
            0.0,
            "BelowIdleDraw",
            f"the budget of {budget_watts:g} W is below the idle draw of its {len(devices)}"
            f" devices ({idle:g} W): no cap can hold it; raise the budget to at least {idle:g} W",
        )
    floor = sum(d.min_cap_watts for d in devices)
    if budget_watts < floor:
        return PowerPlan(
            {},
            0.0,
            "BelowMinimumCaps",
            f"the budget of {budget_watts:g} W is below the lowest caps its {len(devices)}"
            f" devices accept ({floor:g} W together); raise the budget to at least {floor:g} W",
        )
    caps = {d.key: d.tdp_watts for d in devices}
    cut = sum(caps.values()) - budget_watts
    classes = sorted({d.priority for d in devices}, reverse=True)
    weight = {p: 2.0**rank for rank, p in enumerate(classes)}
    open_ = [d for d in devices if d.tdp_watts > d.min_cap_watts]
    while cut > 1e-9 and open_:
        shares = {d.key: weight[d.priority] * (caps[d.key] - d.min_cap_watts) for d in open_}
        total = sum(shares.values())
        if total <= 0:
            break
        taken = 0.0
        for d in open_:
            take = min(cut * shares[d.key] / total, caps[d.key] - d.min_cap_watts)
            caps[d.key] -= take
            taken += take
        cut -= taken
        open_ = [d for d in open_ if caps[d.key] - d.min_cap_watts > 1e-9]
    # tenths of a watt, rounded down: the sum never passes the budget by rounding
    final = {k: math.floor(v * 10.0) / 10.0 for k, v in caps.items()}
    return PowerPlan(final, round(sum(final.values()), 1))


# --------------------------------------------------------------------------------------------
# the controller

#: device attributes the controller reads: TDP (the allocator's power attribute), idle draw and
#: lowest settable cap (defaults: 20% and 30% of TDP when a driver does not publish them)
IDLE_ATTRIBUTE = "modelplane.dev/idleWatts"
MIN_CAP_ATTRIBUTE = "modelplane.dev/minPowerWatts"
DEFAULT_IDLE_SHARE = 0.2
DEFAULT_MIN_CAP_SHARE = 0.3
#: the priority of a device no claim holds: idle devices give up power before any workload
IDLE_PRIORITY = -(2**31)
CONDITION = "PowerBudget"

JSON = dict[str, Any]


def _number(attrs: Mapping[str, Any], name: str) -> float | None:
    value = attrs.get(name) or attrs.get(name.split("/", 1)[-1])
    if not isinstance(value, Mapping):
        return None
    raw = value.get("int", value.get("string"))
    try:
        return float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def power_devices(node: str, slices: Iterable[JSON], claims: Iterable[JSON]) -> list[PowerDevice]:
    """The devices of ``node`` that publish a TDP (``modelplane.dev/powerWatts``), each with the
    highest priority of the claims holding it (:data:`IDLE_PRIORITY` when none does). Partitions
    (a ``type`` other than ``gpu``, such as MIG devices) are left out: their GPU carries the cap."""
    held: dict[tuple[str, str, str], int] = {}
    for claim in claims:
        results = (((claim.get("status") or {}).get("allocation") or {}).get("devices") or {}).get(
            "results"
        ) or ()
        prio = priority_of(claim)
        for r in results:
            key = (r.get("driver", ""), r.get("pool", ""), r.get("device", ""))
            held[key] = max(held.get(key, IDLE_PRIORITY), prio)
    out: list[PowerDevice] = []
    for s in slices:
        spec = s.get("spec") or {}
        if spec.get("nodeName") != node:
            continue
        driver, pool = spec.get("driver", ""), (spec.get("pool") or {}).get("name", "")
        for d in spec.get("devices") or ():
            attrs = d.get("attributes") or {}
            tdp = _number(attrs, WATTS_ATTRIBUTE)
            if tdp is None or tdp <= 0 or _is_partition(d):
                continue
            idle = _number(attrs, IDLE_ATTRIBUTE) or DEFAULT_IDLE_SHARE * tdp
            low = _number(attrs, MIN_CAP_ATTRIBUTE) or DEFAULT_MIN_CAP_SHARE * tdp
            name = str(d.get("name", ""))
            prio = held.get((driver, pool, name), IDLE_PRIORITY)
            out.append(PowerDevice(f"{driver}/{pool}/{name}", tdp, idle, min(low, tdp), prio))
    return out


def _is_partition(device: Mapping[str, Any]) -> bool:
    attrs = device.get("attributes") or {}
    kind = (attrs.get("type") or {}).get("string")
    return kind not in (None, "gpu")


def parse_budget(annotations: Mapping[str, str], name: str) -> tuple[float | None, str | None]:
    """The budget in annotation ``name`` (None when absent), or an error naming the fix."""
    raw = annotations.get(name)
    if raw is None:
        return None, None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        return None, (
            f"annotation {name}: {raw!r} is not a number of watts above zero; set it to the"
            ' budget in watts (for example "5600") or remove it'
        )
    return value, None


class PowerController(Controller):
    """Keeps each Node's devices under its power budget (and its rack's) with per-device caps.

    Budgets are Node annotations: ``modelplane.dev/power-budget-watts`` (the node) and
    ``modelplane.dev/rack-power-budget-watts`` (the rack of the ``topology.modelplane.dev/rack``
    label; every node of the rack should carry the same value, the smallest one counts). For a
    node with a budget, :func:`plan_power_caps` runs over its devices (the rack's plan first, the
    node's under it), each with the priority of the claim holding it, and the caps go to the
    Node's ``status.power`` (``budgetWatts``, ``capsWatts``, ``devices[] {driver, pool, device,
    capWatts, priority}``) with condition ``PowerBudget=True`` (``WithinBudget``). The node agent
    (``apply``, NVML where a GPU is present) or a simulator reads the caps from there. A budget
    that no caps can hold (below the idle draw, or below the devices' lowest caps) or that is
    not a number sets ``PowerBudget=False`` with the reason and leaves the caps as they were.
    """

    kind = "Node"
    name = "power-budget"
    watches = (
        Watches("ResourceClaim", lambda obj: _claim_nodes(obj)),
        Watches("ResourceSlice", lambda obj: _slice_node(obj)),
    )

    def __init__(
        self, store: Store, *, apply: Callable[[str, dict[str, float]], None] | None = None
    ) -> None:
        # a claim placed on another node of the rack changes this node's share: look again now
        # and then, besides the watches of this node's own claims and slices
        super().__init__(store, resync=30.0)
        self._apply = apply

    def reconcile(self, request: Request) -> Result:
        try:
            node = self.store.get("Node", "", request.name)
        except NotFound:
            return Result()
        annotations = _meta(node).get("annotations") or {}
        budget, error = parse_budget(annotations, NODE_POWER_BUDGET_ANNOTATION)
        rack_budget, rack_error = parse_budget(annotations, RACK_POWER_BUDGET_ANNOTATION)
        status = copy.deepcopy(node.get("status") or {})
        if error or rack_error:
            return self._refuse(node, status, "InvalidBudget", str(error or rack_error))
        if budget is None and rack_budget is None:
            if get_condition(status, CONDITION) is not None or "power" in status:
                status.pop("power", None)
                status["conditions"] = [
                    c for c in status.get("conditions") or () if c.get("type") != CONDITION
                ]
                commit_status(self.store, node, status, component=self.name, condition=None)
            return Result()
        slices = self.store.list("ResourceSlice").items
        claims = self.store.list("ResourceClaim").items
        devices = power_devices(request.name, slices, claims)
        if rack_budget is not None:
            plan = self._rack_plan(node, rack_budget, slices, claims)
            if plan.reason:
                return self._refuse(node, status, plan.reason, f"rack: {plan.message}")
            devices = [replace(d, tdp_watts=min(d.tdp_watts, plan.caps[d.key])) for d in devices]
        limit = budget if budget is not None else sum(d.tdp_watts for d in devices)
        plan = plan_power_caps(limit, devices)
        if plan.reason:
            return self._refuse(node, status, plan.reason, plan.message)
        return self._commit(node, status, limit, plan, devices)

    def _rack_plan(
        self, node: JSON, budget: float, slices: list[JSON], claims: list[JSON]
    ) -> PowerPlan:
        rack = (_meta(node).get("labels") or {}).get(RACK_LABEL)
        members = [node]
        if rack:
            members = [
                n for n in self.store.list("Node", label_selector=f"{RACK_LABEL}={rack}").items
            ]
            for n in members:  # the smallest budget any node of the rack states counts
                other, _ = parse_budget(
                    _meta(n).get("annotations") or {}, RACK_POWER_BUDGET_ANNOTATION
                )
                budget = min(budget, other) if other is not None else budget
        devices = [d for n in members for d in power_devices(_meta(n)["name"], slices, claims)]
        return plan_power_caps(budget, devices)

    def _commit(
        self, node: JSON, status: JSON, budget: float, plan: PowerPlan, devices: list[PowerDevice]
    ) -> Result:
        rows = []
        for d in devices:
            driver, pool, name = d.key.split("/", 2)
            row: JSON = {"driver": driver, "pool": pool, "device": name}
            row["capWatts"] = plan.caps[d.key]
            if d.priority != IDLE_PRIORITY:
                row["priority"] = d.priority
            rows.append(row)
        status["power"] = {"budgetWatts": budget, "capsWatts": plan.total_watts, "devices": rows}
        set_condition(
            status,
            CONDITION,
            True,
            "WithinBudget",
            f"{len(rows)} devices capped at {plan.total_watts:g} W together, within {budget:g} W",
        )
        if (
            commit_status(self.store, node, status, component=self.name, condition=CONDITION)
            is None
        ):
            return Result(requeue_after=0.5)
        if self._apply is not None:
            self._apply(_meta(node)["name"], {r["device"]: r["capWatts"] for r in rows})
        return Result()

    def _refuse(self, node: JSON, status: JSON, reason: str, message: str) -> Result:
        # the caps already in status.power (if any) stay: nothing else is disturbed
        set_condition(status, CONDITION, False, reason, message)
        if (
            commit_status(self.store, node, status, component=self.name, condition=CONDITION)
            is None
        ):
            return Result(requeue_after=0.5)  # the Node changed meanwhile: read it again
        return Result()


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = obj.get("metadata") or {}
    return meta


def _claim_nodes(claim: JSON) -> list[Request]:
    selector = ((claim.get("status") or {}).get("allocation") or {}).get("nodeSelector") or {}
    names: list[Request] = []
    for term in selector.get("nodeSelectorTerms") or ():
        for f in term.get("matchFields") or ():
            if f.get("key") == "metadata.name":
                names.extend(Request("", v) for v in f.get("values") or ())
    return names


def _slice_node(s: JSON) -> list[Request]:
    node = (s.get("spec") or {}).get("nodeName")
    return [Request("", node)] if node else []
