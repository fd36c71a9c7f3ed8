"""``ResourceClaimController``: allocation of ResourceClaims in the control plane.

The controller keeps an :class:`~modelplane.scheduling.Inventory` built from its informers'
caches of ResourceSlices, DeviceClasses and Nodes (rebuilt when any of them changes: a change of
those kinds enqueues one :data:`INVENTORY` request, and a burst of changes folds into one
rebuild) and an :class:`~modelplane.scheduling.AllocatedState` of the allocations it knows.

For one claim, ``reconcile``:

* allocates a pending claim with :func:`~modelplane.scheduling.allocate` and writes
  ``status.allocation`` as Kubernetes does (``devices.results[] {request, driver, pool, device}``
  and ``nodeSelector``), condition ``Allocated=True`` and a ``Normal`` Event ``Allocated``;
* marks a claim that fits nowhere ``Allocated=False`` with the aggregated reason ("0/3 nodes are
  available: ...") and a ``Warning`` Event ``FailedScheduling``; it is tried again with
  exponential backoff and whenever the inventory changes or another claim frees devices;
* releases the devices of a claim that is deleted, and deletes a claim whose owner (any
  ``metadata.ownerReferences`` entry) is gone;
* re-places a claim whose device was tainted ``NoExecute`` (not tolerated), whose node's
  ``Ready`` condition became False or Unknown (its agent lost: ``_lifecycle.py``) or whose Node
  was deleted: the old devices are released, new ones are allocated, and the status and a ``Warning`` Event ``Rescheduled`` say what happened
  ("device gpu-3 on node-a was tainted NoExecute (...); re-placed on node-b: gpu-0").

Workload policy (see ``_admitting.py``): claims that name a Queue (the
``modelplane.dev/queue`` annotation; a Job's ``spec.queue``) and the replica claims of a gang Job
are admitted through an :class:`~modelplane.scheduling.Admission` rebuilt from the store's Queues
and allocations: quotas per queue and cohort, fair-sharing order among pending work, preemption
(the victim's allocation is removed, its condition ``Admitted=False, reason Preempted`` names the
preemptor, a ``Warning`` Event ``Preempted`` is recorded and it waits again), gangs placed all or
none with the Job's ``spec.topology``. Work without a queue that is not a gang is placed as before.
Nodes with ``spec.unschedulable: true`` (cordoned) get no new allocations; what runs there stays.

Decisions are made one at a time (one worker), as kube-scheduler does.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from modelplane.api import NODE_LEASE_SECONDS, lookup
from modelplane.api.errors import ModelplaneError, NotFound
from modelplane.control import (
    Controller,
    Request,
    Result,
    StatusEvent,
    Watches,
    commit_status,
    get_condition,
    record_event,
    set_condition,
)
from modelplane.scheduling.controllers._metrics import (
    ATTEMPTS,
    COLLECTOR,
    DECISION_TIME,
    Snapshot,
    by_node,
)
from modelplane.store import Store

from .._errors import SchedulingInputError
from ..allocation._allocator import (
    AllocationResult,
    Unschedulable,
    allocate,
    allocate_many,
)
from ..allocation._inventory import Inventory
from ..allocation._plans import tolerates
from ..allocation._scoring import Policy, policy_named
from ..allocation._state import AllocatedState
from ..workloads._admitting import AdmittingMixin
from ..workloads._workloads import claim_key, consumer_claims, consumer_key

__all__ = ["ALLOCATED", "INVENTORY", "ResourceClaimController", "scheduling_controllers"]

log = logging.getLogger("modelplane.scheduling.controller")

#: the request that stands for "the device inventory changed" (no claim lives in namespace "")
INVENTORY = Request("", "<inventory>")
#: the claim condition this controller owns
ALLOCATED = "Allocated"
#: the taint a cordoned Node's devices carry inside the scheduler (as Kubernetes taints the Node)
CORDON_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}

JSON = dict[str, Any]


def _inventory_changed(_obj: JSON) -> list[Request]:
    return [INVENTORY]


def _key(claim: Mapping[str, Any]) -> str:
    meta = claim.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def _not_ready(node: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Node's Ready condition when it says False or Unknown (its agent lost: see
    ``_lifecycle.py``); None when it is True or absent."""
    cond = get_condition(node.get("status"), "Ready")
    return cond if cond is not None and cond.get("status") in ("False", "Unknown") else None


class ResourceClaimController(AdmittingMixin, Controller):
    """Allocates ResourceClaims over the published devices; see the module docstring.

    ``policy`` is a policy name (``modelplane``, ``first-fit``, ``binpack``) or a
    :class:`~modelplane.scheduling.Policy`; ``deadline_ms`` bounds each decision;
    ``retry`` is (first, longest) wait in seconds before an unschedulable claim is tried again
    without any change in the inventory.
    """

    kind = "ResourceClaim"
    name = "resourceclaim-controller"
    watches = (
        Watches("ResourceSlice", _inventory_changed),
        Watches("DeviceClass", _inventory_changed),
        Watches("Node", _inventory_changed),
        Watches("Queue", _inventory_changed),
    )

    def __init__(
        self,
        store: Store,
        *,
        policy: str | Policy = "modelplane",
        deadline_ms: float = 50.0,
        retry: tuple[float, float] = (1.0, 60.0),
        resync: float | None = 60.0,
    ) -> None:
        super().__init__(store, workers=1, resync=resync)
        self.policy = policy_named(policy) if isinstance(policy, str) else policy
        self.deadline_ms = deadline_ms
        self.retry = retry
        self._reset()

    def _reset(self) -> None:
        self._inventory: Inventory | None = None
        self._state: AllocatedState | None = None
        #: claim key -> the allocation this controller knows the claim holds
        self._held: dict[str, JSON] = {}
        self._failures: dict[str, int] = {}
        #: nodes seen as Node objects: one that disappears takes its devices with it
        self._seen_nodes: set[str] = set()
        #: node -> why its devices are out of the inventory (not Ready, removed)
        self._down: dict[str, str] = {}
        #: nodes with spec.unschedulable: their devices take no new allocations
        self._cordoned: set[str] = set()
        self._reset_admission()

    def start(self) -> None:
        self._reset()  # a new term of leadership starts from what the store says
        super().start()
        COLLECTOR.use(self._snapshot)  # /metrics reads this controller's caches

    def stop(self, timeout: float | None = None) -> bool:
        if COLLECTOR.source == self._snapshot:
            COLLECTOR.use(None)
        return super().stop(timeout)

    def _snapshot(self) -> Snapshot:
        """Pending claims and devices by driver and node, for a scrape of ``/metrics``."""
        try:
            claims = self.informer().list()
        except RuntimeError:  # stopped between the scrape and here
            return 0, []
        pending = sum(1 for c in claims if not (c.get("status") or {}).get("allocation"))
        held = {
            (str(r.get("driver")), str(r.get("pool")), str(r.get("device")))
            for allocation in list(self._held.values())
            for r in (allocation.get("devices") or {}).get("results") or ()
        }
        inventory = self._inventory
        return pending, by_node(iter(inventory.devices), held) if inventory is not None else []

    # -- the inventory --------------------------------------------------------------------------

    def _rebuild(self) -> None:
        nodes = self.informer("Node").list()
        present = {str(n["metadata"]["name"]) for n in nodes}
        down: dict[str, str] = {}
        for n in nodes:
            cond = _not_ready(n)
            if cond is not None:
                why = cond.get("message") or cond.get("reason") or "Ready=False"
                down[str(n["metadata"]["name"])] = f"is not Ready ({why})"
        for gone in self._seen_nodes - present:
            down[gone] = "was removed"
        self._seen_nodes |= present
        self._down = down
        self._cordoned = {
            str(n["metadata"]["name"]) for n in nodes if (n.get("spec") or {}).get("unschedulable")
        }
        slices = [
            _cordoned(s) if (s.get("spec") or {}).get("nodeName") in self._cordoned else s
            for s in self.informer("ResourceSlice").list()
            if (s.get("spec") or {}).get("nodeName") not in down
        ]
        classes = self.informer("DeviceClass").list()
        usable = [n for n in nodes if str(n["metadata"]["name"]) not in down]
        try:
            inventory = Inventory.from_objects(slices, classes, usable)
        except SchedulingInputError:
            inventory = Inventory.from_objects(_good_slices(slices, classes), classes, usable)
        if self._inventory is None:
            # the first build: adopt every allocation already written (a previous leader's)
            for claim in self.informer().list():
                allocation = (claim.get("status") or {}).get("allocation")
                if allocation:
                    self._held[_key(claim)] = allocation
        self._inventory = inventory
        self._state = AllocatedState.from_claims(
            inventory,
            (
                {
                    "metadata": {"namespace": k.partition("/")[0], "name": k.partition("/")[2]},
                    "status": {"allocation": a},
                }
                for k, a in self._held.items()
            ),
        )
        self._rebuild_admission(inventory, self._state)

    def _ensure(self) -> tuple[Inventory, AllocatedState]:
        if self._inventory is None or self._state is None:
            self._rebuild()
        assert self._inventory is not None and self._state is not None
        return self._inventory, self._state

    def _enqueue_waiting(self) -> None:
        """Pending claims, and allocated ones whose devices are at fault, go back in the queue."""
        inventory, _ = self._ensure()
        for claim in self.informer().list():
            meta = claim["metadata"]
            allocation = (claim.get("status") or {}).get("allocation")
            if not allocation or self._fault(allocation, inventory) is not None:
                self.enqueue(Request(str(meta.get("namespace") or ""), str(meta["name"])))

    # -- reconcile ------------------------------------------------------------------------------

    def reconcile(self, request: Request) -> Result | None:
        if request == INVENTORY:
            self._rebuild()
            self._enqueue_waiting()
            return None
        inventory, _ = self._ensure()
        key = f"{request.namespace}/{request.name}"
        try:
            claim = self.store.get("ResourceClaim", request.namespace, request.name)
        except NotFound:
            self._release(key, "the claim was deleted")
            return None
        meta = claim.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            self._release(key, "the claim is being deleted")
            return None
        gone = self._missing_owner(claim)
        if gone is not None:
            log.info("deleting claim %s: its owner %s is gone", key, gone)
            with contextlib.suppress(NotFound):
                self.store.delete("ResourceClaim", request.namespace, request.name)
            self._release(key, f"its owner {gone} is gone")
            return None
        allocation = (claim.get("status") or {}).get("allocation")
        if allocation:
            if self._held.get(key) != allocation:
                self._held[key] = allocation  # written by someone else (an earlier leader)
                self._rebuild()
                inventory, _ = self._ensure()
            fault = self._fault(allocation, inventory)
            if fault is None:
                return None
            if key in self._workload_of:
                self._evict_workload(self._workload_of[key], fault)
                return None
            return self._replace(claim, key, fault)
        if self.admits(claim):
            return self._admit_claim(claim, key)
        if consumer_key(claim) is not None:
            return self._place_consumer(claim, key)
        return self._place(claim, key)

    def _release(self, key: str, why: str) -> None:
        self._changed()
        if key in self._workload_of:
            self._release_workload_of(key, why)
        elif self._held.pop(key, None) is not None:
            if self._state is not None:
                self._state.release(key)
            log.info("released the devices of claim %s: %s", key, why)
            self._enqueue_waiting()  # what was freed may fit a waiting claim
        self._failures.pop(key, None)

    def _missing_owner(self, claim: JSON) -> str | None:
        meta = claim.get("metadata") or {}
        for ref in meta.get("ownerReferences") or ():
            kind, name = str(ref.get("kind") or ""), str(ref.get("name") or "")
            if not kind or not name:
                continue
            try:
                namespaced = lookup(kind).namespaced
            except NotFound:
                continue  # a kind this platform does not serve: not ours to judge
            try:
                owner = self.store.get(
                    kind, str(meta.get("namespace") or "") if namespaced else "", name
                )
            except NotFound:
                return f"{kind} {name}"
            uid = ref.get("uid")
            if uid and (owner.get("metadata") or {}).get("uid") != uid:
                return f"{kind} {name} (uid {uid})"
        return None

    # -- faults ---------------------------------------------------------------------------------

    def _fault(self, allocation: Mapping[str, Any], inventory: Inventory) -> str | None:
        """Why the allocated devices can no longer be used, or None when they can."""
        for r in (allocation.get("devices") or {}).get("results") or ():
            driver, pool, name = str(r.get("driver")), str(r.get("pool")), str(r.get("device"))
            device = inventory.device(driver, pool, name)
            if device is None:
                node = _allocated_node(allocation) or pool
                if node in self._down:
                    return f"node {node} {self._down[node]}"
                if node in self._cordoned:
                    continue  # cordoned: what runs there stays
                if (driver, pool) in inventory.incomplete_pools:
                    continue  # the pool is being republished: wait for the rest of it
                return f"device {name} (driver {driver}, pool {pool}) is no longer published"
            for taint in device.taints:
                if taint.get("effect") != "NoExecute":
                    continue
                if any(tolerates(t, taint) for t in r.get("tolerations") or ()):
                    continue
                what = str(taint.get("key") or "")
                if taint.get("value"):
                    what += f"={taint['value']}"
                return f"device {name} on {device.node or pool} was tainted NoExecute ({what})"
        return None

    # -- decisions ------------------------------------------------------------------------------

    def _decide(self, claim: JSON) -> AllocationResult | Unschedulable:
        inventory, state = self._ensure()
        began = time.perf_counter()
        outcome = "error"
        try:
            result = allocate(
                claim,
                inventory,
                allocated_state=state,
                deadline_ms=self.deadline_ms,
                policy=self.policy,
            )
            outcome = "scheduled" if isinstance(result, AllocationResult) else "unschedulable"
            return result
        finally:
            ATTEMPTS.labels(outcome).inc()
            DECISION_TIME.labels(outcome).observe(time.perf_counter() - began)

    def _hold(self, key: str, result: AllocationResult, status: JSON) -> None:
        _, state = self._ensure()
        state.add(key, result)
        self._held[key] = status["allocation"]
        self._failures.pop(key, None)
        self._changed()

    def _place(self, claim: JSON, key: str) -> Result | None:
        result = self._decide(claim)
        status = dict(claim.get("status") or {})
        if isinstance(result, AllocationResult):
            message = f"allocated {_describe(result)}"
            event = StatusEvent("Normal", "Allocated", message)
            if not self._allocated(claim, key, status, result, event):
                return Result(requeue=True)
            self._endpoint_report([claim])
            return None
        reason, message = self._explain(result)
        failed = StatusEvent("Warning", "FailedScheduling", message)
        if set_condition(status, ALLOCATED, False, reason, message) and not self._commit(
            claim, status, failed
        ):
            return Result(requeue=True)
        return self._backoff(key)

    def _place_consumer(self, claim: JSON, key: str) -> Result | None:
        """Allocate the pending claims of ``claim``'s consumer together, on one node.

        Claims of the consumer already allocated pin the node; the pending ones are decided in
        one :func:`~modelplane.scheduling.allocate_many` search, which backtracks across them,
        so an earlier claim never takes the devices a later one needs. None is allocated while
        fewer claims exist than ``modelplane.dev/consumer-claims`` says.
        """
        consumer = consumer_key(claim)
        siblings = {
            claim_key(c): c
            for c in self.informer().list()
            if consumer_key(c) == consumer
            and not (c.get("metadata") or {}).get("deletionTimestamp")
        }
        siblings[key] = claim  # the store's copy, fresher than the cache's
        name = str(consumer).partition("/")[2]
        want = consumer_claims(claim)
        if want and len(siblings) < want:
            status = dict(claim.get("status") or {})
            message = (
                f"consumer {name} has {len(siblings)} of its {want} claims; they are allocated "
                "together once all exist"
            )
            waiting = set_condition(status, ALLOCATED, False, "WaitingForClaims", message)
            if waiting and not self._commit(claim, status):
                return Result(requeue=True)
            return None  # the missing claim's creation reconciles the consumer again
        held = [k for k in sorted(siblings) if k in self._held]
        pending = []
        for k in sorted(siblings):
            if k in self._held:
                continue
            try:  # the statuses are written from the store's copies (their resourceVersion)
                fresh = siblings[k] if k == key else self.store.get("ResourceClaim", *_split(k))
            except NotFound:
                continue
            if not (fresh.get("status") or {}).get("allocation"):
                pending.append(fresh)
        if not pending:
            return None
        node = next((n for k in held if (n := _allocated_node(self._held[k]))), None)
        inventory, state = self._ensure()
        result = allocate_many(
            pending,
            inventory,
            allocated_state=state,
            node=node,
            deadline_ms=self.deadline_ms * len(pending),
            policy=self.policy,
        )
        if isinstance(result, Unschedulable):
            reason, why = self._explain(result)
            together = ", ".join(str(c["metadata"]["name"]) for c in pending)
            where = f" on node {node} (where its other claims are)" if node else ""
            message = f"claims of consumer {name} ({together}) fit nowhere together{where}: {why}"
            for c in pending:
                status = dict(c.get("status") or {})
                if set_condition(status, ALLOCATED, False, reason, message):
                    # one gone or changed is read again with its own change; the rest still say why
                    self._commit(c, status, StatusEvent("Warning", "FailedScheduling", message))
            return self._backoff(key)
        for c, r in zip(pending, result, strict=True):
            status = dict(c.get("status") or {})
            status.update(r.to_status())
            message = f"allocated {_describe(r)} with the other claims of consumer {name}"
            set_condition(status, ALLOCATED, True, "Allocated", message)
            if not self._commit(c, status, StatusEvent("Normal", "Allocated", message)):
                # those written are held; the rest are decided again, beside them
                self._endpoint_report(pending)
                return Result(requeue=True)
            self._hold(claim_key(c), r, status)
        self._endpoint_report(pending)
        return None

    def _replace(self, claim: JSON, key: str, fault: str) -> Result | None:
        old = self._held.pop(key, None)
        _, state = self._ensure()
        state.release(key)
        if old is not None:
            self._enqueue_waiting()
        status = {k: v for k, v in (claim.get("status") or {}).items() if k != "allocation"}
        result = self._decide({**claim, "status": status})
        if isinstance(result, AllocationResult):
            message = f"{fault}; re-placed on {_describe(result)}"
            event = StatusEvent("Warning", "Rescheduled", message)
            if not self._allocated(claim, key, status, result, event, "Replaced"):
                return Result(requeue=True)
            return None
        _, why = self._explain(result)
        message = f"{fault}; released, waiting for devices: {why}"
        set_condition(status, ALLOCATED, False, "Evicted", message)
        if not self._commit(claim, status, StatusEvent("Warning", "Rescheduled", message)):
            return Result(requeue=True)
        return self._backoff(key)

    def _allocated(
        self,
        claim: JSON,
        key: str,
        status: JSON,
        result: AllocationResult,
        event: StatusEvent,
        reason: str = "Allocated",
    ) -> bool:
        """Write ``result`` into the claim's status (condition ``reason``) and hold it; False when
        the claim changed since it was read."""
        status.update(result.to_status())
        set_condition(status, ALLOCATED, True, reason, event.message)
        if not self._commit(claim, status, event):
            return False
        self._hold(key, result, status)
        return True

    def _commit(self, claim: JSON, status: JSON, event: StatusEvent | None = None) -> bool:
        """Write ``status`` onto ``claim`` (as read) and record ``event``; False when the claim
        changed or went away since it was read (the caller requeues and decides again)."""
        stored = commit_status(
            self.store,
            claim,
            status,
            component=self.component,
            condition=None,  # the scheduler names its Events itself, as kube-scheduler does
            observed_generation=False,  # a ResourceClaim's status has no observedGeneration
            event=event,
        )
        return stored is not None

    def _explain(self, result: Unschedulable) -> tuple[str, str]:
        if result.invalid:
            return "InvalidClaim", result.reason
        if result.timed_out:
            return "SchedulingTimedOut", result.reason
        cordoned = ""
        if self._cordoned:
            n = len(self._cordoned)
            cordoned = f" {n} {'node is' if n == 1 else 'nodes are'} cordoned (spec.unschedulable)."
        if not self._down:
            return "Unschedulable", result.reason + cordoned
        reasons = dict(result.reasons)
        for why in self._down.values():
            short = "were removed" if why == "was removed" else "were not Ready"
            reasons[short] = reasons.get(short, 0) + 1
        total = result.nodes_total + len(self._down)
        parts = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        detail = ", ".join(f"{n} {r}" for r, n in parts)
        return "Unschedulable", f"0/{total} nodes are available: {detail}.{cordoned}"

    def _backoff(self, key: str) -> Result:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        first, longest = self.retry
        return Result(requeue_after=min(longest, first * 2**n))

    def _event(self, claim: JSON, type_: str, reason: str, message: str) -> None:
        try:
            record_event(
                self.store,
                claim,
                type=type_,  # type: ignore[arg-type]
                reason=reason,
                message=message,
                component=self.component,
            )
        except ModelplaneError as exc:  # the decision stands; the event is a courtesy
            log.warning("could not record event %s for %s: %s", reason, _key(claim), exc)


def _split(key: str) -> tuple[str, str]:
    ns, _, name = key.partition("/")
    return ns, name


def _describe(result: AllocationResult) -> str:
    devices = ", ".join(r.device.name for r in result.devices)
    drivers = ", ".join(sorted({r.device.driver for r in result.devices}))
    return f"{result.node or 'any node'}: {devices} ({drivers})"


def _allocated_node(allocation: Mapping[str, Any]) -> str | None:
    for term in (allocation.get("nodeSelector") or {}).get("nodeSelectorTerms") or ():
        for req in term.get("matchFields") or ():
            if req.get("key") == "metadata.name" and req.get("values"):
                return str(req["values"][0])
    return None


def _cordoned(s: JSON) -> JSON:
    """A cordoned node's slice: every device tainted NoSchedule, so nothing new lands there."""
    spec = dict(s.get("spec") or {})
    spec["devices"] = [
        {**d, "taints": [*(d.get("taints") or ()), CORDON_TAINT]} for d in spec.get("devices") or ()
    ]
    return {**s, "spec": spec}


def _good_slices(slices: list[JSON], classes: list[JSON]) -> list[JSON]:
    """The slices that index on their own; a malformed one must not stop every decision."""
    good = []
    for s in slices:
        try:
            Inventory.from_objects([s], classes)
        except SchedulingInputError as exc:
            log.warning("ignoring ResourceSlice %s: %s", (s.get("metadata") or {}).get("name"), exc)
            continue
        good.append(s)
    return good


def scheduling_controllers(
    store: Store, *, node_grace: float = NODE_LEASE_SECONDS
) -> list[Controller]:
    """The controllers of device scheduling that ``modelplane up`` runs, bound to ``store``;
    ``node_grace``: seconds a node's lapsed heartbeat lease is given before its claims move."""
    from ._claims import AgentClaimController, EndpointClaimController, JobClaimController
    from ._drivers import DriverVersionController
    from ._lifecycle import NodeLifecycleController

    return [
        NodeLifecycleController(store, grace=node_grace),
        DriverVersionController(store),
        ResourceClaimController(store),
        EndpointClaimController(store),
        JobClaimController(store),
        AgentClaimController(store),
    ]
