"""Workloads and gangs: a ResourceClaim, or a Job's replicas placed all together, near each other.

A :class:`Workload` is what a queue admits: one claim, or the ``spec.replicas`` replica claims of
a Job (each ``spec.claim``). A gang (``gang: true``, the default) is placed atomically: replicas are
allocated one after the other into the :class:`AllocatedState` and, when one does not fit, the
ones already placed are released again. ``topology.required`` keeps every replica inside one
host, rack or block (the Node labels of :data:`modelplane.api.TOPOLOGY_LABELS`);
``topology.preferred`` tries one domain of the preferred level first, then relaxes level by level
(rack, then block), finally to the whole cluster. Inside one level the
domain that fits most tightly is tried first, so empty racks stay whole for the gangs that need
them.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelplane.api import ARRIVAL_ANNOTATION as ARRIVAL
from modelplane.api import JOB_LABEL, TOPOLOGY_LABELS

from .._errors import SchedulingInputError
from ..allocation._allocator import AllocationResult, Unschedulable, allocate, allocate_many
from ..allocation._inventory import Inventory
from ..allocation._scoring import Policy
from ..allocation._state import AllocatedState
from ._queues import priority_of, queue_of

__all__ = [
    "JOB_LABEL",
    "TOPOLOGY_LEVELS",
    "GangPlacement",
    "GangPlacer",
    "Workload",
    "workloads_from",
]


#: Job topology level -> Node label
TOPOLOGY_LEVELS = TOPOLOGY_LABELS
_ORDER = tuple(TOPOLOGY_LEVELS)


@dataclass(slots=True)
class Workload:
    """What a queue admits: one claim, or the replica claims of a Job placed as one gang."""

    key: str  # namespace/name of the claim or the job
    claims: list[dict[str, Any]]  # one ResourceClaim per replica
    queue: str | None = None  # namespace/name of the Queue
    priority: int = 0
    gang: bool = False
    required: str | None = None  # host | rack | block
    preferred: str | None = None
    arrival: float = 0.0
    job: str | None = None  # the Job a replica workload belongs to
    source: Mapping[str, Any] = field(default_factory=dict)
    #: the claims of one consumer (``modelplane.dev/consumer``): one node, one search that
    #: backtracks across them (:func:`allocate_many`), not one replica per claim
    together: bool = False

    @property
    def replicas(self) -> int:
        return len(self.claims)


def _float(value: Any, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def workloads_from(obj: Mapping[str, Any]) -> list[Workload]:
    """Workloads of a ResourceClaim or Job dict.

    A gang Job is one workload of ``spec.replicas`` claims named ``<job>-<i>``; a Job with
    ``gang: false`` is one workload per replica. Raises :class:`SchedulingInputError` naming the
    field when the object cannot be scheduled.
    """
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or "default"
    name = meta.get("name")
    if not name:
        raise SchedulingInputError(f"{obj.get('kind', 'object')} without metadata.name")
    key = f"{ns}/{name}"
    annotations = dict(meta.get("annotations") or {})
    arrival = _float(annotations.get(ARRIVAL), 0.0)
    queue, priority = queue_of(obj), priority_of(obj)
    if obj.get("kind") != "Job":
        return [Workload(key, [dict(obj)], queue, priority, arrival=arrival, source=obj)]
    spec = obj.get("spec") or {}
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 1:
        raise SchedulingInputError(f"Job {key}: spec.replicas must be a whole number >= 1")
    devices = spec.get("claim")
    if not devices or not devices.get("requests"):
        raise SchedulingInputError(
            f"Job {key}: spec.claim.requests is required: the devices each replica needs"
        )
    topology = spec.get("topology") or {}
    required, preferred = topology.get("required"), topology.get("preferred")
    for field_name, level in (("required", required), ("preferred", preferred)):
        if level is not None and level not in TOPOLOGY_LEVELS:
            raise SchedulingInputError(
                f"Job {key}: spec.topology.{field_name} is {level!r}; use host, rack or block"
            )
    claims = [
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {
                "name": f"{name}-{i}",
                "namespace": ns,
                "labels": {JOB_LABEL: str(name)},
                "annotations": annotations,
            },
            "spec": {"devices": devices},
        }
        for i in range(replicas)
    ]
    gang = bool(spec.get("gang", True))
    if gang:
        return [
            Workload(key, claims, queue, priority, True, required, preferred, arrival, None, obj)
        ]
    return [
        Workload(_key(c), [c], queue, priority, arrival=arrival, job=key, source=obj)
        for c in claims
    ]


def _key(claim: Mapping[str, Any]) -> str:
    meta = claim.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


@dataclass(slots=True)
class GangPlacement:
    """Every replica placed; ``domain`` names the topology domain they share, if one was asked."""

    workload: Workload
    results: list[AllocationResult]
    domain: str | None = None  # "rack rack-003"

    def __bool__(self) -> bool:
        return True


class GangPlacer:
    """Places workloads on one :class:`Inventory`; caches topology domains and their views."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._domains: dict[str, dict[str, list[str]]] = {}
        self._views: dict[tuple[str, str], Inventory] = {}

    def domains(self, level: str) -> dict[str, list[str]]:
        """Domain value -> node names, for ``host``, ``rack`` or ``block``."""
        hit = self._domains.get(level)
        if hit is None:
            label = TOPOLOGY_LEVELS[level]
            hit = {}
            for name, info in self.inventory.nodes.items():
                value = info.labels.get(label) or (name if level == "host" else "")
                if value:
                    hit.setdefault(value, []).append(name)
            self._domains[level] = hit
        return hit

    def _view(self, level: str, value: str) -> Inventory:
        # The same inventory restricted to one domain's nodes: it shares the selector caches,
        # so a decision inside it costs what a decision over those nodes costs.
        hit = self._views.get((level, value))
        if hit is None:
            nodes = {n: self.inventory.nodes[n] for n in self.domains(level)[value]}
            hit = self._views[(level, value)] = dataclasses.replace(self.inventory, nodes=nodes)
        return hit

    def place(
        self,
        w: Workload,
        state: AllocatedState,
        policy: Policy,
        deadline_ms: float = 50.0,
    ) -> GangPlacement | Unschedulable:
        """Place every replica of ``w`` into ``state``, or none of them.

        On success the replicas are recorded in ``state`` under their claim keys (undo with
        :meth:`unplace`); on failure ``state`` is as it was and the reason says why.
        """
        inv = self.inventory
        if w.together:
            return self._place_together(w, inv, state, policy, deadline_ms)
        if w.replicas == 1 or (not w.required and not w.preferred):
            return self._place_in(w, inv, state, policy, deadline_ms, None)[0]
        started = time.perf_counter()
        budget_ms = deadline_ms * (w.replicas + 1)
        probe = allocate(
            w.claims[0], inv, allocated_state=state, deadline_ms=deadline_ms, policy=policy
        )
        if not isinstance(probe, AllocationResult):
            probe.reason = f"gang of {w.replicas} replicas: no replica fits: {probe.reason}"
            probe.claim = w.key
            return probe
        units = sum(
            r.device.units
            for r in probe.devices
            if not r.admin_access and not r.device.allow_multiple
        )
        if w.required:
            levels: list[str] = [w.required]
        else:
            assert w.preferred is not None
            levels = [*_ORDER[_ORDER.index(w.preferred) :], "cluster"]
        last: Unschedulable | None = None
        for level in levels:
            if level == "cluster":
                return self._place_in(w, inv, state, policy, deadline_ms, None, last)[0]
            found = self._place_at(w, level, units, state, policy, deadline_ms, started, budget_ms)
            if isinstance(found, GangPlacement):
                return found
            last = found
            if found.timed_out:
                break
        assert last is not None
        return last

    def _place_at(
        self,
        w: Workload,
        level: str,
        units: float,
        state: AllocatedState,
        policy: Policy,
        deadline_ms: float,
        started: float,
        budget_ms: float,
    ) -> GangPlacement | Unschedulable:
        n = w.replicas
        info = self.inventory.nodes
        ranked: list[tuple[float, str, int]] = []
        best_room, best_domain = -1, ""
        for value, nodes in self.domains(level).items():
            free_total = 0.0
            room = 0
            for node in nodes:
                free = info[node].units - state.node_units.get(node, 0.0)
                free_total += free
                room += n if units <= 0 else math.floor((free + 1e-9) / units)
            if room > best_room or (room == best_room and value < best_domain):
                best_room, best_domain = room, value
            if room >= n:
                ranked.append((free_total, value, room))
        total = len(info)
        if not ranked:
            reason = (
                f"gang of {n} replicas: no {level} has room for {n} replicas of "
                f"{units:g} devices each (best {level} {best_domain} has room for "
                f"{max(best_room, 0)})"
            )
            return Unschedulable(w.key, reason, total)
        ranked.sort()
        most, most_domain, why = -1, "", ""
        for _free, value, _room in ranked:
            if (time.perf_counter() - started) * 1000.0 > budget_ms:
                ms = (time.perf_counter() - started) * 1000.0
                return Unschedulable(
                    w.key,
                    f"gang of {n} replicas: gave up after {ms:.0f} ms trying {level}s",
                    total,
                    timed_out=True,
                    elapsed_ms=ms,
                )
            view = self._view(level, value)
            found, placed = self._place_in(w, view, state, policy, deadline_ms, f"{level} {value}")
            if isinstance(found, GangPlacement):
                return found
            if placed > most:
                most, most_domain, why = placed, value, found.reason
        return Unschedulable(
            w.key,
            f"gang of {n} replicas: no {level} could hold all {n} (best {level} "
            f"{most_domain} held {most}: {why})",
            total,
        )

    def _place_in(
        self,
        w: Workload,
        inv: Inventory,
        state: AllocatedState,
        policy: Policy,
        deadline_ms: float,
        domain: str | None,
        earlier: Unschedulable | None = None,
    ) -> tuple[GangPlacement | Unschedulable, int]:
        placed: list[AllocationResult] = []
        for claim in w.claims:
            result = allocate(
                claim, inv, allocated_state=state, deadline_ms=deadline_ms, policy=policy
            )
            if not isinstance(result, AllocationResult):
                for done in placed:
                    state.release(done.claim)
                if w.replicas > 1:
                    prefix = f"gang of {w.replicas} replicas: placed {len(placed)}, then "
                    if earlier is not None:
                        prefix = f"{earlier.reason}; anywhere: placed {len(placed)}, then "
                    result.reason = prefix + result.reason
                    result.claim = w.key
                return result, len(placed)
            state.add(result.claim, result)
            placed.append(result)
        return GangPlacement(w, placed, domain), len(placed)

    @staticmethod
    def _place_together(
        w: Workload, inv: Inventory, state: AllocatedState, policy: Policy, deadline_ms: float
    ) -> GangPlacement | Unschedulable:
        results = allocate_many(
            w.claims,
            inv,
            allocated_state=state,
            deadline_ms=deadline_ms * w.replicas,
            policy=policy,
        )
        if isinstance(results, Unschedulable):
            name = w.key.partition("/")[2]
            results.reason = (
                f"the {w.replicas} claims of consumer {name} fit nowhere together: {results.reason}"
            )
            results.claim = w.key
            return results
        for r in results:
            state.add(r.claim, r)
        return GangPlacement(w, results, None)

    @staticmethod
    def unplace(state: AllocatedState, placement: GangPlacement) -> None:
        """Release every replica of ``placement`` from ``state``."""
        for r in placement.results:
            state.release(r.claim)
