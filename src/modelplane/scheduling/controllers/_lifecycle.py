"""``NodeLifecycleController``: a Node whose node agent stopped renewing its lease is marked
``Ready=Unknown``, so that the claims placed on it are placed elsewhere.

As Kubernetes' node lifecycle controller reads the kubelets' Leases: each node agent renews the
store lease :func:`~modelplane.api.node_lease_name` (``modelplane node``, and the one inside
``up``). For each Node that has such a lease, ``reconcile``:

* marks the Node ``Ready=Unknown`` (reason ``NodeStatusUnknown``, a ``Warning`` Event) once the
  lease has lapsed **and** this controller has seen it unchanged for ``grace`` seconds of its own
  clock, so that a controller that just started (after a restart, a new leader) never condemns a
  node whose agent simply had no chance to renew yet;
* sets ``Ready=True`` again (reason ``NodeLeaseRenewed``) when a Node it had marked renews.

The :class:`ResourceClaimController` treats a Node whose ``Ready`` is not True as down: its
claims' devices are released and placed on another node (``Rescheduled``), and the node agents
there start the replicas. A Node with no lease at all (one published from an inventory file, a
simulated node) is not watched: nothing is expected to renew for it; it is looked at again every
few graces, in case an agent starts renewing for it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from modelplane.api import NODE_LEASE_SECONDS, node_lease_name
from modelplane.api.errors import NotFound
from modelplane.control import (
    Controller,
    Request,
    Result,
    commit_status,
    get_condition,
    set_condition,
)
from modelplane.store import Store

#: the reason of the Ready=Unknown this controller sets (and the only one it lifts)
LOST = "NodeStatusUnknown"
#: a Node without a lease is looked at again after this many graces (a lease may appear)
UNWATCHED_RECHECK = 5.0


class NodeLifecycleController(Controller):
    """Marks Nodes whose heartbeat lease lapsed (see the module docstring).

    ``grace``: seconds a lapsed lease must stay unchanged under this controller's eyes before the
    Node is marked; ``clock``: wall-clock seconds (leases expire on it), ``monotonic``: this
    process's clock (what it has seen, and for how long).
    """

    kind = "Node"
    name = "node-lifecycle"

    def __init__(
        self,
        store: Store,
        *,
        grace: float = NODE_LEASE_SECONDS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(store)
        self.grace = grace
        self._clock = clock
        self._monotonic = monotonic
        #: node -> (the lease expiry last seen, when this controller first saw that expiry)
        self._seen: dict[str, tuple[float, float]] = {}

    def reconcile(self, request: Request) -> Result:
        try:
            node = self.store.get("Node", "", request.name)
        except NotFound:
            self._seen.pop(request.name, None)
            return Result()
        lease = self.store.get_lease(node_lease_name(request.name))
        if lease is None:
            # no agent renews for this node (an inventory's, or one whose agent has not started
            # yet): not watched, looked at again now and then
            return Result(requeue_after=UNWATCHED_RECHECK * self.grace)
        seen = self._seen.get(request.name)
        now = self._monotonic()
        if seen is None or seen[0] != lease.expires_at:
            seen = self._seen[request.name] = (lease.expires_at, now)
        left = lease.expires_at - self._clock()
        if left > 0:
            self._renewed(node)
            return Result(requeue_after=left + 0.1)
        unchanged = now - seen[1]
        if unchanged < self.grace:
            return Result(requeue_after=self.grace - unchanged + 0.1)
        self._lost(node)
        return Result(requeue_after=self.grace)

    def _lost(self, node: dict[str, Any]) -> None:
        status = copy.deepcopy(node.get("status") or {})
        cond = get_condition(status, "Ready")
        if cond is not None and cond.get("status") == "Unknown":
            return
        set_condition(
            status,
            "Ready",
            "Unknown",
            LOST,
            "the node agent stopped renewing its lease; the claims placed here are placed on"
            " other nodes",
        )
        commit_status(self.store, node, status, component=self.name)

    def _renewed(self, node: dict[str, Any]) -> None:
        status = copy.deepcopy(node.get("status") or {})
        cond = get_condition(status, "Ready")
        if cond is None or cond.get("reason") != LOST:
            return  # only lift what this controller set
        set_condition(status, "Ready", True, "NodeLeaseRenewed", "the node agent renews its lease")
        commit_status(self.store, node, status, component=self.name)
