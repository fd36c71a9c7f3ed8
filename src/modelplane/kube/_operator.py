"""``modelplane operator``: our custom resources in a cluster, reconciled into Kubernetes objects.

For every ``Endpoint`` custom resource (``endpoints.modelplane.dev``, the CRD that ``render
kubernetes`` writes) the operator applies the objects ``render kubernetes`` would emit for it — a
Deployment and a Service per served version, the ``resource.k8s.io/v1`` ResourceClaimTemplate of
its devices, not the Gateway API objects — owned by the Endpoint (``ownerReferences``, so deleting the Endpoint deletes them),
deletes the ones it owns that are no longer wanted (a version dropped from the traffic split), and
writes the Endpoint's ``status`` as the node agent does outside a cluster: ``replicas[]`` with each
version's Service address (what gateways route to), ``readyReplicas`` from the Deployments, and a
``Ready`` condition (``ReplicasReady``, ``ReplicasStarting``, ``Invalid``, ``ModelNotFound``).

Level-triggered, like every controller here: ``reconcile(namespace, name)`` reads the Endpoint,
its Models and its children and moves the children toward the rendering; it is safe to run again
at any time. Watches on Endpoints, Models and the owned Deployments feed a work queue; failures are
retried with the queue's backoff; every object is re-read on a periodic resync.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from modelplane.api import ENDPOINT_LABEL, VERSION_LABEL, errors, validate
from modelplane.control import WorkQueue, set_condition
from modelplane.deploy import endpoint_objects
from modelplane.kube._client import (
    DEPLOYMENTS,
    ENDPOINTS,
    MODELS,
    RESOURCES,
    KubeClient,
    KubeError,
    Obj,
    Resource,
)

log = logging.getLogger(__name__)

WORKER_PORT = 8000
#: the kinds an Endpoint owns, pruned when no longer rendered
OWNED: tuple[Resource, ...] = tuple(RESOURCES.values())

Key = tuple[str, str]


class Operator:
    """Reconciles the Endpoints of one namespace (or all) against one API server."""

    def __init__(
        self, client: KubeClient, image: str, *, namespace: str = "", resync: float = 30.0
    ) -> None:
        self.client = client
        self.image = image
        self.namespace = namespace
        self.resync = resync
        self.queue: WorkQueue[Key] = WorkQueue(name="operator")
        #: endpoints seen, by namespace (a Model's change requeues its namespace's endpoints)
        self._known: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        #: set once each watch has listed what exists
        self.synced = threading.Event()

    # -- reconcile ----------------------------------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> None:
        endpoint = self.client.get(ENDPOINTS, namespace, name)
        if endpoint is None or endpoint["metadata"].get("deletionTimestamp"):
            return  # the cluster's garbage collector deletes what it owned
        status: Obj = dict(endpoint.get("status") or {})
        generation = endpoint["metadata"].get("generation")
        try:
            children = self._render(endpoint)
        except (errors.Invalid, errors.BadRequest) as exc:
            reason = "Invalid" if isinstance(exc, errors.Invalid) else "ModelNotFound"
            set_condition(status, "Ready", False, reason, str(exc), generation)
            return self._write_status(endpoint, status)
        for obj in children:
            self.client.apply(RESOURCES[(obj["apiVersion"], obj["kind"])], obj)
        self._prune(endpoint, {(o["kind"], o["metadata"]["name"]) for o in children})
        self._replica_status(endpoint, children, status)
        self._write_status(endpoint, status)

    def _render(self, endpoint: Obj) -> list[Obj]:
        namespace = endpoint["metadata"]["namespace"]
        valid = validate(_as_manifest(endpoint))
        models: dict[tuple[str, str], Obj] = {}
        for model in self.client.list(MODELS, namespace)[0]:
            with contextlib.suppress(errors.Invalid):
                models[(namespace, model["metadata"]["name"])] = validate(_as_manifest(model))
        owner = {
            "apiVersion": endpoint["apiVersion"],
            "kind": "Endpoint",
            "name": endpoint["metadata"]["name"],
            "uid": endpoint["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        # the InferencePool and HTTPRoute render kubernetes adds are left to it: a cluster may
        # have no Gateway API or Inference Extension CRDs, and the operator's role covers none
        children = [
            o
            for o in endpoint_objects(valid, models, self.image)
            if (o["apiVersion"], o["kind"]) in RESOURCES
        ]
        for obj in children:
            obj["metadata"]["ownerReferences"] = [owner]
        return children

    def _prune(self, endpoint: Obj, wanted: set[tuple[str, str]]) -> None:
        meta = endpoint["metadata"]
        for resource in OWNED:
            items, _ = self.client.list(
                resource, meta["namespace"], f"{ENDPOINT_LABEL}={meta['name']}"
            )
            for obj in items:
                refs = obj["metadata"].get("ownerReferences") or []
                mine = any(r.get("uid") == meta["uid"] for r in refs)
                name = obj["metadata"]["name"]
                if mine and (obj.get("kind", _kind(resource)), name) not in wanted:
                    self.client.delete(resource, meta["namespace"], name)

    def _replica_status(self, endpoint: Obj, children: list[Obj], status: Obj) -> None:
        namespace = endpoint["metadata"]["namespace"]
        replicas, ready_total, starting = [], 0, []
        for obj in children:
            if obj["kind"] != "Deployment":
                continue
            name = obj["metadata"]["name"]
            live = self.client.get(DEPLOYMENTS, namespace, name) or {}
            ready = int((live.get("status") or {}).get("readyReplicas") or 0)
            ready_total += ready
            version = obj["metadata"]["labels"][VERSION_LABEL]
            entry: Obj = {
                "name": name,
                "version": version,
                "url": f"http://{name}.{namespace}.svc:{WORKER_PORT}/v1",
                "ready": ready > 0,
            }
            if not ready:
                entry["message"] = f"Deployment {name} has no ready replica yet"
                starting.append(name)
            replicas.append(entry)
        status["replicas"] = replicas
        status["readyReplicas"] = ready_total
        generation = endpoint["metadata"].get("generation")
        if starting:
            message = f"waiting for a ready replica of {', '.join(starting)}"
            set_condition(status, "Ready", False, "ReplicasStarting", message, generation)
        else:
            message = f"{ready_total} ready replicas behind {len(replicas)} Services"
            set_condition(status, "Ready", True, "ReplicasReady", message, generation)
        status["observedGeneration"] = generation

    def _write_status(self, endpoint: Obj, status: Obj) -> None:
        if status != (endpoint.get("status") or {}):
            meta = endpoint["metadata"]
            self.client.patch_status(ENDPOINTS, meta["namespace"], meta["name"], status)

    # -- watches and the work loop ---------------------------------------------------------------

    def run(self, stop: threading.Event, workers: int = 2) -> None:
        """Watch and reconcile until ``stop`` is set."""
        watches = [
            (ENDPOINTS, self._on_endpoint, ""),
            (MODELS, self._on_model, ""),
            (DEPLOYMENTS, self._on_child, f"{ENDPOINT_LABEL}"),
        ]
        listed = [threading.Event() for _ in watches]
        threads = [
            threading.Thread(
                target=self._watch_forever,
                args=(resource, handler, selector, stop, done),
                name=f"operator-watch-{resource[1]}",
                daemon=True,
            )
            for (resource, handler, selector), done in zip(watches, listed, strict=True)
        ]
        threads += [
            threading.Thread(target=self._work, args=(stop,), name=f"operator-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in threads:
            t.start()
        for done in listed:
            done.wait()
        self.synced.set()
        stop.wait()
        self.queue.shut_down()
        for t in threads:
            t.join(timeout=5)

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            key = self.queue.get(timeout=0.5)
            if key is None:
                continue
            try:
                self.reconcile(*key)
                self.queue.forget(key)
            except (KubeError, OSError) as exc:
                log.warning("reconcile %s/%s failed, retrying: %s", *key, exc)
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    def _watch_forever(
        self,
        resource: Resource,
        handler: Callable[[str, Obj], None],
        selector: str,
        stop: threading.Event,
        listed: threading.Event,
    ) -> None:
        while not stop.is_set():
            try:
                items, since = self.client.list(resource, self.namespace, selector)
                for obj in items:
                    handler("ADDED", obj)
                listed.set()
                while not stop.is_set():
                    for kind, obj in self.client.watch(
                        resource, since, self.namespace, timeout=int(self.resync)
                    ):
                        since = obj["metadata"].get("resourceVersion", since)
                        handler(kind, obj)
                    break  # the watch ended (its timeout): list again, the resync
            except (KubeError, OSError) as exc:
                log.warning("watch of %s failed, listing again: %s", resource[1], exc)
                stop.wait(1.0)

    def _on_endpoint(self, kind: str, obj: Obj) -> None:
        meta = obj["metadata"]
        with self._lock:
            names = self._known.setdefault(meta["namespace"], set())
            if kind == "DELETED":
                names.discard(meta["name"])
            else:
                names.add(meta["name"])
        if kind != "DELETED":
            self.queue.add((meta["namespace"], meta["name"]))

    def _on_model(self, kind: str, obj: Obj) -> None:
        namespace = obj["metadata"]["namespace"]
        with self._lock:
            names = sorted(self._known.get(namespace, ()))
        for name in names:
            self.queue.add((namespace, name))

    def _on_child(self, kind: str, obj: Obj) -> None:
        meta = obj["metadata"]
        endpoint = (meta.get("labels") or {}).get(ENDPOINT_LABEL)
        if endpoint:
            self.queue.add((meta["namespace"], endpoint))


def _as_manifest(obj: Obj) -> Obj:
    """The object as a manifest our API validates: server-owned fields and status dropped."""
    meta = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels")}
    if obj["metadata"].get("annotations"):
        meta["annotations"] = obj["metadata"]["annotations"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta, **_spec(obj)}


def _spec(obj: Obj) -> dict[str, Any]:
    return {"spec": obj["spec"]} if "spec" in obj else {}


def _kind(resource: Resource) -> str:
    return {r: k for (_, k), r in RESOURCES.items()}[resource]
