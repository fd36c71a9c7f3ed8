"""A real gateway over a real store, in a thread, with fake upstreams on free ports."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from tests.control._wait import wait_until
from tests.e2e._proc import free_port

from modelplane.api import validate
from modelplane.gateway import EndpointRoute, Gateway, standalone_app
from modelplane.store import JSON, Store
from modelplane.testing import FakeUpstream

DIGEST = "sha256:" + "a" * 64


def _load_policy_in_schema() -> bool:
    from typing import get_args

    from modelplane.api import Endpoint

    annotation = Endpoint.model_fields["spec"].annotation
    routing = annotation.model_fields["routing"].annotation  # type: ignore[union-attr]
    policy = routing.model_fields["policy"].annotation  # type: ignore[union-attr]
    return "load" in get_args(policy)


class GatewayThread:
    """``gateway`` served by uvicorn on a free loopback port until :meth:`stop`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            standalone_app(gateway), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> GatewayThread:
        self.gateway.start()
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=10, what="the gateway to listen")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.gateway.stop()


class WorkerThread:
    """An ASGI worker app (a simulated replica, say) served by uvicorn on a free loopback port;
    ``url`` ends in /v1 as a published replica's does."""

    def __init__(self, app: Any) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/v1"
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=10, what="the worker to listen")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Env:
    """The store, the gateway and helpers to declare models and endpoints."""

    def __init__(self, store: Store, gateway: GatewayThread, home: Path) -> None:
        self.store = store
        self.gw = gateway
        self.home = home
        self.client = httpx.Client(base_url=gateway.url + "/v1", timeout=20.0)
        self.fakes: list[FakeUpstream] = []
        self.workers: list[WorkerThread] = []

    def fake(self, name: str = "fake", **kwargs: Any) -> FakeUpstream:
        fake = FakeUpstream(name, **kwargs).start()
        self.fakes.append(fake)
        return fake

    def worker(self, app: Any) -> WorkerThread:
        worker = WorkerThread(app)
        self.workers.append(worker)
        return worker

    def close(self) -> None:
        self.client.close()
        for fake in self.fakes:
            fake.stop()
        for worker in self.workers:
            worker.stop()

    def create(self, obj: JSON) -> JSON:
        spec = obj.get("spec") or {}
        if (spec.get("routing") or {}).get("policy") == "load" and not _load_policy_in_schema():
            # the `load` policy awaits its addition to Endpoint.spec.routing.policy's values
            return self.store.create(obj)
        return self.store.create(validate(obj))

    def endpoint(
        self,
        name: str,
        replicas: dict[str, Sequence[FakeUpstream | WorkerThread]],
        *,
        traffic: dict[str, int] | None = None,
        policy: str | None = None,
        limits: JSON | None = None,
        annotations: dict[str, str] | None = None,
        namespace: str = "default",
        upstream: dict[str, FakeUpstream] | None = None,
        qos: JSON | None = None,
    ) -> None:
        """A Model with ``replicas``' versions (workers) and ``upstream`` versions, and an
        Endpoint serving it, with the replicas published in its status as the node agent does.
        Returns once the gateway routes to all of them."""
        upstream = upstream or {}
        versions: list[JSON] = [
            {"name": v, "source": f"/models/{v}", "format": "safetensors", "digest": DIGEST}
            for v in replicas
        ]
        for v, fake in upstream.items():
            versions.append({"name": v, "source": fake.url, "format": "upstream"})
        self.create(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Model",
                "metadata": {"name": f"{name}-model", "namespace": namespace},
                "spec": {"versions": versions},
            }
        )
        spec: JSON = {"model": f"{name}-model"}
        if traffic:
            spec["traffic"] = [{"version": v, "weight": w} for v, w in traffic.items()]
        if policy:
            spec["routing"] = {"policy": policy}
        if limits:
            spec["limits"] = limits
        if qos:
            spec["qos"] = qos
        created = self.create(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Endpoint",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "annotations": annotations or {},
                },
                "spec": spec,
            }
        )
        published = [
            {
                "name": f"{name}-{v}-{i}",
                "version": v,
                "node": "local",
                "url": fake.url,
                "ready": True,
            }
            for v, fakes in replicas.items()
            for i, fake in enumerate(fakes)
        ]
        if published:
            created["status"] = {"replicas": published}
            self.store.update_status(created)
        want = sum(len(f) for f in replicas.values()) + len(upstream)
        self.wait_routed(name, want, namespace)

    def wait_routed(self, name: str, replicas: int, namespace: str = "default") -> EndpointRoute:
        def routed() -> EndpointRoute | None:
            route = self.gw.gateway.table.lookup(name, namespace)
            if (
                isinstance(route, EndpointRoute)
                and sum(len(v.replicas) for v in route.versions) == replicas
            ):
                return route
            return None

        return wait_until(routed, timeout=10, what=f"the gateway to route {name}")

    def chat(
        self, model: str, text: str = "hi", headers: dict[str, str] | None = None, **extra: Any
    ) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
        return self.client.post("/chat/completions", json=body, headers=headers)
