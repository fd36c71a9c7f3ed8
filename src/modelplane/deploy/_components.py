"""The platform's own workloads in a cluster: server, gateway, agent workers and node agents.

Each component is one process of the scaled-out shape (``docs/kubernetes.md``), all sharing one
PostgreSQL store named by the Secret ``modelplane-database`` (key ``url``) and one Secrets key
(Secret ``modelplane-encryption``, key ``encryption.key``). The server (REST API and the
leader-elected controllers) and the gateway are Deployments behind Services, the agent workers a
Deployment, the node agent a DaemonSet. Each runs under its own ServiceAccount with the RBAC it
needs: the server reads and writes our kinds and the DRA kinds (the controllers' work), the node
agent publishes ResourceSlices and reads its Node; the gateway and the agent workers talk only to
the database, so their ServiceAccounts mount no token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelplane.deploy._objects import Objects, labels, meta

DATABASE_SECRET = "modelplane-database"
ENCRYPTION_SECRET = "modelplane-encryption"
HOME = "/var/lib/modelplane"
_KEY_DIR = "/etc/modelplane/encryption"


@dataclass(frozen=True)
class Component:
    """One process of the platform as a workload."""

    name: str  # server, gateway, agent-worker, node
    args: tuple[str, ...]  # after `modelplane`
    port: int | None  # HTTP port with /healthz and /readyz; None: no HTTP surface
    workload: str  # Deployment or DaemonSet
    replicas: int = 1
    service: bool = False


COMPONENTS: tuple[Component, ...] = (
    Component("server", ("server", "--host", "0.0.0.0", "--port", "8470"), 8470, "Deployment",
              replicas=2, service=True),
    Component("gateway", ("gateway", "--host", "0.0.0.0", "--port", "8480"), 8480, "Deployment",
              replicas=3, service=True),
    Component("agent-worker", ("agent-worker", "--host", "0.0.0.0", "--port", "8481", "--home",
              HOME, "--model-base-url", "http://modelplane-gateway:8480"), 8481, "Deployment",
              replicas=3),
    Component("node", ("node", "--host", "0.0.0.0", "--port", "8471"), 8471, "DaemonSet"),
)  # fmt: skip

#: what each component may do in the Kubernetes API: (ClusterRole rules)
RULES: dict[str, list[dict[str, Any]]] = {
    "server": [
        {"apiGroups": ["modelplane.dev"], "resources": ["*"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": ["modelplane.dev"], "resources": ["*/status"],
         "verbs": ["get", "update", "patch"]},
        {"apiGroups": ["resource.k8s.io"], "resources": ["deviceclasses", "resourceslices"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["resource.k8s.io"],
         "resources": ["resourceclaims", "resourceclaimtemplates"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": ["resource.k8s.io"], "resources": ["resourceclaims/status"],
         "verbs": ["get", "update", "patch"]},
        {"apiGroups": ["", "events.k8s.io"], "resources": ["events"],
         "verbs": ["create", "patch", "update"]},
    ],
    "node": [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["resource.k8s.io"], "resources": ["resourceslices"],
         "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": ["resource.k8s.io"], "resources": ["resourceclaims", "deviceclasses"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch", "update"]},
    ],
}  # fmt: skip


def platform_objects(namespace: str, image: str) -> Objects:
    """The Namespace, then each component's ServiceAccount, RBAC, workload and Service."""
    objects: Objects = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": labels()},
        }
    ]
    for component in COMPONENTS:
        objects.extend(component_objects(component, namespace, image))
    return objects


def component_objects(component: Component, namespace: str, image: str) -> Objects:
    """One component: ServiceAccount, ClusterRole and binding (if it needs any), workload, Service."""
    name = f"modelplane-{component.name}"
    objects: Objects = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta(name, namespace, component.name),
            "automountServiceAccountToken": component.name in RULES,
        }
    ]
    if component.name in RULES:
        objects.extend(_rbac(component, namespace))
    objects.append(_workload(component, namespace, image))
    if component.service and component.port is not None:
        objects.append(_service(name, namespace, component.name, component.port))
    return objects


def _rbac(component: Component, namespace: str) -> Objects:
    name = f"modelplane-{component.name}"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta(name, None, component.name),
            "rules": RULES[component.name],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(name, None, component.name),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def _workload(component: Component, namespace: str, image: str) -> dict[str, Any]:
    name = f"modelplane-{component.name}"
    selector = {"matchLabels": labels(component.name)}
    template = {"metadata": {"labels": labels(component.name)}, "spec": _pod(component, image)}
    spec: dict[str, Any] = {"selector": selector, "template": template}
    if component.workload == "Deployment":
        spec = {"replicas": component.replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": component.workload,
        "metadata": meta(name, namespace, component.name),
        "spec": spec,
    }


def _pod(component: Component, image: str) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": component.name,
        "image": image,
        "command": ["modelplane", *component.args],
        "env": [
            {"name": "MODELPLANE_HOME", "value": HOME},
            {
                "name": "MODELPLANE_DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": DATABASE_SECRET, "key": "url"}},
            },
            {"name": "MODELPLANE_ENCRYPTION_KEY_FILE", "value": f"{_KEY_DIR}/encryption.key"},
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"memory": "2Gi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "home", "mountPath": HOME},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "encryption", "mountPath": _KEY_DIR, "readOnly": True},
        ],
    }
    if component.workload == "DaemonSet":  # which machine this agent is (the downward API)
        container["env"].append(
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
        )
    if component.port is not None:
        container["ports"] = [{"name": "http", "containerPort": component.port}]
        container["livenessProbe"] = _probe("/healthz", period=10, failures=3)
        container["readinessProbe"] = _probe("/readyz", period=5, failures=2)
    return {
        "serviceAccountName": f"modelplane-{component.name}",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "volumes": [
            {"name": "home", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "encryption", "secret": {"secretName": ENCRYPTION_SECRET}},
        ],
    }


def _probe(path: str, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def _service(name: str, namespace: str, component: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(name, namespace, component),
        "spec": {
            "selector": labels(component),
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        },
    }
