"""The file inventory: a YAML (or JSON) of DeviceClasses, ResourceSlices and Nodes.

This is how simulated clusters of any size and any device type enter the control plane:
``modelplane sim cluster --nodes 64 > cluster.yaml`` writes one, :func:`load_inventory` reads it
(with ``file:line:column`` for every problem) and :func:`file_publication` turns it into a
:class:`~modelplane.drivers.Publication`. Slices keep their names and devices; their pools get
generations from :func:`~modelplane.drivers.publish`. Nodes get the ``kubernetes.io/hostname``
label (their name) when the file does not set it; rack and block labels are kept as written.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from modelplane.api import TOPOLOGY_LABELS, Manifest, load_paths, validate
from modelplane.api.errors import Cause, Invalid

from ._publish import NODE_API_VERSION, Pool, Publication

__all__ = ["file_publication", "load_inventory"]

JSON = dict[str, Any]
_KINDS = ("DeviceClass", "ResourceSlice", "Node")


def load_inventory(paths: Iterable[str | Path]) -> list[JSON]:
    """The DeviceClasses, ResourceSlices and Nodes in ``paths``, validated and normalised.

    Raises :class:`~modelplane.api.errors.Invalid` (each cause with ``file:line:column``) for
    objects of other kinds and for objects that do not validate, and
    :class:`~modelplane.api.errors.BadRequest` for files that cannot be read or parsed.
    """
    manifests = load_paths(paths)
    out: list[JSON] = []
    causes: list[Cause] = []
    for m in manifests:
        obj = _normalised(m)
        kind = obj.get("kind")
        if kind not in _KINDS:
            causes.append(
                Cause(
                    "kind",
                    f"a device inventory holds DeviceClass, ResourceSlice and Node objects, not"
                    f" {kind}; apply it with `modelplane apply -f` instead",
                    "FieldValueNotSupported",
                    m.location(["kind"]),
                )
            )
            continue
        try:
            out.append(validate(obj, manifest=m))
        except Invalid as exc:
            causes.extend(exc.causes)
    if causes:
        sources = sorted({m.source for m in manifests})
        raise Invalid(
            f"{', '.join(sources)}: {len(causes)} problem(s) in the inventory", causes=causes
        )
    return out


def _normalised(m: Manifest) -> JSON:
    obj = dict(m.obj)
    # Nodes written as Kubernetes core/v1 objects are ours: same name, labels and conditions.
    if obj.get("kind") == "Node" and obj.get("apiVersion") == "v1":
        obj["apiVersion"] = NODE_API_VERSION
    return obj


def file_publication(objs: Iterable[JSON], publisher: str) -> Publication:
    """A publication of the inventory objects ``objs`` (from :func:`load_inventory`)."""
    pub = Publication(publisher=publisher)
    pools: dict[tuple[str, str], Pool] = {}
    for obj in objs:
        kind = obj.get("kind")
        if kind == "DeviceClass":
            pub.device_classes.append(obj)
        elif kind == "Node":
            node = dict(obj)
            meta = dict(node.get("metadata") or {})
            labels = dict(meta.get("labels") or {})
            labels.setdefault(TOPOLOGY_LABELS["host"], str(meta.get("name")))
            meta["labels"] = labels
            node["metadata"] = meta
            pub.nodes.append(node)
        elif kind == "ResourceSlice":
            spec = obj.get("spec") or {}
            driver = str(spec.get("driver", ""))
            pool_name = str((spec.get("pool") or {}).get("name", ""))
            pool = pools.setdefault((driver, pool_name), Pool(driver, pool_name, []))
            pool.slices.append({"name": obj["metadata"]["name"], "spec": spec})
    pub.pools = list(pools.values())
    return pub
