"""Preemption: who may be evicted to admit a workload, in which order, and how it is reported.

Rules, as in Kueue, from the preemptor's Queue ``spec.preemption``:

- ``withinQueue: LowerPriority`` evicts the queue's own workloads of lower priority
  (``LowerOrNewerEqualPriority`` also those of equal priority that arrived later);
- ``reclaimWithinCohort: Any`` (or ``LowerPriority``: only lower priority ones) evicts workloads of
  other queues in the cohort while those queues borrow, and only when the preemptor's queue stays
  within its nominal quota: it takes back what it lent, never borrows by evicting.

Candidates are tried cheapest first (lowest priority, then the most recently started); victims are
removed one by one until the workload fits both its quota and the devices, then each one whose
eviction turns out unnecessary is given back, so the set is minimal. When even evicting every
candidate would not make room, nobody is evicted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._gang import GangPlacement, Workload
    from ._queues import QueueSet, Usage

__all__ = ["IN_COHORT", "IN_QUEUE", "Preemption", "Running", "candidates"]

IN_QUEUE = "InClusterQueue"
IN_COHORT = "InCohortReclamation"


@dataclass(slots=True)
class Running:
    """An admitted workload: where its replicas run and what it counts against its queue."""

    workload: Workload
    placement: GangPlacement
    usage: Usage
    started: float


@dataclass(slots=True, frozen=True)
class Preemption:
    """One evicted workload: its claims are released and it waits in its queue again."""

    victim: str  # namespace/name of the claim or job
    claims: tuple[str, ...]
    by: str  # the workload that took its place
    reason: str  # InClusterQueue | InCohortReclamation
    message: str
    time: float = 0.0

    def condition(self) -> dict[str, Any]:
        """The victim's ``Admitted`` condition, as its status reports it."""
        return {
            "type": "Admitted",
            "status": "False",
            "reason": "Preempted",
            "message": self.message,
        }


def candidates(w: Workload, running: list[Running], queues: QueueSet) -> list[tuple[Running, str]]:
    """Running workloads ``w`` may evict, cheapest first, each with its preemption reason."""
    if w.queue is None or w.queue not in queues:
        return []
    q = queues[w.queue]
    out: list[tuple[Running, str]] = []
    for r in running:
        other = r.workload
        if other.queue == w.queue:
            lower = other.priority < w.priority
            newer_equal = other.priority == w.priority and other.arrival > w.arrival
            if (q.within_queue == "LowerPriority" and lower) or (
                q.within_queue == "LowerOrNewerEqualPriority" and (lower or newer_equal)
            ):
                out.append((r, IN_QUEUE))
        elif (
            q.cohort
            and other.queue is not None
            and other.queue in queues
            and queues[other.queue].cohort == q.cohort
            and (
                q.reclaim_within_cohort == "Any"
                or (q.reclaim_within_cohort == "LowerPriority" and other.priority < w.priority)
            )
        ):
            out.append((r, IN_COHORT))
    out.sort(key=lambda c: (c[0].workload.priority, -c[0].started, c[0].workload.key))
    return out


def message(victim: Running, w: Workload, reason: str) -> str:
    who = f"{w.key} (priority {w.priority})"
    if reason == IN_QUEUE:
        return f"preempted by {who} in queue {w.queue}: it has priority {victim.workload.priority}"
    return (
        f"preempted by {who}: queue {w.queue} reclaims the quota it lent to cohort; "
        f"queue {victim.workload.queue} was borrowing"
    )
