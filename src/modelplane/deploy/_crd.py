"""CustomResourceDefinitions of our kinds, generated from their schemas (``apiextensions.k8s.io/v1``).

One CRD per kind of the ``modelplane.dev`` group, with the kind's JSON Schema made structural
(:mod:`modelplane.deploy._structural`), the ``status`` subresource, printer columns from the kind's
``COLUMNS`` and its short names. Not rendered: the DRA kinds (Kubernetes' own ``resource.k8s.io/v1``
serves them), and ``Secret`` and ``Event``, which Kubernetes' core kinds of the same shape serve.
Short names a built-in kind already has (``ep``, ``no``, ``ev``...) are left out, since kubectl
would resolve them to the built-in kind.
"""

from __future__ import annotations

import re
from typing import Any

from modelplane.api import KindInfo, json_schema, kinds
from modelplane.deploy._structural import structural

#: our kinds that Kubernetes serves with its own kind of the same shape
CORE_SERVED = frozenset({"Secret", "Event"})
#: short names of Kubernetes' built-in kinds (kubectl prefers those)
BUILTIN_SHORT_NAMES = frozenset(
    {
        "cm",
        "crd",
        "crds",
        "cs",
        "csr",
        "cj",
        "deploy",
        "ds",
        "ep",
        "ev",
        "hpa",
        "ing",
        "limits",
        "netpol",
        "no",
        "ns",
        "pc",
        "pdb",
        "po",
        "pv",
        "pvc",
        "quota",
        "rc",
        "rs",
        "sa",
        "sc",
        "sts",
        "svc",
    }
)
CATEGORY = "modelplane"
_INDEX = re.compile(r"^([^\[\]]+)\[([^\]]+)\]$")


def crd_kinds() -> list[KindInfo]:
    """The kinds rendered as CRDs: ours, less the DRA kinds and those core Kubernetes serves."""
    return [k for k in kinds() if k.group == "modelplane.dev" and k.kind not in CORE_SERVED]


def custom_resource_definition(info: KindInfo) -> dict[str, Any]:
    """The ``CustomResourceDefinition`` of one kind."""
    schema = _object_schema(info)
    version: dict[str, Any] = {
        "name": info.version,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
    }
    if "status" in schema.get("properties", {}):
        version["subresources"] = {"status": {}}
    version["additionalPrinterColumns"] = printer_columns(info, schema)
    names: dict[str, Any] = {
        "kind": info.kind,
        "listKind": f"{info.kind}List",
        "plural": info.plural,
        "singular": info.singular,
        "categories": [CATEGORY],
    }
    short = [s for s in info.short_names if s not in BUILTIN_SHORT_NAMES]
    if short:
        names["shortNames"] = short
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{info.group}",
            "labels": {"app.kubernetes.io/part-of": "modelplane"},
        },
        "spec": {
            "group": info.group,
            "names": names,
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "versions": [version],
        },
    }


def _object_schema(info: KindInfo) -> dict[str, Any]:
    raw = json_schema(info.kind)
    properties = dict(raw.get("properties", {}))
    # the API server owns these three; a CRD may not constrain metadata beyond its name
    properties["apiVersion"] = {"type": "string", "description": "Group and version of the kind."}
    properties["kind"] = {"type": "string", "description": "The kind."}
    del properties["metadata"]
    raw = {**raw, "properties": properties}
    raw.pop("x-kubernetes-group-version-kind", None)
    schema = structural(raw)
    # after the conversion, which would mark a bare object free-form: metadata must be just this
    schema["properties"] = {"metadata": {"type": "object"}, **schema["properties"]}
    required = [
        r for r in schema.get("required", []) if r not in ("apiVersion", "kind", "metadata")
    ]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)
    return schema


def printer_columns(info: KindInfo, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """``additionalPrinterColumns`` from the kind's ``COLUMNS``, then AGE as kubectl shows it."""
    columns = [
        {"name": header, "type": _column_type(schema, path), "jsonPath": json_path(path)}
        for header, path in info.columns
    ]
    columns.append({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})
    return columns


def json_path(path: str) -> str:
    """A ``COLUMNS`` path as Kubernetes' JSONPath: ``status.conditions[type=Ready].status`` is
    ``.status.conditions[?(@.type=="Ready")].status``, ``versions[-1]`` is ``versions[-1:]``."""
    out = []
    for part in path.split("."):
        match = _INDEX.match(part)
        if match is None:
            out.append(f".{part}")
            continue
        name, index = match.groups()
        if "=" in index:
            field, _, value = index.partition("=")
            out.append(f'.{name}[?(@.{field}=="{value}")]')
        elif index.startswith("-"):
            out.append(f".{name}[{index}:]")
        else:
            out.append(f".{name}[{index}]")
    return "".join(out)


def _column_type(schema: dict[str, Any], path: str) -> str:
    node: dict[str, Any] | None = schema
    for part in path.split("."):
        match = _INDEX.match(part)
        name = match.group(1) if match else part
        node = (node or {}).get("properties", {}).get(name)
        if match and node is not None:
            node = node.get("items")
        if node is None:
            return "string"
    kind = node.get("type") if node else None
    return kind if kind in ("integer", "number", "boolean") else "string"
