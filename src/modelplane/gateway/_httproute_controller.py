"""The HTTPRoute and InferencePool controllers: does our gateway accept them, do routes resolve?

For each ``HTTPRoute`` it writes ``status.parents[]`` as the Gateway API defines it: one entry
per ``spec.parentRefs`` entry (or, for a route naming none, one for the Gateway ``modelplane``,
which our gateway is), each with ``controllerName: modelplane.dev/gateway`` and two conditions
carrying the route's generation:

* ``Accepted``: True, reason ``Accepted`` (our gateway serves every HTTPRoute in the store; the
  message says when rule ``filters`` are present, which it keeps but does not apply);
* ``ResolvedRefs``: True, reason ``ResolvedRefs``, when every backendRef resolves (see
  :mod:`modelplane.gateway._httproutes`), else False with the first problem's reason
  (``BackendNotFound``, ``InvalidKind`` or ``RefNotPermitted``) and every problem in the message.

A change of ``ResolvedRefs`` is recorded as an Event. A change to an Endpoint or an InferencePool
re-reconciles the routes of its namespace.

The :class:`InferencePoolController` writes each ``InferencePool``'s ``status.parents[]`` as the
Inference Extension defines it: one entry per Gateway that an HTTPRoute sending to the pool is
attached to (none while no route sends to it), with ``Accepted`` True and ``ResolvedRefs`` True
(reason ``ResolvedRefs``; the message says that our gateway picks the members itself, so an
``endpointPickerRef`` is not called).
"""

from __future__ import annotations

import copy
from typing import Any

from modelplane.api import GATEWAY_GROUP, INFERENCE_GROUP
from modelplane.control import (
    Controller,
    Request,
    Result,
    StatusEvent,
    Watches,
    commit_status,
    get_condition,
    set_condition,
)
from modelplane.gateway._httproutes import Ref, resolve_ref
from modelplane.store import JSON, Store

__all__ = ["CONTROLLER_NAME", "HTTPRouteController", "InferencePoolController", "route_problems"]

#: the ``controllerName`` our gateway writes into ``status.parents[]``
CONTROLLER_NAME = "modelplane.dev/gateway"
#: the parent a route naming none is attached to
DEFAULT_PARENT = {"group": GATEWAY_GROUP, "kind": "Gateway", "name": "modelplane"}


def route_problems(
    spec: Any, namespace: str, endpoint: Any, pool_exists: Any
) -> list[tuple[str, str]]:
    """``(reason, message)`` for each backendRef of an HTTPRoute's ``spec`` that does not resolve.

    ``endpoint(namespace, name)``: the Endpoint object or None; ``pool_exists(namespace, name)``.
    """

    def versions(name: str) -> list[str] | None:
        found = endpoint(namespace, name)
        if found is None:
            return None
        spec = found.get("spec") or {}
        named = [str(t.get("version")) for t in spec.get("traffic") or []]
        pinned = [
            str(h.get("version")) for h in (spec.get("routing") or {}).get("headerRoutes") or []
        ]
        return named + pinned

    problems: list[tuple[str, str]] = []
    rules = spec.get("rules") if isinstance(spec, dict) else None
    for i, rule in enumerate(rules or []):
        for j, ref in enumerate((rule or {}).get("backendRefs") or []):
            target = resolve_ref(ref, namespace, versions, lambda n: pool_exists(namespace, n))
            if not isinstance(target, Ref):
                reason, message = target
                problems.append((reason, f"rules[{i}].backendRefs[{j}]: {message}"))
    return problems


class HTTPRouteController(Controller):
    """Writes each HTTPRoute's ``status.parents`` (module docstring)."""

    kind = "HTTPRoute"
    name = "httproute-controller"

    def __init__(self, store: Store, *, namespace: str | None = None, workers: int = 1) -> None:
        super().__init__(store, namespace=namespace, workers=workers)
        # the mappings read this controller's HTTPRoute cache, so the watches are bound here
        self.watches = (  # type: ignore[misc]
            Watches("Endpoint", self._routes_of_namespace, namespace=namespace),
            Watches("InferencePool", self._routes_of_namespace, namespace=namespace),
        )

    def _routes_of_namespace(self, obj: JSON) -> list[Request]:
        namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
        try:
            routes = self.informer().list()
        except RuntimeError:  # stopped
            return []
        return [
            Request(namespace, str(r["metadata"]["name"]))
            for r in routes
            if str(r["metadata"].get("namespace") or "default") == namespace
        ]

    def reconcile(self, request: Request) -> Result:
        route = self.live_object(request)
        if route is None:
            return Result()
        meta = route.get("metadata") or {}
        generation = meta.get("generation")
        spec = route.get("spec") or {}
        problems = route_problems(
            spec,
            request.namespace,
            lambda ns, n: self.informer("Endpoint").get(ns, n),
            lambda ns, n: self.informer("InferencePool").get(ns, n) is not None,
        )
        filters = any((rule or {}).get("filters") for rule in spec.get("rules") or [])
        accepted = "served by the Modelplane gateway" + (
            "; rule filters are kept but not applied" if filters else ""
        )
        if problems:
            resolved = (False, problems[0][0], "; ".join(m for _, m in problems))
        else:
            resolved = (True, "ResolvedRefs", "every backendRef resolves")
        old = copy.deepcopy(route.get("status") or {})
        parents = []
        for ref in spec.get("parentRefs") or [DEFAULT_PARENT]:
            entry = _previous(old, ref) or {"parentRef": ref, "controllerName": CONTROLLER_NAME}
            set_condition(entry, "Accepted", True, "Accepted", accepted, generation)
            set_condition(entry, "ResolvedRefs", *resolved, generation)
            parents.append(entry)
        status = {**old, "parents": parents}
        before = get_condition((old.get("parents") or [{}])[0], "ResolvedRefs") or {}
        event = None
        if (before.get("status"), before.get("reason")) != (str(resolved[0]), resolved[1]):
            event = StatusEvent("Normal" if resolved[0] else "Warning", resolved[1], resolved[2])
        written = commit_status(
            self.store,
            route,
            status,
            component=self.component,
            condition=None,
            observed_generation=False,
            event=event,
        )
        return Result(requeue=written is None)


def _previous(status: dict[str, Any], ref: Any) -> dict[str, Any] | None:
    """Our earlier entry for ``ref`` (kept so lastTransitionTime stays put)."""
    for entry in status.get("parents") or []:
        if (
            isinstance(entry, dict)
            and entry.get("parentRef") == ref
            and entry.get("controllerName") == CONTROLLER_NAME
        ):
            return entry
    return None


def _sends_to_pool(route: JSON, pool: str) -> bool:
    return any(
        isinstance(ref, dict)
        and ref.get("kind") == "InferencePool"
        and ref.get("group") == INFERENCE_GROUP
        and ref.get("name") == pool
        for rule in (route.get("spec") or {}).get("rules") or []
        for ref in (rule or {}).get("backendRefs") or []
    )


class InferencePoolController(Controller):
    """Writes each InferencePool's ``status.parents`` (module docstring)."""

    kind = "InferencePool"
    name = "inferencepool-controller"

    def __init__(self, store: Store, *, namespace: str | None = None, workers: int = 1) -> None:
        super().__init__(store, namespace=namespace, workers=workers)
        self.watches = (  # type: ignore[misc]
            Watches("HTTPRoute", self._pools_of_namespace, namespace=namespace),
        )

    def _pools_of_namespace(self, obj: JSON) -> list[Request]:
        namespace = str((obj.get("metadata") or {}).get("namespace") or "default")
        try:
            pools = self.informer().list()
        except RuntimeError:  # stopped
            return []
        return [
            Request(namespace, str(p["metadata"]["name"]))
            for p in pools
            if str(p["metadata"].get("namespace") or "default") == namespace
        ]

    def reconcile(self, request: Request) -> Result:
        pool = self.live_object(request)
        if pool is None:
            return Result()
        generation = (pool.get("metadata") or {}).get("generation")
        gateways: list[dict[str, Any]] = []
        for route in self.informer("HTTPRoute").list():
            namespace = str(route["metadata"].get("namespace") or "default")
            if namespace != request.namespace or not _sends_to_pool(route, request.name):
                continue
            for ref in (route.get("spec") or {}).get("parentRefs") or [DEFAULT_PARENT]:
                parent = {k: ref[k] for k in ("group", "kind", "name", "namespace") if k in ref}
                parent.setdefault("group", GATEWAY_GROUP)
                parent.setdefault("kind", "Gateway")
                if parent not in gateways:
                    gateways.append(parent)
        old = copy.deepcopy(pool.get("status") or {})
        parents = []
        for ref in gateways:
            entry = _previous(old, ref) or {"parentRef": ref, "controllerName": CONTROLLER_NAME}
            set_condition(
                entry, "Accepted", True, "Accepted", "served by the Modelplane gateway", generation
            )
            set_condition(
                entry,
                "ResolvedRefs",
                True,
                "ResolvedRefs",
                "the Modelplane gateway picks the members itself; endpointPickerRef is not called",
                generation,
            )
            parents.append(entry)
        written = commit_status(
            self.store,
            pool,
            {**old, "parents": parents},
            component=self.component,
            condition=None,
            observed_generation=False,
        )
        return Result(requeue=written is None)
