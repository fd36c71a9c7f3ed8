"""NodePools: nodes added when claims wait for a pool's DeviceClass, removed once they stay empty.

The :class:`NodePoolController` reconciles each ``NodePool`` (level-triggered, from the store):

* **pending**: the devices asked for by ResourceClaims of the pool's ``deviceClassName`` that the
  scheduler marked ``Allocated=False`` (``Unschedulable``): ``count`` per ``exactly`` request
  (a node's worth for ``allocationMode: All``), a ``firstAvailable`` request counted by its first
  alternative of the class;
* **add** (:func:`nodes_to_add`): when pending exceeds the free devices of the pool's nodes, enough
  nodes of the template for the rest, within ``limits.nodes`` and ``limits.devices``;
* **remove** (:func:`nodes_to_remove`): a node with no allocated device for ``consolidateAfter``
  (counted from ``status.nodes[].emptySince``, so a restarted controller keeps the count), while
  no claim of the class waits;
* **status**: ``nodes[] {name, devices, allocated, createdAt, emptySince}``, ``nodeCount``,
  ``deviceCount``, ``pendingDevices``, ``costPerHour`` and ``Ready`` (False with the reason when
  a limit stops it, or the provider is unknown or failed); an Event ``NodeAdded`` /
  ``NodeRemoved`` per node.

Machines come from a :class:`NodeProvider` (``create_node``, ``delete_node``), chosen by
``spec.provider``. :class:`SimulatedProvider` publishes a Node labelled ``modelplane.dev/simulated``
and its ResourceSlice through :func:`~modelplane.drivers.publish`, as the simulated driver does;
a cloud's provider would call its API to start an instance whose node agent publishes the same.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from modelplane.api import HOSTNAME_LABEL, NODEPOOL_LABEL, SIMULATED_LABEL, parse_duration
from modelplane.api.errors import NotFound
from modelplane.control import (
    Controller,
    Request,
    Result,
    StatusEvent,
    Watches,
    commit_status,
    get_condition,
    parse_rfc3339,
    rfc3339,
    set_condition,
)
from modelplane.drivers import Pool, Publication, label_value, publish
from modelplane.store import Store

JSON = dict[str, Any]


class NodeProvider(Protocol):
    """Who makes a pool's machines. Both calls are idempotent: a node already there (or already
    gone) is no error; a failure raises, and the controller says so in the pool's status."""

    def create_node(self, pool: JSON, name: str) -> None:
        """Start a machine named ``name`` of ``pool``'s template, its node labelled
        ``modelplane.dev/nodepool=<pool>``; it publishes its devices as ResourceSlices."""

    def delete_node(self, pool: JSON, name: str) -> None:
        """Stop the machine ``name``; its Node and ResourceSlices go away."""


class SimulatedProvider:
    """Nodes and ResourceSlices in the store, as the simulated driver publishes them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create_node(self, pool: JSON, name: str) -> None:
        publish(self.store, _publication(pool, name))

    def delete_node(self, pool: JSON, name: str) -> None:
        publish(self.store, Publication(publisher=_publisher(name)))
        with contextlib.suppress(NotFound):
            self.store.delete("Node", "", name)


def _publisher(node: str) -> str:
    return label_value(f"nodepool-{node}")


def _publication(pool: JSON, name: str) -> Publication:
    pool_name = str(pool["metadata"]["name"])
    template = (pool.get("spec") or {}).get("template") or {}
    driver = str(template.get("driver") or "gpu.nvidia.com")
    devices = [
        {
            "name": f"dev-{i}",
            "attributes": {
                **{k: _attribute(v) for k, v in (template.get("attributes") or {}).items()},
                "index": {"int": i},
            },
            **(
                {"capacity": {k: {"value": str(v)} for k, v in template["capacity"].items()}}
                if template.get("capacity")
                else {}
            ),
        }
        for i in range(int(template.get("devices") or 1))
    ]
    labels = {
        **(template.get("labels") or {}),
        NODEPOOL_LABEL: pool_name,
        SIMULATED_LABEL: "true",
        HOSTNAME_LABEL: name,
    }
    node = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {},
    }
    slice_ = {
        "name": f"{name}-{label_value(driver)}",
        "spec": {"nodeName": name, "devices": devices},
    }
    return Publication(
        publisher=_publisher(name),
        pools=[Pool(driver, name, [slice_])],
        nodes=[node],
        ready={name: ("Provisioned", f"added by NodePool {pool_name}")},
    )


def _attribute(value: Any) -> JSON:
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    return {"string": str(value)}


# -- the decisions, pure (the simulator uses them too) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class PoolNode:
    """A node of a pool as the controller sees it: devices, how many are allocated, since when
    it has been empty (None while something runs there)."""

    name: str
    devices: int
    allocated: int
    empty_since: float | None


def nodes_to_add(
    pending: Iterable[int],
    nodes: Iterable[PoolNode],
    per_node: int,
    max_nodes: int | None,
    max_devices: int | None,
) -> tuple[int, str | None]:
    """(nodes to add for the ``pending`` claims' device counts, the limit that held it back).

    A claim's devices come from one node (its allocation names one), so the claims are packed
    first fit, largest first, into the free devices of the pool's nodes and then of new ones; a
    claim larger than a node is left out (no node of this pool can hold it).
    """
    held = list(nodes)
    free = [max(0, n.devices - n.allocated) for n in held]
    new: list[int] = []
    for size in sorted((p for p in pending if 0 < p <= per_node), reverse=True):
        for bins in (free, new):
            spot = next((i for i, room in enumerate(bins) if room >= size), None)
            if spot is not None:
                bins[spot] -= size
                break
        else:
            new.append(per_node - size)
    wanted = room = len(new)
    limit = None
    if max_nodes is not None and len(held) + room > max_nodes:
        room, limit = max(0, max_nodes - len(held)), f"limits.nodes ({max_nodes})"
    total = sum(n.devices for n in held)
    if max_devices is not None and total + room * per_node > max_devices:
        room, limit = max(0, (max_devices - total) // per_node), f"limits.devices ({max_devices})"
    return min(wanted, room), limit


def nodes_to_remove(
    nodes: Iterable[PoolNode], pending: int, now: float, consolidate_after: float
) -> list[str]:
    """The nodes empty for ``consolidate_after`` seconds at ``now``; none while claims wait."""
    if pending > 0:
        return []
    return [
        n.name
        for n in nodes
        if n.empty_since is not None and now - n.empty_since >= consolidate_after
    ]


def pending_claims(claims: Iterable[JSON], device_class: str, per_node: int) -> list[int]:
    """Devices asked for, per unschedulable claim of ``device_class`` (module docstring)."""
    out = []
    for claim in claims:
        status = claim.get("status") or {}
        allocated = get_condition(status, "Allocated") or {}
        if status.get("allocation") or allocated.get("reason") != "Unschedulable":
            continue
        requests = ((claim.get("spec") or {}).get("devices") or {}).get("requests") or []
        size = sum(_request_devices(r, device_class, per_node) for r in requests)
        if size:
            out.append(size)
    return out


def _request_devices(request: JSON, device_class: str, per_node: int) -> int:
    options = [request["exactly"]] if request.get("exactly") else []
    options += request.get("firstAvailable") or []
    for option in options:
        if option.get("deviceClassName") == device_class:
            if option.get("allocationMode") == "All":
                return per_node
            return int(option.get("count") or 1)
    return 0


# -- the controller ------------------------------------------------------------------------------

#: a change of a claim or a Node requeues every pool (a few pools, many claims)
_ALL_POOLS = Request("", "")
_LAUNCH_GRACE = 60.0


def _all_pools(_obj: JSON) -> list[Request]:
    return [_ALL_POOLS]


class NodePoolController(Controller):
    """Adds and removes the nodes of NodePools (module docstring).

    ``providers``: provider name -> :class:`NodeProvider` (default: ``simulated`` only);
    ``clock``: wall-clock seconds (``emptySince`` is written in status as RFC 3339).
    """

    kind = "NodePool"
    name = "nodepool-controller"
    watches = (Watches("ResourceClaim", _all_pools), Watches("Node", _all_pools))

    def __init__(
        self,
        store: Store,
        *,
        providers: Mapping[str, NodeProvider] | None = None,
        clock: Callable[[], float] = time.time,
        resync: float | None = 30.0,
    ) -> None:
        super().__init__(store, resync=resync)
        self.providers: dict[str, NodeProvider] = (
            dict(providers) if providers is not None else {"simulated": SimulatedProvider(store)}
        )
        self.clock = clock
        #: nodes created but not in the Node cache yet: name -> (pool, when)
        self._launched: dict[str, tuple[str, float]] = {}

    def reconcile(self, request: Request) -> Result | None:
        if request == _ALL_POOLS:
            for each in self.informer().list():
                self.enqueue(Request("", str(each["metadata"]["name"])))
            return None
        pool = self.live_object(request)
        if pool is None:
            return None
        spec = pool.get("spec") or {}
        provider = self.providers.get(str(spec.get("provider") or "simulated"))
        now = self.clock()
        nodes = self._nodes(pool, now)
        per_node = int((spec.get("template") or {}).get("devices") or 1)
        claims = self.informer("ResourceClaim").list()
        sizes = pending_claims(claims, str(spec.get("deviceClassName")), per_node)
        pending = sum(sizes)
        status: JSON = {k: v for k, v in (pool.get("status") or {}).items() if k != "nodes"}
        if provider is None:
            known = ", ".join(sorted(self.providers)) or "none"
            why = f"provider {spec.get('provider')!r} is not configured here (known: {known})"
            set_condition(status, "Ready", False, "UnknownProvider", why)
            return self._commit(pool, status, nodes, pending, None)
        limits = spec.get("limits") or {}
        add, limit = nodes_to_add(
            sizes, nodes, per_node, limits.get("nodes"), limits.get("devices")
        )
        consolidate = _seconds(spec.get("consolidateAfter"))
        try:
            for _ in range(add):
                nodes.append(self._add(pool, provider, per_node, now))
            for name in nodes_to_remove(nodes, pending, now, consolidate):
                provider.delete_node(pool, name)
                nodes = [n for n in nodes if n.name != name]
                self._launched.pop(name, None)
                self.record(
                    pool,
                    StatusEvent("Normal", "NodeRemoved", f"{name}: empty for {consolidate:g}s"),
                )
        except Exception as exc:  # a cloud's API failing: say so, try again
            set_condition(status, "Ready", False, "ProviderFailed", f"{type(exc).__name__}: {exc}")
            return self._commit(pool, status, nodes, pending, 5.0)
        too_big = [size for size in sizes if size > per_node]
        if limit is not None and add == 0:
            why = f"{pending} device(s) wait but {limit} is reached; raise it or free devices"
            set_condition(status, "Ready", False, "LimitReached", why)
        elif too_big:
            why = (
                f"{len(too_big)} claim(s) ask for more devices ({max(too_big)}) than a node of"
                f" this pool has ({per_node}); raise template.devices"
            )
            set_condition(status, "Ready", False, "ClaimTooLarge", why)
        else:
            set_condition(status, "Ready", True, "Provisioned", f"{len(nodes)} node(s)")
        empty = [n.empty_since for n in nodes if n.empty_since is not None]
        wake = min((e + consolidate - now for e in empty), default=None)
        return self._commit(pool, status, nodes, pending, None if wake is None else max(1.0, wake))

    def _add(self, pool: JSON, provider: NodeProvider, per_node: int, now: float) -> PoolNode:
        pool_name = str(pool["metadata"]["name"])
        name = f"{pool_name}-{secrets.token_hex(3)}"
        provider.create_node(pool, name)
        self._launched[name] = (pool_name, now)
        self.record(pool, StatusEvent("Normal", "NodeAdded", f"{name}: {per_node} device(s)"))
        return PoolNode(name, per_node, 0, now)

    def _nodes(self, pool: JSON, now: float) -> list[PoolNode]:
        """The pool's nodes: from the Node cache, plus the ones just created and not seen yet."""
        pool_name = str(pool["metadata"]["name"])
        per_node = int(((pool.get("spec") or {}).get("template") or {}).get("devices") or 1)
        before = {
            str(n.get("name")): n.get("emptySince")
            for n in (pool.get("status") or {}).get("nodes") or []
            if isinstance(n, dict)
        }
        allocated = _allocated_per_pool(self.informer("ResourceClaim").list())
        seen: list[PoolNode] = []
        for node in self.informer("Node").list():
            meta = node.get("metadata") or {}
            if (meta.get("labels") or {}).get(NODEPOOL_LABEL) != pool_name:
                continue
            name = str(meta["name"])
            self._launched.pop(name, None)
            used = allocated.get(name, 0)
            since = _since(before.get(name), now) if used == 0 else None
            seen.append(PoolNode(name, per_node, used, since))
        names = {n.name for n in seen}
        for name, (owner, when) in list(self._launched.items()):
            if now - when > _LAUNCH_GRACE:
                del self._launched[name]
            elif owner == pool_name and name not in names:
                seen.append(PoolNode(name, per_node, 0, _since(before.get(name), when)))
        return sorted(seen, key=lambda n: n.name)

    def _commit(
        self, pool: JSON, status: JSON, nodes: list[PoolNode], pending: int, after: float | None
    ) -> Result:
        price = float((pool.get("spec") or {}).get("pricePerHour") or 0.0)
        status["nodes"] = [
            {
                "name": n.name,
                "devices": n.devices,
                "allocated": n.allocated,
                **({"emptySince": rfc3339(n.empty_since)} if n.empty_since is not None else {}),
            }
            for n in nodes
        ]
        status["nodeCount"] = len(nodes)
        status["deviceCount"] = sum(n.devices for n in nodes)
        status["pendingDevices"] = pending
        status["costPerHour"] = round(price * len(nodes), 4)
        written = commit_status(self.store, pool, status, component=self.component)
        if written is None:
            return Result(requeue=True)
        return Result(requeue_after=after)


def _allocated_per_pool(claims: Iterable[JSON]) -> dict[str, int]:
    """Allocated devices per DRA pool name (a pool node's pool is named as the node)."""
    out: dict[str, int] = {}
    for claim in claims:
        allocation = (claim.get("status") or {}).get("allocation") or {}
        for result in (allocation.get("devices") or {}).get("results") or []:
            pool = str(result.get("pool") or "")
            out[pool] = out.get(pool, 0) + 1
    return out


def _since(text: Any, default: float) -> float:
    try:
        return parse_rfc3339(str(text)) if text else default
    except ValueError:
        return default


def _seconds(text: Any) -> float:
    return parse_duration(str(text or "30s"))
