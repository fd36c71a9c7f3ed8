"""Each Endpoint's replicas as Kubernetes workloads: Deployment, Service, ResourceClaimTemplate.

For every version an Endpoint serves (its ``spec.traffic`` versions, else the Model's last, and
the versions of its ``spec.routing.headerRoutes``), one
Deployment of ``spec.replicas.min`` model workers and one Service in front of them, both named
``<endpoint>-<version>`` in the Endpoint's namespace. Each worker loads the version's artifact by
digest from the artifact store on the PersistentVolumeClaim ``modelplane-models`` (filled with
``modelplane models import``). With ``spec.devices``, a ``resource.k8s.io/v1``
ResourceClaimTemplate ``<endpoint>-devices`` holds the device request and every replica's pod
claims its own devices from it, as DRA allocates them. Versions of format ``upstream`` run no
replica (the gateway calls the provider), so they render nothing.

For a cluster's Gateway API implementation with the Inference Extension, an Endpoint whose
versions all run replicas also renders an ``inference.networking.k8s.io/v1`` InferencePool
``<endpoint>`` (its selector: the ``modelplane.dev/endpoint`` label of the pods; its endpoint
picker the Service ``<endpoint>-epp`` on port 9002, which the Inference Extension's chart
deploys, failing open) and a ``gateway.networking.k8s.io/v1`` HTTPRoute ``<endpoint>`` attached
to the Gateway ``modelplane``. The route's rules match the ``X-Gateway-Model-Name`` header (set
from the body's ``model`` by the Inference Extension's body-based router) and ``/v1``: one rule
per ``spec.routing.headerRoutes`` entry, sending to the Service of its version; then the rule
of the traffic split, to the pool when the Endpoint serves one version, else to the versions'
Services with the split's weights. The same objects applied to Modelplane route the same way.
"""

from __future__ import annotations

from typing import Any

from modelplane.api import ENDPOINT_LABEL, GATEWAY_GROUP, INFERENCE_GROUP, VERSION_LABEL, errors
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
    # versions header routes name run replicas too, as the node agent runs them
    header_routes = (spec.get("routing") or {}).get("headerRoutes") or []
    pinned = [v for v in dict.fromkeys(h["version"] for h in header_routes) if v not in served]
    for version_name in [*served, *pinned]:
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
    if all(versions.get(v, {}).get("format") != "upstream" for v in [*served, *pinned]):
        objects.append(_inference_pool(name, namespace))
        objects.append(_http_route(name, namespace, spec, served))
    return objects


EPP_PORT = 9002
GATEWAY_NAME = "modelplane"


def _inference_pool(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{INFERENCE_GROUP}/v1",
        "kind": "InferencePool",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**labels("endpoint"), ENDPOINT_LABEL: name},
        },
        "spec": {
            "selector": {"matchLabels": {ENDPOINT_LABEL: name}},
            "targetPorts": [{"number": WORKER_PORT}],
            "endpointPickerRef": {
                "name": f"{name}-epp",
                "port": {"number": EPP_PORT},
                "failureMode": "FailOpen",
            },
        },
    }


def _http_route(
    name: str, namespace: str, spec: dict[str, Any], served: list[str]
) -> dict[str, Any]:
    model_name = {"type": "Exact", "name": "X-Gateway-Model-Name", "value": name}
    path = {"type": "PathPrefix", "value": "/v1"}
    rules: list[dict[str, Any]] = []
    header_routes = (spec.get("routing") or {}).get("headerRoutes") or []
    for route in header_routes:
        headers = [{"type": "Exact", **h} for h in route["headers"]]
        rules.append(
            {
                "matches": [{"path": path, "headers": [model_name, *headers]}],
                "backendRefs": [_service_ref(name, route["version"])],
            }
        )
    weights = {t["version"]: t["weight"] for t in spec.get("traffic", [])}
    if len(served) == 1 and not header_routes:
        backends = [{"group": INFERENCE_GROUP, "kind": "InferencePool", "name": name}]
    else:
        backends = [{**_service_ref(name, v), "weight": weights.get(v, 1)} for v in served]
    rules.append({"matches": [{"path": path, "headers": [model_name]}], "backendRefs": backends})
    return {
        "apiVersion": f"{GATEWAY_GROUP}/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**labels("endpoint"), ENDPOINT_LABEL: name},
        },
        "spec": {"parentRefs": [{"name": GATEWAY_NAME}], "rules": rules},
    }


def _service_ref(endpoint: str, version: str) -> dict[str, Any]:
    return {"kind": "Service", "name": f"{endpoint}-{version}", "port": WORKER_PORT}


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
