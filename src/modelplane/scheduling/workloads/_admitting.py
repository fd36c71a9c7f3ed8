"""Queues, gangs and preemption inside :class:`ResourceClaimController` (a mixin of it).

An :class:`Admission` is rebuilt from the store whenever the inventory or the Queues change: its
state is the controller's :class:`AllocatedState`, and its running workloads are the allocated
claims that name a queue or belong to a gang (grouped by gang), each charged to its queue.

* A pending claim with a queue, or a replica of a gang Job, is admitted in a *pass* over all
  pending queued workloads in fair-sharing order (lowest dominant share, then priority, then
  arrival); a pass is skipped when nothing changed since the last one considered the claim.
* A gang's replicas are written one after the other; when a write fails, the ones written are
  rolled back and the gang is released, so the store never shows part of a gang as admitted.
* Victims of preemption lose their allocation first (condition ``Admitted=False, reason
  Preempted`` naming the preemptor, ``Warning`` Event ``Preempted``) and wait again.
* The Job of a gang gets ``Admitted`` (True, or False with reason ``Unschedulable``,
  ``QuotaExceeded``, ``Preempted``...) and ``observedGeneration``; an Endpoint whose replica
  claims are allocated gets ``status.devicesAllocated: "n/m"`` by a merge patch of that key only.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from modelplane.api import REPLICA_LABEL
from modelplane.api.errors import Conflict, ModelplaneError, NotFound
from modelplane.control import Request, Result, commit_status, get_condition, set_condition
from modelplane.store import Store

from .._errors import SchedulingInputError
from ..allocation._inventory import Inventory
from ..allocation._scoring import Policy
from ..allocation._state import AllocatedState
from ._admission import Admission, Admitted, Pending, Running
from ._gang import GangPlacement, Workload
from ._preemption import Preemption
from ._queues import QueueSet, Usage, add_usage, claim_usage, queue_of
from ._workloads import (
    claim_key,
    claim_workload,
    consumer_claims,
    consumer_key,
    endpoint_replica_slots,
    gang_key,
    gang_size,
    job_workload,
    result_from_allocation,
)

if TYPE_CHECKING:
    from modelplane.control import Informer

__all__ = ["ADMITTED", "AdmittingMixin"]

log = logging.getLogger("modelplane.scheduling.controller")

JSON = dict[str, Any]
ADMITTED = "Admitted"
_ALLOCATED = "Allocated"
_RETRIES = 5


def _split(key: str) -> tuple[str, str]:
    ns, _, name = key.partition("/")
    return ns, name


def _arrival(obj: Mapping[str, Any]) -> float:
    stamp = (obj.get("metadata") or {}).get("creationTimestamp")
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _replica(claim: Mapping[str, Any]) -> int:
    value = ((claim.get("metadata") or {}).get("labels") or {}).get(REPLICA_LABEL)
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _pending_reason(p: Pending) -> str:
    if p.invalid:
        return "InvalidClaim"
    if p.timed_out:
        return "SchedulingTimedOut"
    if p.reason.startswith("queue "):
        return "QuotaExceeded"
    return "Unschedulable"


class AdmittingMixin:
    """Admission of queued and gang workloads for :class:`ResourceClaimController`."""

    store: Store
    policy: Policy
    deadline_ms: float
    component: str
    _held: dict[str, JSON]
    _failures: dict[str, int]

    if TYPE_CHECKING:

        def informer(self, kind: str | None = None) -> Informer: ...
        def enqueue(self, request: Request, after: float = 0.0) -> None: ...
        def _backoff(self, key: str) -> Result: ...
        def _event(self, claim: JSON, type_: str, reason: str, message: str) -> None: ...
        def _enqueue_waiting(self) -> None: ...
        def _ensure(self) -> tuple[Inventory, AllocatedState]: ...

    def _reset_admission(self) -> None:
        self._admission: Admission | None = None
        #: claim key -> key of the running workload (claim or gang) it belongs to
        self._workload_of: dict[str, str] = {}
        self._version = 0  # bumped by every change that may let pending work in
        self._passed: tuple[int, frozenset[str]] = (-1, frozenset())

    def _changed(self) -> None:
        self._version += 1

    # -- building the admission from the store ----------------------------------------------

    def _queue_set(self) -> QueueSet:
        good = []
        for q in self.informer("Queue").list():
            try:
                QueueSet([q])
            except SchedulingInputError as exc:
                log.warning("ignoring Queue: %s", exc)
                continue
            good.append(q)
        return QueueSet(good)

    def _rebuild_admission(self, inventory: Inventory, state: AllocatedState) -> None:
        queues = self._queue_set()
        admission = Admission(
            inventory, queues, policy=self.policy, deadline_ms=self.deadline_ms, state=state
        )
        claims = {claim_key(c): c for c in self.informer().list()}
        groups: dict[str, list[tuple[JSON, Any]]] = {}
        for key, allocation in self._held.items():
            claim = claims.get(key)
            if claim is None or (gang_key(claim) is None and queue_of(claim) is None):
                continue
            result = result_from_allocation(key, allocation, inventory)
            if result is not None:
                group = gang_key(claim) or consumer_key(claim) or key
                groups.setdefault(group, []).append((claim, result))
        self._workload_of = {}
        for wkey, members in groups.items():
            first = members[0][0]
            w = claim_workload(first)
            queue = w.queue if w.queue in queues else None
            gang = gang_key(first) is not None
            w = Workload(wkey, [c for c, _ in members], queue, w.priority, gang=gang)
            w.together = not gang and wkey != claim_key(first)
            usage: Usage = {}
            for claim, result in members:
                add_usage(usage, claim_usage(claim, result))
                self._workload_of[claim_key(claim)] = wkey
            placement = GangPlacement(w, [r for _, r in members])
            admission.running[wkey] = Running(w, placement, usage, 0.0)
            if queue is not None:
                queues.charge(queue, usage)
        self._admission = admission
        self._changed()

    def _admission_now(self) -> Admission:
        self._ensure()
        assert self._admission is not None
        return self._admission

    # -- which claims go through admission --------------------------------------------------

    def admits(self, claim: Mapping[str, Any]) -> bool:
        """Whether ``claim`` is admitted as queued or gang work (else placed on its own)."""
        return gang_key(claim) is not None or queue_of(claim) is not None

    def _admit_claim(self, claim: JSON, key: str) -> Result | None:
        version, considered = self._passed
        if version == self._version and key in considered:
            return self._backoff(key)  # nothing changed since a pass tried it
        self._admit_pass()
        if key in self._held:
            return None
        return self._backoff(key)

    def _pending_workloads(self) -> list[Workload]:
        """Every complete pending workload (claims not held, gangs with all replicas)."""
        singles: list[Workload] = []
        gangs: dict[str, list[JSON]] = {}
        consumers: dict[str, list[JSON]] = {}
        for claim in self.informer().list():
            key = claim_key(claim)
            meta = claim.get("metadata") or {}
            if key in self._held or meta.get("deletionTimestamp") or not self.admits(claim):
                continue
            if (claim.get("status") or {}).get("allocation"):
                continue  # the cache is behind our own eviction: the claim is requeued
            gang = gang_key(claim)
            if gang is None and consumer_key(claim) is not None:
                consumers.setdefault(str(consumer_key(claim)), []).append(claim)
            elif gang is None:
                w = claim_workload(claim)
                w.arrival = _arrival(claim)
                singles.append(w)
            else:
                gangs.setdefault(gang, []).append(claim)
        for gang, claims in gangs.items():
            if len(claims) < gang_size(claims[0]) or any(
                self._workload_of.get(claim_key(c)) == gang for c in claims
            ):
                continue  # the other replicas are still to be created (or still held)
            ns, name = _split(gang)
            try:
                job = self.store.get("Job", ns, name)
            except NotFound:
                continue
            claims.sort(key=_replica)
            try:
                w = job_workload(job, claims)
            except SchedulingInputError as exc:
                self._write_pending(
                    Workload(gang, claims, gang=True, source=job),
                    Pending(Workload(gang, claims), str(exc), invalid=True),
                )
                continue
            w.arrival = _arrival(job)
            singles.append(w)
        for consumer, claims in consumers.items():
            if len(claims) < consumer_claims(claims[0]):
                continue  # the consumer's other claims are still to be created
            claims.sort(key=claim_key)
            first = claim_workload(claims[0])
            singles.append(
                Workload(
                    consumer,
                    claims,
                    first.queue,
                    first.priority,
                    arrival=min(_arrival(c) for c in claims),
                    together=True,
                )
            )
        return singles

    def _admit_pass(self) -> None:
        admission = self._admission_now()
        waiting = self._pending_workloads()
        self._passed = (self._version, frozenset(claim_key(c) for w in waiting for c in w.claims))
        while waiting:
            w = min(waiting, key=admission.order_key) if admission.queues else waiting[0]
            waiting.remove(w)
            got = admission.admit(w, time.monotonic())
            if isinstance(got, Admitted):
                self._write_admitted(got)
            else:
                self._write_pending(w, got)
        self._passed = (self._version, self._passed[1])

    # -- writing outcomes -------------------------------------------------------------------

    def _write_claim_status(self, key: str, change: Callable[[JSON], None]) -> JSON:
        """Read ``key`` fresh, apply ``change`` to its status, write it; retried on Conflict."""
        ns, name = _split(key)
        for _ in range(_RETRIES):
            claim = self.store.get("ResourceClaim", ns, name)  # NotFound: it is gone
            status = dict(claim.get("status") or {})
            status["conditions"] = [dict(c) for c in status.get("conditions") or ()]
            change(status)
            # the events of an admission are recorded once all of its claims are written
            stored = commit_status(
                self.store,
                claim,
                status,
                component=self.component,
                condition=None,
                observed_generation=False,
            )
            if stored is not None:
                return stored
        raise Conflict(f"the status of ResourceClaim {key} kept changing while it was written")

    def _strip(self, key: str, reason: str, message: str, admitted: JSON | None = None) -> None:
        """Remove ``key``'s allocation in the store, saying why."""

        def change(status: JSON) -> None:
            status.pop("allocation", None)
            set_condition(status, _ALLOCATED, False, reason, message)
            if admitted is not None:
                set_condition(status, ADMITTED, False, admitted["reason"], str(admitted["message"]))

        with contextlib.suppress(NotFound):
            self._write_claim_status(key, change)

    def _write_admitted(self, got: Admitted) -> None:
        w = got.workload
        for p in got.preempted:
            self._preempted(p)
        written: list[str] = []
        domain = got.placement.domain
        nodes = sorted({r.node for r in got.results if r.node})
        if w.gang:
            where = f"in {domain}" if domain else f"on {', '.join(nodes) or 'any node'}"
            summary = f"all {w.replicas} replicas {where}"
        else:
            summary = f"admitted by queue {w.queue}"
        try:
            for claim, result in zip(w.claims, got.results, strict=True):
                key = claim_key(claim)
                devices = ", ".join(r.device.name for r in result.devices)
                message = f"allocated {result.node or 'any node'}: {devices}"

                def change(status: JSON, result: Any = result, message: str = message) -> None:
                    status.update(result.to_status())
                    set_condition(status, _ALLOCATED, True, "Allocated", message)
                    set_condition(status, ADMITTED, True, "Admitted", summary)

                self._write_claim_status(key, change)
                written.append(key)
        except (Conflict, NotFound) as exc:
            why = f"writing the allocation of {w.key} failed ({exc}); rolled back, trying again"
            log.warning("%s", why)
            for key in written:
                self._strip(key, "RolledBack", why)
            assert self._admission is not None
            self._admission.release(w.key)
            self._changed()
            for claim in w.claims:
                self.enqueue(Request(*_split(claim_key(claim))), 0.05)
            return
        for claim, result in zip(w.claims, got.results, strict=True):
            key = claim_key(claim)
            self._held[key] = result.to_status()["allocation"]
            self._workload_of[key] = w.key
            self._failures.pop(key, None)
            self._event(claim, "Normal", "Allocated", f"{summary}: allocated {result.node}")
        self._changed()
        if w.gang:
            self._job_condition(w.key, True, "Admitted", summary)
        self._endpoint_report(w.claims)

    def _write_pending(self, w: Workload, p: Pending) -> None:
        reason = _pending_reason(p)
        for claim in w.claims:
            key = claim_key(claim)
            changed = False

            def change(status: JSON) -> None:
                nonlocal changed
                changed = set_condition(status, _ALLOCATED, False, reason, p.reason)
                admitted = get_condition(status, ADMITTED) or {}
                if admitted.get("reason") == "Preempted" and admitted.get("status") == "False":
                    return  # who preempted it stays visible until it is admitted again
                if w.queue is not None or w.gang:
                    changed = set_condition(status, ADMITTED, False, reason, p.reason) or changed

            try:
                self._write_claim_status(key, change)
            except NotFound:
                continue
            if changed:
                self._event(claim, "Warning", "FailedScheduling", p.reason)
        if w.gang:
            self._job_condition(w.key, False, reason, p.reason)

    def _preempted(self, p: Preemption) -> None:
        condition = p.condition()
        for key in p.claims:
            self._held.pop(key, None)
            self._workload_of.pop(key, None)
            self._strip(key, "Preempted", p.message, condition)
            ns, name = _split(key)
            claim = {
                "apiVersion": "resource.k8s.io/v1",
                "kind": "ResourceClaim",
                "metadata": {"namespace": ns, "name": name},
            }
            with contextlib.suppress(NotFound):
                claim = self.store.get("ResourceClaim", ns, name)
            self._event(claim, "Warning", "Preempted", p.message)
            self.enqueue(Request(ns, name), 0.05)
        if p.victim not in p.claims:  # a gang: its Job says so too
            self._job_condition(p.victim, False, "Preempted", p.message)
        self._changed()

    # -- releasing --------------------------------------------------------------------------

    def _release_workload_of(self, key: str, why: str) -> None:
        """``key`` is gone: release its workload; a gang's other replicas lose theirs too."""
        wkey = self._workload_of.pop(key)
        self._held.pop(key, None)
        admission = self._admission_now()
        running = admission.release(wkey)
        if running is None:
            return
        others = [claim_key(c) for c in running.workload.claims if claim_key(c) != key]
        message = f"replica {key} of gang {wkey} is gone ({why}); the gang is placed again"
        for other in others:
            self._workload_of.pop(other, None)
            if self._held.pop(other, None) is not None:
                self._strip(other, "GangBroken", message)
                self.enqueue(Request(*_split(other)), 0.05)
        if running.workload.gang:
            self._job_condition(wkey, False, "GangBroken", message)
        self._endpoint_report(running.workload.claims)

    def _evict_workload(self, wkey: str, fault: str) -> None:
        """A device of a running workload failed: release all of it; it is admitted again."""
        admission = self._admission_now()
        running = admission.release(wkey)
        if running is None:
            return
        for claim in running.workload.claims:
            key = claim_key(claim)
            self._workload_of.pop(key, None)
            self._held.pop(key, None)
            message = f"{fault}; released, waiting to be admitted again"
            self._strip(key, "Evicted", message)
            self._event(claim, "Warning", "Rescheduled", message)
            self.enqueue(Request(*_split(key)), 0.05)
        self._changed()
        self._enqueue_waiting()

    # -- owners' status ---------------------------------------------------------------------

    def _job_condition(self, job_key: str, ok: bool, reason: str, message: str) -> None:
        ns, name = _split(job_key)
        for _ in range(_RETRIES):
            try:
                job = self.store.get("Job", ns, name)
            except NotFound:
                return
            meta = job.get("metadata") or {}
            status = dict(job.get("status") or {})
            conditions: JSON = {"conditions": [dict(c) for c in status.get("conditions") or ()]}
            changed = set_condition(conditions, ADMITTED, ok, reason, message)
            generation = meta.get("generation")
            if not changed and status.get("observedGeneration") == generation:
                return
            patch = {
                "metadata": {"resourceVersion": meta.get("resourceVersion")},
                "status": {**conditions, "observedGeneration": generation},
            }
            try:
                self.store.patch("Job", ns, name, patch, subresource="status")
                return
            except Conflict:
                continue
            except ModelplaneError as exc:
                log.warning("could not report on Job %s: %s", job_key, exc)
                return

    def _endpoint_report(self, claims: list[JSON]) -> None:
        endpoints = {
            (str((c.get("metadata") or {}).get("namespace") or "default"), str(r.get("name")))
            for c in claims
            for r in (c.get("metadata") or {}).get("ownerReferences") or ()
            if r.get("kind") == "Endpoint"
        }
        for ns, name in endpoints:
            self._report_endpoint(ns, name)

    def _report_endpoint(self, ns: str, name: str) -> None:
        try:
            endpoint = self.store.get("Endpoint", ns, name)
        except NotFound:
            return
        owned = [
            claim_key(c)
            for c in self.store.list("ResourceClaim", ns).items
            if any(
                r.get("kind") == "Endpoint" and r.get("name") == name
                for r in (c.get("metadata") or {}).get("ownerReferences") or ()
            )
        ]
        wanted = endpoint_replica_slots(endpoint)
        allocated = sum(1 for k in owned if k in self._held)
        value = f"{allocated}/{wanted}"
        if (endpoint.get("status") or {}).get("devicesAllocated") == value:
            return
        with contextlib.suppress(NotFound):
            self.store.patch(
                "Endpoint", ns, name, {"status": {"devicesAllocated": value}}, subresource="status"
            )
