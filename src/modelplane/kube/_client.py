"""A small client of the Kubernetes API: get, list, watch, server-side apply, status, delete.

Where it connects comes from the operator's own configuration, never from an object: a kubeconfig
file the operator is started with (its current or named context: ``server``,
``certificate-authority[-data]``, a bearer ``token`` or ``tokenFile``), or in a pod the service
account that Kubernetes mounts (``KUBERNETES_SERVICE_HOST`` and
``/var/run/secrets/kubernetes.io/serviceaccount``).
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

Obj = dict[str, Any]
#: (API prefix such as ``v1``, ``apps/v1`` or ``modelplane.dev/v1alpha1``, plural)
Resource = tuple[str, str]

ENDPOINTS: Resource = ("modelplane.dev/v1alpha1", "endpoints")
MODELS: Resource = ("modelplane.dev/v1alpha1", "models")
DEPLOYMENTS: Resource = ("apps/v1", "deployments")
SERVICES: Resource = ("v1", "services")
CLAIM_TEMPLATES: Resource = ("resource.k8s.io/v1", "resourceclaimtemplates")

#: the kinds the operator writes, by (apiVersion, kind)
RESOURCES: dict[tuple[str, str], Resource] = {
    ("apps/v1", "Deployment"): DEPLOYMENTS,
    ("v1", "Service"): SERVICES,
    ("resource.k8s.io/v1", "ResourceClaimTemplate"): CLAIM_TEMPLATES,
}

FIELD_MANAGER = "modelplane-operator"
_SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeError(Exception):
    """The API server refused a request: its HTTP code, ``Status.reason`` and message."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code, self.reason, self.message = code, reason, message


@dataclass(frozen=True)
class KubeConfig:
    """Where the API server is and how to prove who we are."""

    server: str
    token: str | None = None
    #: a CA bundle file; None: the system's (or plain HTTP to a local server)
    ca_file: str | None = None

    @classmethod
    def from_kubeconfig(cls, path: Path, context: str | None = None) -> KubeConfig:
        """The cluster and user of ``context`` (default: ``current-context``) in ``path``."""
        doc = yaml.safe_load(path.read_text()) or {}
        name = context or doc.get("current-context")
        ctx = _named(doc, "contexts", name, path)["context"]
        cluster = _named(doc, "clusters", ctx.get("cluster"), path)["cluster"]
        user = _named(doc, "users", ctx.get("user"), path).get("user") or {}
        token = user.get("token")
        if token is None and user.get("tokenFile"):
            token = (path.parent / user["tokenFile"]).read_text().strip()
        ca = cluster.get("certificate-authority")
        if ca is None and cluster.get("certificate-authority-data"):
            ca = _ca_file(base64.b64decode(cluster["certificate-authority-data"]))
        elif ca is not None:
            ca = str(path.parent / ca)
        return cls(server=str(cluster["server"]).rstrip("/"), token=token, ca_file=ca)

    @classmethod
    def in_cluster(cls) -> KubeConfig:
        """The pod's service account, as client-go's ``rest.InClusterConfig``."""
        host, port = (
            os.environ.get("KUBERNETES_SERVICE_HOST"),
            os.environ.get("KUBERNETES_SERVICE_PORT", "443"),
        )
        if not host:
            raise ValueError(
                "not in a cluster (KUBERNETES_SERVICE_HOST is not set): pass --kubeconfig"
            )
        return cls(
            server=f"https://{host}:{port}",
            token=(_SERVICE_ACCOUNT / "token").read_text().strip(),
            ca_file=str(_SERVICE_ACCOUNT / "ca.crt"),
        )


def _named(doc: Obj, section: str, name: str | None, path: Path) -> Obj:
    for entry in doc.get(section) or []:
        if entry.get("name") == name:
            return dict(entry)
    raise ValueError(f"{path}: no {section[:-1]} named {name!r} (kubectl config view lists them)")


def _ca_file(data: bytes) -> str:
    with tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False) as f:
        f.write(data)
        return f.name


class KubeClient:
    """Synchronous calls to one API server; thread-safe (one pooled httpx client)."""

    def __init__(self, config: KubeConfig, *, timeout: float = 30.0) -> None:
        headers = {"Accept": "application/json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        verify: bool | str = config.ca_file or True
        self._http = httpx.Client(
            base_url=config.server, headers=headers, verify=verify, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    @staticmethod
    def path(resource: Resource, namespace: str = "", name: str = "") -> str:
        prefix, plural = resource
        out = f"/api/{prefix}" if "/" not in prefix else f"/apis/{prefix}"
        if namespace:
            out += f"/namespaces/{namespace}"
        out += f"/{plural}"
        return f"{out}/{name}" if name else out

    def _call(self, method: str, url: str, **kwargs: Any) -> Obj:
        response = self._http.request(method, url, **kwargs)
        body = orjson.loads(response.content) if response.content else {}
        if response.status_code >= 400:
            raise KubeError(
                response.status_code,
                str(body.get("reason", "")),
                str(body.get("message", response.text[:200])),
            )
        return dict(body)

    def get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        try:
            return self._call("GET", self.path(resource, namespace, name))
        except KubeError as exc:
            if exc.code == 404:
                return None
            raise

    def list(
        self, resource: Resource, namespace: str = "", selector: str = ""
    ) -> tuple[list[Obj], str]:
        """(items, the list's resourceVersion to watch from)."""
        params = {"labelSelector": selector} if selector else {}
        body = self._call("GET", self.path(resource, namespace), params=params)
        return list(body.get("items") or []), str(body["metadata"].get("resourceVersion", ""))

    def watch(
        self, resource: Resource, since: str, namespace: str = "", timeout: int = 30
    ) -> Iterator[tuple[str, Obj]]:
        """``(type, object)`` after ``since`` until the server ends the stream (``timeout`` s).
        A 410 ``Expired`` (history compacted) raises :class:`KubeError`: list again."""
        params = {"watch": "true", "resourceVersion": since, "timeoutSeconds": str(timeout)}
        url = self.path(resource, namespace)
        with self._http.stream("GET", url, params=params, timeout=timeout + 10) as response:
            if response.status_code >= 400:
                response.read()
                body = orjson.loads(response.content or b"{}")
                raise KubeError(response.status_code, body.get("reason", ""), str(body))
            for line in response.iter_lines():
                if line.strip():
                    event = orjson.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise KubeError(
                            int(status.get("code", 500)),
                            str(status.get("reason", "")),
                            str(status.get("message", "")),
                        )
                    yield str(event["type"]), dict(event["object"])

    def apply(self, resource: Resource, obj: Obj) -> Obj:
        """Server-side apply of ``obj`` as the operator's field manager (conflicts forced)."""
        meta = obj["metadata"]
        return self._call(
            "PATCH",
            self.path(resource, meta.get("namespace", ""), meta["name"]),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            content=orjson.dumps(obj),
            headers={"Content-Type": "application/apply-patch+yaml"},
        )

    def patch_status(self, resource: Resource, namespace: str, name: str, status: Obj) -> Obj:
        """A JSON merge patch of ``status`` on the status subresource."""
        return self._call(
            "PATCH",
            self.path(resource, namespace, name) + "/status",
            content=orjson.dumps({"status": status}),
            headers={"Content-Type": "application/merge-patch+json"},
        )

    def delete(self, resource: Resource, namespace: str, name: str) -> None:
        try:
            self._call("DELETE", self.path(resource, namespace, name))
        except KubeError as exc:
            if exc.code != 404:
                raise
