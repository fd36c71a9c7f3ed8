"""Gateway API HTTPRoutes and Inference Extension InferencePools, served by our gateway.

An ``HTTPRoute`` serves the ``/v1`` model name equal to its own name, and every model name its
rules match with an Exact ``X-Gateway-Model-Name`` header (the header the Inference Extension's
body-based router sets from the body's ``model``; our gateway sets it from the body itself). An
HTTPRoute of a name shadows an Endpoint or Graph of that name in its namespace. For a request,
the routes whose ``hostnames`` admit its Host are tried; among their rules' matches that fit the
request (path, method, headers, query parameters), the most specific wins as the Gateway API
orders them, then the oldest route, then the first rule; its ``backendRefs`` split the traffic
by ``weight``. A backend is:

* ``{group: modelplane.dev, kind: Endpoint, name: E}``: Endpoint ``E`` with its own traffic
  split, header routes, limits and fallbacks;
* ``{group: inference.networking.k8s.io, kind: InferencePool, name: P}``: the ready replicas
  whose labels (the Endpoint's labels plus ``modelplane.dev/endpoint`` and
  ``modelplane.dev/version``) include all of the pool's ``selector.matchLabels``, picked by the
  selected Endpoints' routing policy when they share one (else least-request);
* a core ``Service`` (``kind: Service``, the default) named like an Endpoint (``E``: all of it)
  or like the Services ``modelplane render kubernetes`` makes (``E-V``: version ``V`` of ``E``).

Anything else does not resolve: ``InvalidKind`` (another kind), ``RefNotPermitted`` (another
namespace: ReferenceGrants are not served) or ``BackendNotFound``; the share of requests the
weights send to it is answered 500, as the Gateway API requires, and the route's
``ResolvedRefs`` condition says why (:mod:`modelplane.gateway._httproute_controller`).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from modelplane.api import ENDPOINT_LABEL, INFERENCE_GROUP, VERSION_LABEL
from modelplane.control import Informer
from modelplane.gateway._errors import GatewayError
from modelplane.gateway._matches import RequestFacts, RouteMatch, host_fits, route_match
from modelplane.gateway._table import EndpointRoute, Replica, RoutingTable, VersionRoute
from modelplane.store import JSON, Store

#: the header the Inference Extension's body-based router sets from the body's ``model``
MODEL_NAME_HEADER = "x-gateway-model-name"
#: our own group, for ``backendRefs`` naming an Endpoint
ENDPOINT_GROUP = "modelplane.dev"


@dataclass(frozen=True, slots=True)
class Ref:
    """What a backendRef resolves to: an Endpoint (``version``: only that one) or a pool."""

    kind: str  # "Endpoint" or "InferencePool"
    name: str
    version: str | None = None


def resolve_ref(
    ref: Any,
    namespace: str,
    endpoint_versions: Callable[[str], list[str] | None],
    pool_exists: Callable[[str], bool],
) -> Ref | tuple[str, str]:
    """A backendRef's target, or ``(reason, message)`` as Gateway API's ResolvedRefs says it.

    ``endpoint_versions(name)``: the versions Endpoint ``name`` serves (None: no such Endpoint);
    ``pool_exists(name)``: whether InferencePool ``name`` exists, both in ``namespace``.
    """
    if not isinstance(ref, dict):
        return ("BackendNotFound", "backendRef is not an object")
    group, kind = str(ref.get("group") or ""), str(ref.get("kind") or "Service")
    name = str(ref.get("name") or "")
    where = f"backendRef {kind} {name!r}"
    other = ref.get("namespace")
    if other and other != namespace:
        return (
            "RefNotPermitted",
            f"{where} is in namespace {other!r}: only the route's own namespace {namespace!r} is"
            " served (ReferenceGrants are not)",
        )
    if (group, kind) == (ENDPOINT_GROUP, "Endpoint"):
        if endpoint_versions(name) is None:
            return ("BackendNotFound", f"{where}: no Endpoint {name!r} in {namespace}")
        return Ref("Endpoint", name)
    if (group, kind) == (INFERENCE_GROUP, "InferencePool"):
        if not pool_exists(name):
            return ("BackendNotFound", f"{where}: no InferencePool {name!r} in {namespace}")
        return Ref("InferencePool", name)
    if (group, kind) == ("", "Service"):
        return _service(name, where, namespace, endpoint_versions)
    return (
        "InvalidKind",
        f"{where} of group {group!r}: a backend is an Endpoint (group modelplane.dev), an"
        " InferencePool (group inference.networking.k8s.io) or a Service (group '')",
    )


def _service(
    name: str, where: str, namespace: str, endpoint_versions: Callable[[str], list[str] | None]
) -> Ref | tuple[str, str]:
    """A Service named like an Endpoint (``E``) or like one of its versions (``E-V``)."""
    if endpoint_versions(name) is not None:
        return Ref("Endpoint", name)
    head = name
    while "-" in head:
        head, _, _ = head.rpartition("-")
        versions = endpoint_versions(head)
        if versions is not None and name[len(head) + 1 :] in versions:
            return Ref("Endpoint", head, name[len(head) + 1 :])
    return (
        "BackendNotFound",
        f"{where}: no Endpoint {name!r} in {namespace}, and no Endpoint E with a version V"
        f" such that {name!r} is E-V",
    )


@dataclass(frozen=True, slots=True)
class Backend:
    weight: int
    route: EndpointRoute | None
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Rule:
    matches: tuple[RouteMatch, ...]
    backends: tuple[Backend, ...]


@dataclass(frozen=True, slots=True)
class HTTPRouteEntry:
    """One HTTPRoute, its backends resolved against the routing table."""

    namespace: str
    name: str
    hostnames: tuple[str, ...]
    rules: tuple[Rule, ...]
    #: the model names it serves besides its own name (Exact X-Gateway-Model-Name matches)
    model_names: frozenset[str]
    created: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


class HTTPRouteTable:
    """HTTPRoutes by the model names they serve, current with the store through informers and
    rebuilt (whole, on the serving loop) when they or the routing table change."""

    def __init__(self, store: Store, table: RoutingTable) -> None:
        self.table = table
        self._informers = {k: Informer(store, k) for k in ("HTTPRoute", "InferencePool")}
        self._stale = threading.Event()
        self._stale.set()
        self._generation = -1
        self._by_model: dict[str, list[HTTPRouteEntry]] = {}
        self._started = False
        for informer in self._informers.values():
            informer.add_handler(
                on_add=lambda _o: self._stale.set(),
                on_update=lambda _o, _n: self._stale.set(),
                on_delete=lambda _o: self._stale.set(),
            )

    def start(self) -> None:
        self._started = True
        for informer in self._informers.values():
            informer.start()

    def stop(self, timeout: float = 5.0) -> bool:
        return all(i.stop(timeout) for i in self._informers.values())

    def wait_for_sync(self, timeout: float) -> bool:
        return all(i.wait_for_sync(timeout) for i in self._informers.values())

    def routes_for(self, model: str, namespace: str = "default") -> list[HTTPRouteEntry]:
        """The HTTPRoutes serving ``model`` (``name`` in ``namespace``, or ``namespace/name``)."""
        key = model if "/" in model else f"{namespace}/{model}"
        return self._current().get(key, [])

    def model_names(self) -> dict[str, str]:
        """Every model name an HTTPRoute serves (``ns/name``), with that route's namespace."""
        return {key: entries[0].namespace for key, entries in self._current().items()}

    def _current(self) -> dict[str, list[HTTPRouteEntry]]:
        """Routes by model name; rebuilt first if they or the routing table changed."""
        if not self._started:  # as the routing table does: start now, wait once for a list
            self.start()
            self.wait_for_sync(5.0)
        routes = self.table.routes()  # rebuilds the endpoint table first when it is stale
        if self._stale.is_set() or self._generation != self.table.generation:
            self._stale.clear()
            self._generation = self.table.generation
            self._by_model = self._build(routes)
        return self._by_model

    def _build(self, routes: dict[str, Any]) -> dict[str, list[HTTPRouteEntry]]:
        pools = {
            (str(p["metadata"].get("namespace") or "default"), str(p["metadata"]["name"])): p
            for p in self._informers["InferencePool"].list()
        }
        by_model: dict[str, list[HTTPRouteEntry]] = {}
        for obj in self._informers["HTTPRoute"].list():
            entry = _entry(obj, routes, pools)
            for name in {entry.name, *entry.model_names}:
                by_model.setdefault(f"{entry.namespace}/{name}", []).append(entry)
        for entries in by_model.values():
            entries.sort(key=lambda e: (e.created, e.key))
        return by_model


def _entry(obj: JSON, routes: dict[str, Any], pools: dict[tuple[str, str], JSON]) -> HTTPRouteEntry:
    meta = obj["metadata"]
    namespace = str(meta.get("namespace") or "default")
    spec = obj.get("spec") or {}

    def versions(name: str) -> list[str] | None:
        route = routes.get(f"{namespace}/{name}")
        if not isinstance(route, EndpointRoute):
            return None
        return [v.name for v in route.versions]

    rules: list[Rule] = []
    names: set[str] = set()
    for raw in spec.get("rules") or [{}]:
        raw_matches = raw.get("matches") or [{}]
        matches = tuple(route_match(m) for m in raw_matches)
        for m in matches:
            names.update(
                h.value for h in m.headers if h.name == MODEL_NAME_HEADER and not h.pattern
            )
        backends = []
        for ref in raw.get("backendRefs") or []:
            weight = int(ref.get("weight", 1)) if isinstance(ref, dict) else 0
            target = resolve_ref(ref, namespace, versions, lambda n: (namespace, n) in pools)
            if isinstance(target, Ref):
                route = _target(target, namespace, routes, pools)
                backends.append(Backend(weight, route))
            else:
                backends.append(Backend(weight, None, target[1]))
        rules.append(Rule(matches, tuple(backends)))
    return HTTPRouteEntry(
        namespace=namespace,
        name=str(meta["name"]),
        hostnames=tuple(str(h) for h in spec.get("hostnames") or []),
        rules=tuple(rules),
        model_names=frozenset(names),
        created=str(meta.get("creationTimestamp") or ""),
    )


def _target(
    ref: Ref, namespace: str, routes: dict[str, Any], pools: dict[tuple[str, str], JSON]
) -> EndpointRoute:
    if ref.kind == "InferencePool":
        return pool_route(namespace, ref.name, pools[(namespace, ref.name)], routes)
    route: EndpointRoute = routes[f"{namespace}/{ref.name}"]
    if ref.version is None:
        return route
    only = tuple(replace(v, weight=100) for v in route.versions if v.name == ref.version)
    return replace(route, versions=only, header_routes=())


def pool_route(namespace: str, name: str, pool: JSON, routes: dict[str, Any]) -> EndpointRoute:
    """An InferencePool as one route: its members are the ready replicas of the namespace's
    Endpoints whose labels include the pool's ``selector.matchLabels``."""
    selector = ((pool.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    members: list[Replica] = []
    policies: set[str] = set()
    task = "chat"
    for route in routes.values():
        if not isinstance(route, EndpointRoute) or route.namespace != namespace:
            continue
        for version in route.versions:
            labels = {**dict(route.labels), ENDPOINT_LABEL: route.name, VERSION_LABEL: version.name}
            if all(labels.get(k) == v for k, v in selector.items()):
                members.extend(r for r in version.replicas if not r.upstream)
                policies.add(route.policy)
                task = route.task
    return EndpointRoute(
        namespace=namespace,
        name=name,
        model=name,
        task=task,
        versions=(VersionRoute(name, 100, tuple(members)),),
        policy=policies.pop() if len(policies) == 1 else "least-request",
    )


def choose(
    entries: list[HTTPRouteEntry], model: str, facts: RequestFacts, rnd: random.Random
) -> EndpointRoute:
    """The backend for a request to ``model`` that ``entries`` serve (raises GatewayError)."""
    headers = {**(facts.headers or {}), MODEL_NAME_HEADER: model.rpartition("/")[2]}
    facts = replace(facts, headers=headers)
    best: tuple[Any, ...] | None = None
    chosen: tuple[HTTPRouteEntry, Rule] | None = None
    for order, entry in enumerate(entries):
        if not host_fits(entry.hostnames, facts.host):
            continue
        for index, rule in enumerate(entry.rules):
            for match in rule.matches:
                if match.fits(facts):
                    key = (*match.precedence(), order, index)
                    if best is None or key < best:
                        best, chosen = key, (entry, rule)
    if chosen is None:
        shown = ", ".join(e.key for e in entries)
        raise GatewayError(
            404,
            f"No rule of HTTPRoute {shown} matches this request (host {facts.host!r}, path"
            f" {facts.path!r}): send the headers a rule matches, or add a rule without matches.",
            code="model_not_found",
            param="model",
        )
    entry, rule = chosen
    return _weighted(entry, rule, rnd)


def _weighted(entry: HTTPRouteEntry, rule: Rule, rnd: random.Random) -> EndpointRoute:
    live = [b for b in rule.backends if b.weight > 0]
    if not live:
        raise GatewayError(
            500,
            f"HTTPRoute {entry.key}: the matching rule has no backendRef with a weight above 0.",
            type="server_error",
            code="no_backend",
        )
    x = rnd.random() * sum(b.weight for b in live)
    picked = live[-1]
    for backend in live:
        x -= backend.weight
        if x < 0:
            picked = backend
            break
    if picked.route is None:
        raise GatewayError(
            500,
            f"HTTPRoute {entry.key}: {picked.problem}.",
            type="server_error",
            code="backend_not_resolved",
        )
    return picked.route
