"""The Helm chart: the objects ``render kubernetes`` emits, as a chart with values.

``Chart.yaml``, ``values.yaml`` (the image, each component's replicas), ``crds/`` (the CRDs, which
Helm installs before the templates and never templates), ``templates/platform.yaml`` (the
components in the release's namespace; ``helm install --create-namespace`` makes it) and
``templates/endpoints.yaml`` (each Endpoint's replicas, in the Endpoints' own namespaces). The
templates use only ``{{ .Release.Namespace }}``, ``{{ .Values.<path> }}`` and ``{{ .Values.image | quote }}``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from modelplane import __version__
from modelplane.deploy._objects import Objects
from modelplane.deploy._render import Rendered, to_yaml

#: what the chart's templates take from values.yaml (component -> values key)
REPLICA_VALUES = {"server": "server", "gateway": "gateway", "agent-worker": "agentWorker"}
#: stand-ins rendered into the objects, replaced by template expressions in the text
NAMESPACE_MARK = "helm-release-namespace"
IMAGE_MARK = "helm-values-image"
_REPLICAS_MARK = re.compile(r"\bhelm-values-replicas-([A-Za-z]+)\b")


def chart(rendered: Rendered, image: str) -> dict[str, str]:
    """The chart's files (relative path -> text) for objects rendered with :data:`NAMESPACE_MARK`
    as namespace and :data:`IMAGE_MARK` as image; ``image`` is the default in values.yaml."""
    values: dict[str, Any] = {"image": image}
    for component, key in REPLICA_VALUES.items():
        values[key] = {"replicas": _replicas(rendered.platform, component)}
    platform = [_templated(o) for o in rendered.platform if o["kind"] != "Namespace"]
    return {
        "Chart.yaml": yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "modelplane",
                "description": "Modelplane: models, endpoints, graphs and agents as declarative objects.",
                "type": "application",
                "version": __version__,
                "appVersion": __version__,
            },
            sort_keys=False,
        ),
        "values.yaml": yaml.safe_dump(values, sort_keys=False),
        "crds/modelplane.yaml": to_yaml(rendered.crds),
        "templates/platform.yaml": _expressions(to_yaml(platform)),
        "templates/endpoints.yaml": _expressions(to_yaml(rendered.endpoints))
        if rendered.endpoints
        else "",
    }


def write_chart(files: dict[str, str], folder: Path) -> list[Path]:
    """The chart's files under ``folder`` (created); the paths written."""
    written = []
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _replicas(objects: Objects, component: str) -> int:
    for obj in objects:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == f"modelplane-{component}":
            return int(obj["spec"]["replicas"])
    raise LookupError(f"no Deployment of {component}")


def _templated(obj: dict[str, Any]) -> dict[str, Any]:
    component = obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")
    if obj["kind"] == "Deployment" and component in REPLICA_VALUES:
        obj = {
            **obj,
            "spec": {
                **obj["spec"],
                "replicas": f"helm-values-replicas-{REPLICA_VALUES[component]}",
            },
        }
    return obj


def _expressions(text: str) -> str:
    text = text.replace(NAMESPACE_MARK, "{{ .Release.Namespace }}")
    text = text.replace(IMAGE_MARK, "{{ .Values.image | quote }}")
    return _REPLICAS_MARK.sub(r"{{ .Values.\1.replicas }}", text)
