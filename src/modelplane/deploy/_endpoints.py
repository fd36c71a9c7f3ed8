"""Each Endpoint's replicas as Kubernetes workloads: Deployment, Service, ResourceClaimTemplate.

For every version an Endpoint serves (its ``spec.traffic`` versions, else the Model's last), one
Deployment of ``spec.replicas.min`` model workers and one Service in front of them, both named
``<endpoint>-<version>`` in the Endpoint's namespace. Each worker loads the version's artifact by
digest from the artifact store on the PersistentVolumeClaim ``modelplane-models`` (filled with
``modelplane models import``). With ``spec.devices``, a ``resource.k8s.io/v1``
ResourceClaimTemplate ``<endpoint>-devices`` holds the device request and every replica's pod
claims its own devices from it, as DRA allocates them. Versions of format ``upstream`` run no
replica (the gateway calls the provider), so they render nothing.
"""

from __future__ import annotations

from typing import Any

from modelplane.api import ENDPOINT_LABEL, VERSION_LABEL, errors
from modelplane.deploy._components import HOME
from modelplane.deploy._objects import Objects, labels

MODELS_CLAIM = "modelplane-models"
WORKER_PORT = 8000


def endpoint_objects(
    endpoint: dict[str, Any], models: dict[tuple[str, str], dict[str, Any]], image: str
) -> Objects:
    """The objects of one (validated) Endpoint; ``models`` by (namespace, name)."""
    namespace = endpoint["metadata"].get("namespace", "default")
    name = endpoint["metadata"]["name"]
    spec = endpoint["spec"]
    model = models.get((namespace, spec["model"]))
    if model is None:
        raise errors.BadRequest(
            f"Endpoint {namespace}/{name} serves Model {spec['model']!r}, which is not among the"
            " manifests: add its file with -f (the replicas need its versions' digests)"
        )
    versions = {v["name"]: v for v in model["spec"]["versions"]}
    served = [t["version"] for t in spec.get("traffic", [])] or [
        model["spec"]["versions"][-1]["name"]
    ]
    objects: Objects = []
    devices = spec.get("devices")
    if devices:
        objects.append(_claim_template(name, namespace, devices))
    for version_name in served:
        version = versions.get(version_name)
        if version is None:
            raise errors.BadRequest(
                f"Endpoint {namespace}/{name} sends traffic to version {version_name!r}, which"
                f" Model {spec['model']!r} does not have (it has {', '.join(sorted(versions))})"
            )
        if version["format"] == "upstream":
            continue
        workload = _Replicas(name, namespace, spec["model"], version, bool(devices))
        objects.append(workload.deployment(spec["replicas"]["min"], image))
        objects.append(workload.service())
    return objects


def _claim_template(name: str, namespace: str, devices: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {
            "name": f"{name}-devices",
            "namespace": namespace,
            "labels": {**labels("endpoint"), ENDPOINT_LABEL: name},
        },
        "spec": {"spec": {"devices": devices}},
    }


class _Replicas:
    """The replicas of one version of one Endpoint."""

    def __init__(
        self, endpoint: str, namespace: str, model: str, version: dict[str, Any], devices: bool
    ) -> None:
        self.endpoint = endpoint
        self.namespace = namespace
        self.model = model
        self.version = version
        self.devices = devices
        self.name = f"{endpoint}-{version['name']}"
        self.labels = {
            **labels("endpoint"),
            ENDPOINT_LABEL: endpoint,
            VERSION_LABEL: version["name"],
        }

    def deployment(self, replicas: int, image: str) -> dict[str, Any]:
        selector = {ENDPOINT_LABEL: self.endpoint, VERSION_LABEL: self.version["name"]}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": self.labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                "template": {"metadata": {"labels": self.labels}, "spec": self._pod(image)},
            },
        }

    def service(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": self.name, "namespace": self.namespace, "labels": self.labels},
            "spec": {
                "selector": {ENDPOINT_LABEL: self.endpoint, VERSION_LABEL: self.version["name"]},
                "ports": [{"name": "http", "port": WORKER_PORT, "targetPort": "http"}],
            },
        }

    def _pod(self, image: str) -> dict[str, Any]:
        digest = self.version["digest"]
        args = [
            "--model-dir", f"{HOME}/models/sha256/{digest.removeprefix('sha256:')}",
            "--digest", digest,
            "--name", self.model,
            "--host", "0.0.0.0",
            "--port", str(WORKER_PORT),
            "--home", HOME,
        ]  # fmt: skip
        if self.version.get("allowPickle"):
            args.append("--allow-pickle")
        container: dict[str, Any] = {
            "name": "worker",
            "image": image,
            "command": ["python", "-m", "modelplane.serving.worker", *args],
            "ports": [{"name": "http", "containerPort": WORKER_PORT}],
            # loading a model takes a while: liveness counts only once it serves
            "startupProbe": _health(period=5, failures=120),
            "livenessProbe": _health(period=10, failures=3),
            "readinessProbe": _health(period=5, failures=2),
            # caches (torch, transformers) go to $HOME: a scratch folder, the image stays read-only
            "env": [{"name": "HOME", "value": "/tmp"}, {"name": "MODELPLANE_HOME", "value": HOME}],
            "volumeMounts": [
                {"name": "models", "mountPath": f"{HOME}/models"},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
        }
        pod: dict[str, Any] = {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
            "containers": [container],
            "volumes": [
                {"name": "models", "persistentVolumeClaim": {"claimName": MODELS_CLAIM}},
                {"name": "tmp", "emptyDir": {}},
            ],
        }
        if self.devices:
            container["resources"] = {"claims": [{"name": "devices"}]}
            pod["resourceClaims"] = [
                {"name": "devices", "resourceClaimTemplateName": f"{self.endpoint}-devices"}
            ]
        return pod


def _health(*, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
    }
