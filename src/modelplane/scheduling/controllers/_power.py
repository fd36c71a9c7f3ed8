"""Power budgets: per-device power caps that keep a node's and a rack's sum under budget.

:func:`plan_power_caps` is the policy (pure): every device starts at its TDP; when the sum is
over the budget, the cut is spread over the devices in proportion to their headroom (TDP minus
the lowest cap the device accepts) times a weight that doubles at each lower priority class, so
low-priority load gives up power first; no device goes under its minimum cap. A budget below
the devices' idle draw, or below the sum of their minimum caps, is refused with the reason and
no caps. :class:`PowerController` applies it in the control plane (see its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PowerDevice", "PowerPlan", "plan_power_caps"]


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
