"""Publishing device inventories into the store, as a DRA driver's kubelet plugin does.

A :class:`Publication` is everything one publisher (the NVML driver on one host, the CPU driver,
a file inventory) says exists: DeviceClasses, Nodes, and pools of ResourceSlices. :func:`publish`
makes the store say the same, writing only what changed:

* a pool whose slices changed gets the next ``pool.generation`` (every slice of it is rewritten
  with that generation and ``resourceSliceCount``), so the scheduler never mixes old and new;
* slices this publisher wrote before and no longer publishes are deleted (they carry the label
  :data:`PUBLISHER_LABEL`, which is how they are found again);
* DeviceClasses and Nodes are created or updated; a Node's labels and annotations are merged
  with what is already there, and a ``Ready`` condition given by the publisher is set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelplane.api import PUBLISHER_LABEL
from modelplane.api.errors import AlreadyExists, Conflict, NotFound
from modelplane.control import set_condition
from modelplane.store import Store

__all__ = [
    "DRA_API_VERSION",
    "NODE_API_VERSION",
    "PUBLISHER_LABEL",
    "Pool",
    "Publication",
    "PublishReport",
    "label_value",
    "publish",
]

DRA_API_VERSION = "resource.k8s.io/v1"
NODE_API_VERSION = "modelplane.dev/v1alpha1"

JSON = dict[str, Any]
_ATTEMPTS = 5


@dataclass
class Pool:
    """One pool of one driver: its slices, each ``{"name": ..., "spec": {...}}``.

    A slice spec holds what the driver describes (``nodeName`` or ``allNodes``, ``devices``,
    ``sharedCounters``); ``driver`` and ``pool`` (name, generation, count) are filled in here.
    """

    driver: str
    name: str
    slices: list[JSON]


@dataclass
class Publication:
    """What one publisher says exists; ``publisher`` names it (a label value, see above)."""

    publisher: str
    pools: list[Pool] = field(default_factory=list)
    device_classes: list[JSON] = field(default_factory=list)
    nodes: list[JSON] = field(default_factory=list)
    #: node name -> (reason, message) of a ``Ready=True`` condition to set on that Node
    ready: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass
class PublishReport:
    """What :func:`publish` wrote: names of objects per outcome."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def label_value(text: str) -> str:
    """``text`` made a valid label value: at most 63 of ``[A-Za-z0-9._-]``, alphanumeric ends."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63].strip("-._")
    return value or "unnamed"


def publish(store: Store, publication: Publication) -> PublishReport:
    """Make the store hold exactly what ``publication`` says (see the module docstring)."""
    report = PublishReport()
    for cls in publication.device_classes:
        _apply_cluster_object(store, cls, report)
    for node in publication.nodes:
        _apply_node(store, node, publication.ready.get(_name(node)), report)
    for name, ready in publication.ready.items():
        if not any(_name(n) == name for n in publication.nodes):
            _apply_node(store, {"metadata": {"name": name}}, ready, report)
    _publish_slices(store, publication, report)
    return report


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _apply_cluster_object(store: Store, obj: JSON, report: PublishReport) -> None:
    kind, name = str(obj["kind"]), _name(obj)
    try:
        current = store.get(kind, "", name)
    except NotFound:
        try:
            store.create(obj)
            report.created.append(f"{kind}/{name}")
            return
        except AlreadyExists:
            current = store.get(kind, "", name)
    if current.get("spec") == obj.get("spec"):
        report.unchanged.append(f"{kind}/{name}")
        return
    desired = dict(current)
    desired["spec"] = obj.get("spec")
    desired["metadata"] = {k: v for k, v in current["metadata"].items() if k != "resourceVersion"}
    store.update(desired)
    report.updated.append(f"{kind}/{name}")


def _apply_node(
    store: Store, node: JSON, ready: tuple[str, str] | None, report: PublishReport
) -> None:
    name = _name(node)
    meta = node.get("metadata") or {}
    for _ in range(_ATTEMPTS):
        try:
            current = store.get("Node", "", name)
        except NotFound:
            fresh = {
                "apiVersion": NODE_API_VERSION,
                "kind": "Node",
                "metadata": {
                    k: v for k, v in meta.items() if k in ("name", "labels", "annotations")
                },
                "spec": dict(node.get("spec") or {}),
            }
            try:
                current = store.create(fresh)
                report.created.append(f"Node/{name}")
            except AlreadyExists:
                continue
        else:
            merged = _merged_node(current, node)
            if merged is not None:
                try:
                    current = store.update(merged)
                except Conflict:
                    continue
                report.updated.append(f"Node/{name}")
            else:
                report.unchanged.append(f"Node/{name}")
        status = dict(node.get("status") or current.get("status") or {})
        if ready is not None:
            set_condition(status, "Ready", True, ready[0], ready[1])
        if status and status != current.get("status"):
            try:
                store.update_status({**current, "status": status})
            except Conflict:
                continue
        return
    raise Conflict(f"Node {name}: other writers kept changing it; publishing it again will retry")


def _merged_node(current: JSON, node: JSON) -> JSON | None:
    """``current`` with the labels, annotations and spec of ``node`` merged in; None if equal."""
    meta = dict(current["metadata"])
    want = node.get("metadata") or {}
    labels = {**(meta.get("labels") or {}), **(want.get("labels") or {})}
    annotations = {**(meta.get("annotations") or {}), **(want.get("annotations") or {})}
    spec = {**(current.get("spec") or {}), **(node.get("spec") or {})}
    if (
        labels == (meta.get("labels") or {})
        and annotations == (meta.get("annotations") or {})
        and spec == (current.get("spec") or {})
    ):
        return None
    meta["labels"], meta["annotations"] = labels, annotations
    return {**current, "metadata": meta, "spec": spec}


def _comparable(spec: Mapping[str, Any]) -> JSON:
    out = dict(spec)
    out.pop("pool", None)
    return out


def _publish_slices(store: Store, publication: Publication, report: PublishReport) -> None:
    label = label_value(publication.publisher)
    ours = store.list("ResourceSlice", label_selector=f"{PUBLISHER_LABEL}={label}").items
    by_pool: dict[tuple[str, str], dict[str, JSON]] = {}
    for s in ours:
        spec = s.get("spec") or {}
        key = (str(spec.get("driver", "")), str((spec.get("pool") or {}).get("name", "")))
        by_pool.setdefault(key, {})[_name(s)] = s
    wanted: set[str] = set()
    for pool in publication.pools:
        existing = by_pool.get((pool.driver, pool.name), {})
        desired = {str(s["name"]): s for s in pool.slices}
        wanted.update(desired)
        same = set(existing) == set(desired) and all(
            _comparable(existing[n]["spec"]) == _comparable(_slice_spec(pool, s))
            for n, s in desired.items()
        )
        if same:
            report.unchanged.extend(f"ResourceSlice/{n}" for n in desired)
            continue
        generation = 1 + max(
            (
                int(((s["spec"].get("pool") or {}).get("generation")) or 0)
                for s in existing.values()
            ),
            default=_current_generation(store, pool),
        )
        for n, s in desired.items():
            spec = _slice_spec(pool, s)
            spec["pool"] = {
                "name": pool.name,
                "generation": generation,
                "resourceSliceCount": len(desired),
            }
            obj = {
                "apiVersion": DRA_API_VERSION,
                "kind": "ResourceSlice",
                "metadata": {"name": n, "labels": {PUBLISHER_LABEL: label}},
                "spec": spec,
            }
            _write_slice(store, obj, report)
    for s in ours:
        if _name(s) not in wanted:
            try:
                store.delete("ResourceSlice", "", _name(s))
                report.deleted.append(f"ResourceSlice/{_name(s)}")
            except NotFound:
                pass


def _slice_spec(pool: Pool, s: Mapping[str, Any]) -> JSON:
    spec = {k: v for k, v in (s.get("spec") or {}).items() if k not in ("driver", "pool")}
    return {"driver": pool.driver, **spec}


def _current_generation(store: Store, pool: Pool) -> int:
    """Newest generation of the pool among slices of other publishers (a take-over goes above)."""
    newest = 0
    for s in store.list("ResourceSlice").items:
        spec = s.get("spec") or {}
        p = spec.get("pool") or {}
        if spec.get("driver") == pool.driver and p.get("name") == pool.name:
            newest = max(newest, int(p.get("generation") or 0))
    return newest


def _write_slice(store: Store, obj: JSON, report: PublishReport) -> None:
    name = _name(obj)
    try:
        store.create(obj)
        report.created.append(f"ResourceSlice/{name}")
        return
    except AlreadyExists:
        pass
    current = store.get("ResourceSlice", "", name)
    meta = {k: v for k, v in current["metadata"].items() if k != "resourceVersion"}
    meta["labels"] = {**(meta.get("labels") or {}), **obj["metadata"]["labels"]}
    store.update({**current, "metadata": meta, "spec": obj["spec"]})
    report.updated.append(f"ResourceSlice/{name}")
