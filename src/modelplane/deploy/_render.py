"""``render kubernetes``: manifests in, the Kubernetes objects of the platform and its Endpoints out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelplane.api import Manifest, check_dns_label, errors, validate
from modelplane.deploy._components import platform_objects
from modelplane.deploy._crd import crd_kinds, custom_resource_definition
from modelplane.deploy._endpoints import endpoint_objects
from modelplane.deploy._objects import Objects

DEFAULT_NAMESPACE = "modelplane"


@dataclass
class Rendered:
    """What ``render kubernetes`` emits, in the order to apply it."""

    crds: Objects = field(default_factory=list)
    platform: Objects = field(default_factory=list)
    endpoints: Objects = field(default_factory=list)

    @property
    def files(self) -> dict[str, Objects]:
        """File name -> objects, as ``-o DIR`` writes them (applied in name order)."""
        return {
            "00-crds.yaml": self.crds,
            "10-platform.yaml": self.platform,
            "20-endpoints.yaml": self.endpoints,
        }

    def all(self) -> Objects:
        return [*self.crds, *self.platform, *self.endpoints]


def render(
    manifests: list[Manifest], namespace: str = DEFAULT_NAMESPACE, image: str = ""
) -> Rendered:
    """The CRDs, the platform's workloads in ``namespace`` and every Endpoint's replicas.

    Each manifest is validated first (:class:`~modelplane.api.errors.Invalid` with file and line
    on a bad one); an Endpoint whose Model is not among ``manifests`` raises
    :class:`~modelplane.api.errors.BadRequest`.
    """
    try:
        check_dns_label(namespace)
    except ValueError as exc:
        raise errors.BadRequest(f"--namespace {namespace!r}: {exc}") from None
    if not image.strip():
        raise errors.BadRequest("--image must name a container image, e.g. modelplane:0.1.0")
    objects = [validate(m.obj, manifest=m) for m in manifests]
    models = {
        (o["metadata"]["namespace"], o["metadata"]["name"]): o
        for o in objects
        if o["kind"] == "Model"
    }
    endpoints: Objects = []
    for obj in objects:
        if obj["kind"] == "Endpoint":
            endpoints.extend(endpoint_objects(obj, models, image))
    return Rendered(
        crds=[custom_resource_definition(info) for info in crd_kinds()],
        platform=platform_objects(namespace, image),
        endpoints=endpoints,
    )


class _Dumper(yaml.SafeDumper):
    """YAML without anchors: a label set shared by two objects is written out twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """Objects as one multi-document YAML text, keys in the order they were built."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, explicit_start=True, width=100)


def write(rendered: Rendered, folder: Path) -> list[Path]:
    """``rendered`` as its :attr:`Rendered.files` under ``folder`` (created); the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, objects in rendered.files.items():
        path = folder / name
        path.write_text(to_yaml(objects) if objects else "", encoding="utf-8")
        written.append(path)
    return written
