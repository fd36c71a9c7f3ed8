"""The HTTPRoute controller: does our gateway accept each route, and do its backends resolve?

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
"""

from __future__ import annotations

import copy
from typing import Any

from modelplane.api import GATEWAY_GROUP
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

__all__ = ["CONTROLLER_NAME", "HTTPRouteController", "route_problems"]

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
