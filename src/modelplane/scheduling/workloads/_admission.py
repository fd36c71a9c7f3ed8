"""``Admission``: queues, gangs and preemption on top of :func:`allocate`.

One :class:`Admission` holds the :class:`AllocatedState` of an inventory, the Queues with their
usage, and the running workloads. ``admit`` places a workload (a claim, or a Job's gang) when both
its queue's quota and the devices allow, evicting the cheapest allowed victims when they do not;
``release`` gives a finished workload's devices and quota back; ``admit_pending`` admits waiting
workloads in fair-sharing order (lowest dominant share first, then priority, then arrival).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelplane.api import QUEUE_ANNOTATION

from ..allocation._allocator import AllocationResult
from ..allocation._inventory import Inventory
from ..allocation._scoring import Policy, policy_named
from ..allocation._state import AllocatedState
from ._gang import GangPlacement, GangPlacer, Workload
from ._preemption import IN_COHORT, Preemption, Running, candidates, message
from ._queues import QueueSet, Usage, add_usage, claim_usage, requested_usage

__all__ = ["Admission", "Admitted", "Pending", "Running"]


@dataclass(slots=True)
class Admitted:
    """The workload runs; ``preempted`` lists whom it evicted to get there."""

    workload: Workload
    placement: GangPlacement
    preempted: list[Preemption] = field(default_factory=list)

    @property
    def results(self) -> list[AllocationResult]:
        return self.placement.results

    def __bool__(self) -> bool:
        return True


@dataclass(slots=True)
class Pending:
    """The workload waits; ``reason`` names the quota or the devices that are missing."""

    workload: Workload
    reason: str
    invalid: bool = False  # can never be admitted as written
    timed_out: bool = False

    def __bool__(self) -> bool:
        return False


@dataclass(slots=True)
class _Refusal:
    reason: str
    invalid: bool = False
    timed_out: bool = False


class Admission:
    """Admits workloads into one cluster: quota, placement (gangs, topology) and preemption."""

    def __init__(
        self,
        inventory: Inventory,
        queues: Iterable[Mapping[str, Any]] | QueueSet = (),
        *,
        policy: Policy | str = "modelplane",
        deadline_ms: float = 50.0,
        state: AllocatedState | None = None,
    ) -> None:
        self.inventory = inventory
        self.state = state if state is not None else AllocatedState(inventory)
        self.queues = queues if isinstance(queues, QueueSet) else QueueSet(queues)
        self.policy = policy_named(policy) if isinstance(policy, str) else policy
        self.deadline_ms = deadline_ms
        self.placer = GangPlacer(inventory)
        self.running: dict[str, Running] = {}

    # ---------------------------------------------------------------------------------------

    def admit(self, w: Workload, now: float = 0.0) -> Admitted | Pending:
        """Admit ``w`` now if its quota and the devices allow, preempting when its queue may."""
        if w.queue is not None and w.queue not in self.queues:
            where = "spec.queue" if w.source.get("kind") == "Job" else QUEUE_ANNOTATION
            return Pending(
                w, f"queue {w.queue} does not exist; create it or correct {where}", invalid=True
            )
        got = self._try(w, cohort_victims=False)
        if not isinstance(got, _Refusal):
            return self._commit(w, got[0], got[1], now, [])
        if got.invalid:
            return Pending(w, got.reason, invalid=True)
        admitted = self._preempt(w, now)
        if admitted is not None:
            return admitted
        return Pending(w, got.reason, timed_out=got.timed_out)

    def release(self, key: str) -> Running | None:
        """Give back the devices and quota of running workload ``key``; None if not running."""
        r = self.running.pop(key, None)
        if r is None:
            return None
        GangPlacer.unplace(self.state, r.placement)
        if r.workload.queue is not None:
            self.queues.charge(r.workload.queue, r.usage, -1)
        return r

    def order_key(self, w: Workload) -> tuple[float, int, float, str]:
        """Fair-sharing order: the queue's dominant share, then priority, then arrival."""
        share = (
            self.queues.share(w.queue) if w.queue is not None and w.queue in self.queues else 0.0
        )
        return (share, -w.priority, w.arrival, w.key)

    def admit_pending(
        self, pending: list[Workload], now: float = 0.0, max_failures: int | None = None
    ) -> list[Admitted | Pending]:
        """Try waiting workloads in fair-sharing order, recomputed after every admission."""
        waiting = list(pending)
        out: list[Admitted | Pending] = []
        failures = 0
        while waiting and (max_failures is None or failures < max_failures):
            if self.queues:
                w = min(waiting, key=self.order_key)
                waiting.remove(w)
            else:
                w = waiting.pop(0)
            result = self.admit(w, now)
            out.append(result)
            failures += not result
        return out

    # ---------------------------------------------------------------------------------------

    def _estimate(self, w: Workload) -> Usage:
        total: Usage = {}
        for c in w.claims:
            add_usage(total, requested_usage(c))
        return total

    def _usage(self, w: Workload, placed: GangPlacement) -> Usage:
        total: Usage = {}
        for claim, result in zip(w.claims, placed.results, strict=True):
            add_usage(total, claim_usage(claim, result))
        return total

    def _try(self, w: Workload, *, cohort_victims: bool) -> tuple[GangPlacement, Usage] | _Refusal:
        """Place ``w`` into the state when quota and devices allow; else why not.

        With ``cohort_victims`` the queue must stay within its nominal quota (reclaiming never
        turns into borrowing).
        """
        queue = w.queue
        if queue is not None:
            why = self.queues.why_not(queue, self._estimate(w))
            if why is not None:
                return _Refusal(why)
        placed = self.placer.place(w, self.state, self.policy, self.deadline_ms)
        if not isinstance(placed, GangPlacement):
            return _Refusal(placed.reason, placed.invalid, placed.timed_out)
        usage = self._usage(w, placed)
        if queue is not None:
            why = self.queues.why_not(queue, usage)
            if why is None and cohort_victims and not self.queues.within_nominal(queue, usage):
                why = f"queue {queue} would borrow; reclaiming quota stops at nominal"
            if why is not None:
                GangPlacer.unplace(self.state, placed)
                return _Refusal(why)
        return placed, usage

    def _commit(
        self,
        w: Workload,
        placed: GangPlacement,
        usage: Usage,
        now: float,
        evicted: list[Preemption],
    ) -> Admitted:
        self.running[w.key] = Running(w, placed, usage, now)
        if w.queue is not None:
            self.queues.charge(w.queue, usage)
        return Admitted(w, placed, evicted)

    def _evict(self, r: Running) -> None:
        GangPlacer.unplace(self.state, r.placement)
        if r.workload.queue is not None:
            self.queues.charge(r.workload.queue, r.usage, -1)

    def _restore(self, r: Running) -> None:
        for result in r.placement.results:
            self.state.add(result.claim, result)
        if r.workload.queue is not None:
            self.queues.charge(r.workload.queue, r.usage)

    def _fits(self, w: Workload, cohort_victims: bool) -> bool:
        got = self._try(w, cohort_victims=cohort_victims)
        if isinstance(got, _Refusal):
            return False
        GangPlacer.unplace(self.state, got[0])
        return True

    def _preempt(self, w: Workload, now: float) -> Admitted | None:
        options = candidates(w, list(self.running.values()), self.queues)
        if not options:
            return None
        removed: list[tuple[Running, str]] = []
        fits = False
        for r, reason in options:
            if reason == IN_COHORT and not self.queues[r.workload.queue or ""].borrowing():
                continue  # only what a queue borrows can be reclaimed
            self._evict(r)
            removed.append((r, reason))
            if self._fits(w, any(why == IN_COHORT for _, why in removed)):
                fits = True
                break
        if not fits:
            for r, _ in reversed(removed):
                self._restore(r)
            return None
        # Give back every victim whose eviction was not needed (the last one was).
        for victim in reversed(removed[:-1]):
            self._restore(victim[0])
            rest = [v for v in removed if v is not victim]
            if self._fits(w, any(why == IN_COHORT for _, why in rest)):
                removed = rest
            else:
                self._evict(victim[0])
        got = self._try(w, cohort_victims=any(why == IN_COHORT for _, why in removed))
        if isinstance(got, _Refusal):  # cannot happen with a deterministic policy; stay safe
            for r, _ in reversed(removed):
                self._restore(r)
            return None
        evicted = []
        for r, reason in removed:
            del self.running[r.workload.key]
            evicted.append(
                Preemption(
                    r.workload.key,
                    tuple(x.claim for x in r.placement.results),
                    w.key,
                    reason,
                    message(r, w, reason),
                    now,
                )
            )
        return self._commit(w, got[0], got[1], now, evicted)
