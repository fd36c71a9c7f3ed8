"""Queues: quotas per device class and per resource, cohorts with borrowing and lending, fair sharing.

The semantics follow Kueue's ClusterQueue, on the ``Queue`` objects of ``modelplane.dev``:

- a quota with ``deviceClass`` counts the devices allocated through requests of that class; a
  quota with ``resource`` counts a device capacity (``gpu.nvidia.com/memory``: the capacity of
  each device taken whole, or what a shared device's allocation consumed) or a shared counter
  (``gpu.nvidia.com/multiprocessors``); a counter family ``memorySlice0..7`` is counted under its
  stem (``gpu.nvidia.com/memorySlice``), so MIG quotas are counted in memory slices. Keys a queue
  has no quota for are not limited by it;
- ``nominal`` is the queue's own; a queue without cohort never goes beyond it. In a cohort the
  members' lendable quota (``lendingLimit``, or all of ``nominal`` when unset) forms a pool: a
  queue may use up to ``nominal + borrowingLimit`` (unbounded when unset) as long as what all
  members use beyond their guaranteed part (``nominal - lendingLimit``) fits the pool;
- the fair share of a queue is its dominant resource share: the largest fraction of the cohort's
  pool it borrows (usage above nominal), divided by its ``weight`` (Kueue's fair sharing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from modelplane.api import (
    PRIORITY_ANNOTATION,
    QUEUE_ANNOTATION,
    QuantityError,
    format_quantity,
    parse_quantity,
)

from .._errors import SchedulingInputError

if TYPE_CHECKING:
    from ..allocation._allocator import AllocationResult

__all__ = [
    "PRIORITY_ANNOTATION",
    "QUEUE_ANNOTATION",
    "QueueSet",
    "QueueState",
    "Usage",
    "claim_usage",
    "priority_of",
    "queue_of",
    "requested_usage",
]


#: Quota key -> amount: device class names count devices; ``driver/name`` keys count capacity
#: or counters.
Usage = dict[str, Fraction]

_FAMILY = re.compile(r"^(.*\D)\d+$")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def queue_of(obj: Mapping[str, Any]) -> str | None:
    """The ``namespace/name`` of the Queue a ResourceClaim or Job waits in, if it names one.

    A Job names it in ``spec.queue``; a claim in the ``modelplane.dev/queue`` annotation (or a
    ``spec.queue`` field). A bare name is in the object's own namespace.
    """
    meta = _meta(obj)
    name = ((obj.get("spec") or {}).get("queue")) or (meta.get("annotations") or {}).get(
        QUEUE_ANNOTATION
    )
    if not name:
        return None
    name = str(name)
    return name if "/" in name else f"{meta.get('namespace') or 'default'}/{name}"


def priority_of(obj: Mapping[str, Any]) -> int:
    """A Job's ``spec.priority`` or a claim's ``modelplane.dev/priority`` annotation (default 0)."""
    spec_priority = (obj.get("spec") or {}).get("priority")
    value = (
        spec_priority
        if spec_priority is not None
        else (_meta(obj).get("annotations") or {}).get(PRIORITY_ANNOTATION)
    )
    if value is None:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SchedulingInputError(
            f"{_meta(obj).get('name', '?')}: priority {value!r} is not an integer; "
            f"set spec.priority or the {PRIORITY_ANNOTATION} annotation to a whole number"
        ) from None


def _request_classes(claim: Mapping[str, Any]) -> dict[str, str]:
    """Request (or ``request/subrequest``) name -> deviceClassName."""
    out: dict[str, str] = {}
    for req in ((claim.get("spec") or {}).get("devices") or {}).get("requests") or ():
        name = str(req.get("name", ""))
        if req.get("exactly"):
            out[name] = str(req["exactly"].get("deviceClassName", ""))
        for sub in req.get("firstAvailable") or ():
            out[f"{name}/{sub.get('name', '')}"] = str(sub.get("deviceClassName", ""))
    return out


def requested_usage(claim: Mapping[str, Any]) -> Usage:
    """Devices per class a claim asks for before it is placed (a lower bound: ``All`` requests
    and later ``firstAvailable`` alternatives are not counted)."""
    out: Usage = {}
    for req in ((claim.get("spec") or {}).get("devices") or {}).get("requests") or ():
        body = req.get("exactly")
        if body is None or body.get("adminAccess"):
            continue
        if (body.get("allocationMode") or "ExactCount") != "ExactCount":
            continue
        cls = str(body.get("deviceClassName", ""))
        out[cls] = out.get(cls, Fraction(0)) + int(body.get("count") or 1)
    return out


def claim_usage(claim: Mapping[str, Any], result: AllocationResult) -> Usage:
    """What an allocation counts against quotas: devices per class, capacity and counters."""
    classes = _request_classes(claim)
    out: Usage = {}

    def add(key: str, value: Fraction) -> None:
        out[key] = out.get(key, Fraction(0)) + value

    for r in result.devices:
        if r.admin_access:
            continue
        dev = r.device
        add(classes.get(r.request, ""), Fraction(1))
        capacity = r.consumed if dev.allow_multiple else dev.capacity
        for name, value in capacity.items():
            add(name, Fraction(value))
        if dev.allow_multiple:
            continue
        for (driver, _pool, _set, counter), value in dev.consumes:
            key = f"{driver}/{counter}"
            if key not in capacity:
                add(key, Fraction(value))
            stem = _FAMILY.match(counter)
            if stem:
                add(f"{driver}/{stem.group(1)}", Fraction(value))
    out.pop("", None)
    return out


def add_usage(a: Usage, b: Usage, sign: int = 1) -> None:
    for k, v in b.items():
        a[k] = a.get(k, Fraction(0)) + sign * v


@dataclass(slots=True)
class QuotaLimit:
    nominal: Fraction
    borrowing_limit: Fraction | None
    lending_limit: Fraction | None

    @property
    def guaranteed(self) -> Fraction:
        """What the queue keeps for itself and never lends."""
        return self.nominal - self.lending_limit if self.lending_limit is not None else Fraction(0)

    @property
    def lendable(self) -> Fraction:
        return self.lending_limit if self.lending_limit is not None else self.nominal


@dataclass(slots=True)
class QueueState:
    """One Queue: its quotas, cohort, weight, preemption rules and what it uses now."""

    key: str  # namespace/name
    quotas: dict[str, QuotaLimit]
    cohort: str | None
    weight: int
    within_queue: str  # Never | LowerPriority | LowerOrNewerEqualPriority
    reclaim_within_cohort: str  # Never | LowerPriority | Any
    usage: Usage = field(default_factory=dict)

    def borrowing(self, keys: Iterable[str] | None = None) -> bool:
        """Uses more than nominal of some quota (of ``keys`` when given)."""
        for k in self.quotas if keys is None else keys:
            q = self.quotas.get(k)
            if q is not None and self.usage.get(k, 0) > q.nominal:
                return True
        return False


def _quantity(value: Any, where: str) -> Fraction:
    try:
        return parse_quantity(value)
    except QuantityError as exc:
        raise SchedulingInputError(f"{where}: {exc}") from None


def _parse_queue(obj: Mapping[str, Any]) -> QueueState:
    meta = _meta(obj)
    key = f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"
    if not meta.get("name"):
        raise SchedulingInputError("Queue without metadata.name")
    spec = obj.get("spec") or {}
    quotas: dict[str, QuotaLimit] = {}
    for i, q in enumerate(spec.get("quotas") or ()):
        where = f"Queue {key}: spec.quotas[{i}]"
        subject = q.get("deviceClass") or q.get("resource")
        if not subject or (q.get("deviceClass") and q.get("resource")):
            raise SchedulingInputError(f"{where}: set exactly one of deviceClass or resource")
        if q.get("nominal") is None:
            raise SchedulingInputError(f"{where}.nominal is required")
        borrow, lend = q.get("borrowingLimit"), q.get("lendingLimit")
        quotas[str(subject)] = QuotaLimit(
            _quantity(q["nominal"], f"{where}.nominal"),
            None if borrow is None else _quantity(borrow, f"{where}.borrowingLimit"),
            None if lend is None else _quantity(lend, f"{where}.lendingLimit"),
        )
    preemption = spec.get("preemption") or {}
    return QueueState(
        key=key,
        quotas=quotas,
        cohort=spec.get("cohort") or None,
        weight=int(spec.get("weight", 1)),
        within_queue=str(preemption.get("withinQueue") or "Never"),
        reclaim_within_cohort=str(preemption.get("reclaimWithinCohort") or "Never"),
    )


def _fmt(key: str, value: Fraction) -> str:
    return (
        str(value.numerator)
        if value.denominator == 1 and "/" not in key
        else format_quantity(value)
    )


class QueueSet:
    """All Queues of a cluster with their usage; answers "does this fit" and "who is fairest"."""

    def __init__(self, queues: Iterable[Mapping[str, Any]] = ()) -> None:
        self.queues: dict[str, QueueState] = {}
        for obj in queues:
            q = _parse_queue(obj)
            self.queues[q.key] = q
        self.cohorts: dict[str, list[QueueState]] = {}
        for q in self.queues.values():
            if q.cohort:
                self.cohorts.setdefault(q.cohort, []).append(q)

    def __contains__(self, key: object) -> bool:
        return key in self.queues

    def __getitem__(self, key: str) -> QueueState:
        return self.queues[key]

    def __bool__(self) -> bool:
        return bool(self.queues)

    def charge(self, queue: str, usage: Usage, sign: int = 1) -> None:
        """Count ``usage`` against ``queue`` (``sign=-1`` gives it back)."""
        add_usage(self.queues[queue].usage, usage, sign)

    def pool(self, cohort: str, key: str) -> Fraction:
        """The cohort's lendable quota of ``key``."""
        return sum(
            (m.quotas[key].lendable for m in self.cohorts.get(cohort, ()) if key in m.quotas),
            Fraction(0),
        )

    def why_not(self, queue: str, add: Usage) -> str | None:
        """None when ``queue`` can take ``add`` more now; otherwise why not, naming the quota."""
        q = self.queues[queue]
        for key, amount in add.items():
            limit = q.quotas.get(key)
            if limit is None or not amount:
                continue
            new = q.usage.get(key, Fraction(0)) + amount
            if new <= limit.nominal and q.cohort is None:
                continue
            used = f"{_fmt(key, q.usage.get(key, Fraction(0)))} in use + {_fmt(key, amount)}"
            if q.cohort is None:
                return (
                    f"queue {queue}: {key}: {used} requested exceeds nominal quota "
                    f"{_fmt(key, limit.nominal)}"
                )
            if limit.borrowing_limit is not None and new > limit.nominal + limit.borrowing_limit:
                return (
                    f"queue {queue}: {key}: {used} requested exceeds nominal quota "
                    f"{_fmt(key, limit.nominal)} plus borrowingLimit "
                    f"{_fmt(key, limit.borrowing_limit)}"
                )
            over = Fraction(0)
            for m in self.cohorts[q.cohort]:
                ml = m.quotas.get(key)
                if ml is None:
                    continue
                u = m.usage.get(key, Fraction(0)) + (amount if m is q else 0)
                over += max(Fraction(0), u - ml.guaranteed)
            pool = self.pool(q.cohort, key)
            if over > pool and new <= limit.nominal:
                return (
                    f"queue {queue}: {key}: {used} requested is within nominal quota "
                    f"{_fmt(key, limit.nominal)}, but cohort {q.cohort} has lent it out "
                    f"({_fmt(key, over - amount)} of pool {_fmt(key, pool)} in use); "
                    "set preemption.reclaimWithinCohort to take it back"
                )
            if over > pool:
                return (
                    f"queue {queue}: {key}: {used} requested exceeds what cohort "
                    f"{q.cohort} can lend (pool {_fmt(key, pool)}, "
                    f"{_fmt(key, over - amount)} of it in use)"
                )
        return None

    def share(self, queue: str) -> float:
        """Dominant resource share: the largest fraction of the cohort pool the queue borrows,
        divided by its weight (0 when it borrows nothing; infinite for weight 0 when borrowing)."""
        q = self.queues[queue]
        if q.cohort is None:
            return 0.0
        best = 0.0
        for key, limit in q.quotas.items():
            borrowed = q.usage.get(key, Fraction(0)) - limit.nominal
            if borrowed <= 0:
                continue
            pool = self.pool(q.cohort, key)
            best = max(best, float(borrowed / pool) if pool else float("inf"))
        if not best:
            return 0.0
        return best / q.weight if q.weight else float("inf")

    def within_nominal(self, queue: str, add: Usage) -> bool:
        q = self.queues[queue]
        return all(
            q.usage.get(k, Fraction(0)) + v <= q.quotas[k].nominal
            for k, v in add.items()
            if k in q.quotas
        )

    def usage_report(self, queue: str) -> dict[str, str]:
        q = self.queues[queue]
        return {k: _fmt(k, q.usage.get(k, Fraction(0))) for k in q.quotas}
