"""The routing table: model names -> Endpoints (versions, ready replicas, policy) and Graphs.

Built from informers of Endpoint, Model, Graph and Secret, never from the store per request:
informer handlers (on their own threads) only mark the table stale; the next lookup on the serving
loop rebuilds it from the informers' caches and swaps it in whole. A request therefore sees one
consistent snapshot.

Where replicas come from: a Model version with ``format: upstream`` is served by its ``source``
(an OpenAI-compatible base URL) with the API key taken from ``apiKeySecretRef`` (``{name, key}``:
a Secret in the Model's own namespace, read from the Secret informer; the store decrypts it);
other versions by the replicas the node agent publishes in ``Endpoint.status.replicas[]``
(``{name, version, node, url, ready}``). An upstream version whose key cannot be used (the Secret
or its key is missing, the value is not base64, or it holds a line break or another control
character that would break the ``Authorization`` header) is not routed: it keeps no replica and
its ``problem`` says why, which the client's error repeats. Nothing here reads a file. The split applied is ``status.traffic`` when the rollout controller set one, else
``spec.traffic``, else all traffic to the Model's last version; versions only
``spec.routing.headerRoutes`` name join the route with weight 0 (the header routes, kept on the
route, send requests to them). An Endpoint's eval plan
(``spec.rollout.analysis.eval``) is on its route only while ``status.rollout.phase`` is
``Progressing``: answers are evaluated while a step is being analysed, not otherwise.

LoRA adapters: a Model version with ``adapterOf: B`` is served by the replicas of ``B`` of every
Endpoint whose split names ``B``. Its routes are ``<endpoint>:<adapter>`` and, when no Endpoint or
Graph has that name and only one Endpoint serves it, the adapter's own name: the Endpoint's route
with ``adapter`` set and only version ``B``; each replica's ``adapters`` (what the node agent saw
it hold) let the router prefer replicas that hold it. They are looked up, not listed in ``routes()``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from modelplane.api import (
    ENSEMBLE_ANNOTATION,
    FALLBACKS_ANNOTATION,
    PRICE_ANNOTATION,
    STICKY_ANNOTATION,
    Graph,
)
from modelplane.api.errors import ModelplaneError
from modelplane.control import Informer
from modelplane.gateway._flow import QosPolicy, qos_policy
from modelplane.gateway._matches import ValueMatch, header_matches
from modelplane.gateway._scorers import EvalPlan, eval_plan
from modelplane.store import JSON, Store

log = logging.getLogger("modelplane.gateway")


@dataclass(frozen=True, slots=True)
class Replica:
    """One place a version is served: a worker or an upstream API (``url`` ends in /v1)."""

    name: str
    url: str
    version: str
    node: str = ""
    upstream: bool = False
    #: the LoRA adapters the replica holds now (``status.replicas[].adapters``)
    adapters: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class VersionRoute:
    name: str
    weight: int
    replicas: tuple[Replica, ...]
    #: for upstream versions: the Authorization header value, and the model name to send
    authorization: str | None = None
    upstream_model: str | None = None
    #: why the version is not routed (its API key cannot be used), for the client's error
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class HeaderRoute:
    """``spec.routing.headerRoutes[]``: requests with all these headers go to ``version``."""

    headers: tuple[ValueMatch, ...]
    version: str


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    budget_usd: float | None = None
    budget_period_s: float = 30 * 86400.0
    usd_per_token: float = 0.0


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    namespace: str
    name: str
    model: str
    task: str
    versions: tuple[VersionRoute, ...]
    policy: str = "least-request"
    sticky: bool = False
    limits: Limits | None = None
    fallbacks: tuple[str, ...] = ()
    created: int = 0
    #: ``spec.replicas.scaleToZero``: a request finding no ready replica waits for one to start
    scale_to_zero: bool = False
    #: ``spec.rollout.analysis.eval`` while a rollout is in progress: answers sampled and scored
    evals: EvalPlan | None = None
    #: ``spec.routing.headerRoutes``, tried in order before the traffic split
    header_routes: tuple[HeaderRoute, ...] = ()
    #: the Endpoint's labels (an InferencePool selects its replicas by them)
    labels: tuple[tuple[str, str], ...] = ()
    #: ``spec.qos`` with the classes of the InferenceObjectives naming it: flow control applies
    qos: QosPolicy | None = None
    #: the LoRA adapter a request through this route asks for (a Model version's name)
    adapter: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class GraphRoute:
    namespace: str
    name: str
    graph: Graph
    ensemble_merge: str = "concatenate"
    created: int = 0

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


Route = EndpointRoute | GraphRoute

_PERIODS = {"hour": 3600.0, "day": 86400.0, "week": 7 * 86400.0, "month": 30 * 86400.0}


@dataclass
class _Snapshot:
    routes: dict[str, Route] = field(default_factory=dict)
    #: ``ns/endpoint:adapter`` and ``ns/adapter`` -> the adapter's route (module docstring)
    adapters: dict[str, EndpointRoute] = field(default_factory=dict)


class RoutingTable:
    """Model name -> route, current with the store through informers (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._informers = {
            kind: Informer(store, kind)
            for kind in ("Endpoint", "Model", "Graph", "Secret", "InferenceObjective")
        }
        self._stale = threading.Event()
        self._stale.set()
        self._snapshot = _Snapshot()
        self._started = False
        #: bumped on each rebuild, so caches keyed on the table can notice
        self.generation = 0
        for informer in self._informers.values():
            informer.add_handler(
                on_add=lambda _o: self._stale.set(),
                on_update=self._on_update,
                on_delete=lambda _o: self._stale.set(),
            )

    def _on_update(self, old: JSON, new: JSON) -> None:
        if old is not new:
            self._stale.set()

    def start(self) -> None:
        self._started = True
        for informer in self._informers.values():
            informer.start()

    def stop(self, timeout: float = 5.0) -> bool:
        return all(i.stop(timeout) for i in self._informers.values())

    def wait_for_sync(self, timeout: float) -> bool:
        return all(i.wait_for_sync(timeout) for i in self._informers.values())

    # -- reading ----------------------------------------------------------------------------

    def routes(self) -> dict[str, Route]:
        """Every route by ``namespace/name``; rebuilt first if the informers saw a change.

        A table never started starts now and waits (at most 5 s, once) for its first list.
        """
        if not self._started:
            self.start()
            self.wait_for_sync(5.0)
        if self._stale.is_set():
            self._stale.clear()
            self._snapshot = self._build()
            self.generation += 1
        return self._snapshot.routes

    def lookup(self, model: str, namespace: str = "default") -> Route | None:
        """The route for a model name: ``name`` (in ``namespace``) or ``namespace/name``."""
        routes = self.routes()
        key = model if "/" in model else f"{namespace}/{model}"
        return routes.get(key) or self._snapshot.adapters.get(key)

    # -- building ---------------------------------------------------------------------------

    def _build(self) -> _Snapshot:
        models = {
            (str(m["metadata"].get("namespace") or ""), str(m["metadata"]["name"])): m
            for m in self._informers["Model"].list()
        }
        objectives = _objectives(self._informers["InferenceObjective"].list())
        snapshot = _Snapshot()
        for obj in self._informers["Endpoint"].list():
            try:
                route = self._endpoint(obj, models, objectives)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("endpoint %s skipped: %s", obj.get("metadata", {}).get("name"), exc)
                continue
            snapshot.routes[route.key] = route
        for obj in self._informers["Graph"].list():
            try:
                graph = Graph.model_validate(obj)
            except (ModelplaneError, ValueError) as exc:
                log.warning("graph %s skipped: %s", obj.get("metadata", {}).get("name"), exc)
                continue
            meta = obj["metadata"]
            annotations = meta.get("annotations") or {}
            groute = GraphRoute(
                namespace=str(meta.get("namespace") or "default"),
                name=str(meta["name"]),
                graph=graph,
                ensemble_merge=str(annotations.get(ENSEMBLE_ANNOTATION, "concatenate")),
                created=_created(meta),
            )
            snapshot.routes.setdefault(groute.key, groute)
        snapshot.adapters = _adapter_routes(snapshot.routes, models)
        return snapshot

    def _endpoint(
        self,
        obj: JSON,
        models: dict[tuple[str, str], JSON],
        objectives: dict[tuple[str, str], list[tuple[str, int]]],
    ) -> EndpointRoute:
        meta = obj["metadata"]
        namespace = str(meta.get("namespace") or "default")
        spec = obj.get("spec") or {}
        annotations = meta.get("annotations") or {}
        model = models.get((namespace, str(spec.get("model"))))
        model_spec = (model or {}).get("spec") or {}
        routing = spec.get("routing") or {}
        return EndpointRoute(
            namespace=namespace,
            name=str(meta["name"]),
            model=str(spec.get("model")),
            task=str(model_spec.get("task") or "chat"),
            versions=self._versions(namespace, spec, obj.get("status") or {}, model_spec),
            policy=str(routing.get("policy") or "least-request"),
            sticky=_sticky(routing, annotations),
            limits=_limits(spec.get("limits"), annotations),
            fallbacks=_fallbacks(spec, annotations),
            created=_created(meta),
            scale_to_zero=bool((spec.get("replicas") or {}).get("scaleToZero")),
            evals=eval_plan(spec) if _rolling_out(obj.get("status")) else None,
            header_routes=_header_routes(routing),
            labels=tuple(sorted((str(k), str(v)) for k, v in (meta.get("labels") or {}).items())),
            qos=qos_policy(spec.get("qos"), objectives.get((namespace, str(meta["name"])), ())),
        )

    def _versions(
        self, namespace: str, spec: JSON, status: JSON, model_spec: JSON
    ) -> tuple[VersionRoute, ...]:
        """The versions the traffic split names that the Model has, in the split's order."""
        versions_spec: dict[str, JSON] = {
            str(v["name"]): v for v in model_spec.get("versions") or [] if isinstance(v, dict)
        }
        traffic = status.get("traffic") or spec.get("traffic") or []
        if not traffic and versions_spec:
            traffic = [{"version": list(versions_spec)[-1], "weight": 100}]
        # a version only header routes name serves no share of the split (weight 0)
        split = {str(t.get("version")) for t in traffic}
        pinned = [str(h.get("version")) for h in _raw_header_routes(spec.get("routing"))]
        traffic = [
            *traffic,
            *({"version": v, "weight": 0} for v in dict.fromkeys(pinned) if v not in split),
        ]
        replicas_by_version = _ready_replicas(status.get("replicas"))
        versions: list[VersionRoute] = []
        for target in traffic:
            name = str(target.get("version"))
            weight = int(target.get("weight") or 0)
            vspec = versions_spec.get(name)
            if vspec is None:
                continue
            if vspec.get("format") == "upstream":
                versions.append(self._upstream_version(namespace, name, weight, vspec, spec))
            else:
                found = replicas_by_version.get(name, [])
                versions.append(VersionRoute(name, weight, tuple(found)))
        return tuple(versions)

    def _upstream_version(
        self, namespace: str, name: str, weight: int, vspec: JSON, spec: JSON
    ) -> VersionRoute:
        """A version served by an OpenAI-compatible upstream: no replica while its key is unusable."""
        url = str(vspec.get("source", "")).rstrip("/")
        authorization, problem = self._authorization(namespace, vspec.get("apiKeySecretRef"))
        return VersionRoute(
            name=name,
            weight=weight,
            replicas=() if problem else (Replica("upstream", url, name, upstream=True),),
            authorization=authorization,
            upstream_model=_upstream_model(vspec, str(spec.get("model"))),
            problem=problem,
        )

    def _authorization(self, namespace: str, ref: Any) -> tuple[str | None, str | None]:
        """(the Authorization header value, None) for ``apiKeySecretRef``, or (None, why not).

        Only a Secret in ``namespace`` (the Model's) is looked at: a reference cannot reach
        another tenant's secrets. Messages name the Secret and key, never the value.
        """
        if not isinstance(ref, dict) or not ref:
            return None, None
        name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
        where = f"Secret {namespace}/{name} key {key!r} (apiKeySecretRef)"
        secret = self._informers["Secret"].get(namespace, name)
        if secret is None:
            return None, f"{where}: the Secret does not exist; create it in namespace {namespace}"
        encoded = (secret.get("data") or {}).get(key)
        if not isinstance(encoded, str):
            return None, f"{where}: the Secret has no such key"
        try:
            value = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None, f"{where}: the value is not base64-encoded UTF-8 text"
        if _CONTROL.search(value):
            return None, (
                f"{where}: the value contains a line break or another control character, which"
                " cannot be sent in an Authorization header; store the key alone (a file written"
                " by `echo` ends in a line break: use --from-literal, or `printf %s KEY > file`)"
            )
        if not value.strip():
            return None, f"{where}: the value is empty"
        return f"Bearer {value}", None


# anything but HTAB below 0x20, and DEL: they would end or corrupt the header line
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _upstream_model(vspec: JSON, default: str) -> str:
    # an upstream serves many models: `upstreamModel` names the one (else the Model's name)
    return str(vspec.get("upstreamModel") or default)


def _ready_replicas(published: Any) -> dict[str, list[Replica]]:
    """The ready replicas the node agents published in ``status.replicas``, by version."""
    by_version: dict[str, list[Replica]] = {}
    if not isinstance(published, list):
        return by_version
    for r in published:
        if not isinstance(r, dict) or not r.get("ready") or not r.get("url"):
            continue
        replica = Replica(
            name=str(r.get("name") or r["url"]),
            url=str(r["url"]).rstrip("/"),
            version=str(r.get("version") or ""),
            node=str(r.get("node") or ""),
            adapters=frozenset(str(a) for a in r.get("adapters") or ()),
        )
        by_version.setdefault(replica.version, []).append(replica)
    return by_version


def _raw_header_routes(routing: Any) -> list[JSON]:
    listed = routing.get("headerRoutes") if isinstance(routing, dict) else None
    return [h for h in listed or [] if isinstance(h, dict) and h.get("version")]


def _header_routes(routing: Any) -> tuple[HeaderRoute, ...]:
    return tuple(
        HeaderRoute(header_matches(h.get("headers")), str(h["version"]))
        for h in _raw_header_routes(routing)
    )


def _objectives(listed: list[JSON]) -> dict[tuple[str, str], list[tuple[str, int]]]:
    """(name, priority) of the InferenceObjectives by the (namespace, Endpoint) their poolRef
    names (an InferencePool stands for the Endpoint of its name)."""
    out: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for obj in sorted(listed, key=lambda o: str(o["metadata"]["name"])):
        meta, spec = obj["metadata"], obj.get("spec") or {}
        pool = spec.get("poolRef") or {}
        priority = spec.get("priority")
        if not isinstance(pool, dict) or not pool.get("name"):
            continue
        key = (str(meta.get("namespace") or "default"), str(pool["name"]))
        value = priority if isinstance(priority, int) and not isinstance(priority, bool) else 0
        out.setdefault(key, []).append((str(meta["name"]), value))
    return out


def _adapter_routes(
    routes: dict[str, Route], models: dict[tuple[str, str], JSON]
) -> dict[str, EndpointRoute]:
    """The routes of the Models' adapters (module docstring); an own name several Endpoints
    serve is ambiguous and left out (``<endpoint>:<adapter>`` still names each)."""
    out: dict[str, EndpointRoute] = {}
    own: dict[str, list[EndpointRoute]] = {}
    for route in list(routes.values()):
        if not isinstance(route, EndpointRoute):
            continue
        spec = (models.get((route.namespace, route.model)) or {}).get("spec") or {}
        served = {v.name: v for v in route.versions}
        for v in spec.get("versions") or []:
            base = served.get(str(v.get("adapterOf") or ""))
            if base is None:
                continue
            name = str(v.get("name"))
            adapted = replace(route, adapter=name, versions=(replace(base, weight=100),))
            out[f"{route.key}:{name}"] = adapted
            own.setdefault(f"{route.namespace}/{name}", []).append(adapted)
    for key, candidates in own.items():
        if key not in routes and len(candidates) == 1:
            out.setdefault(key, candidates[0])
    return out


def _rolling_out(status: Any) -> bool:
    """Whether the rollout controller analyses a step now (``status.rollout.phase``)."""
    rollout = status.get("rollout") if isinstance(status, dict) else None
    return isinstance(rollout, dict) and rollout.get("phase") == "Progressing"


def _fallbacks(spec: JSON, annotations: dict[str, str]) -> tuple[str, ...]:
    listed = spec.get("fallbacks")
    if isinstance(listed, list) and listed:
        return tuple(str(f).strip() for f in listed if str(f).strip())
    # deprecated annotation
    return tuple(
        f.strip() for f in str(annotations.get(FALLBACKS_ANNOTATION, "")).split(",") if f.strip()
    )


def _sticky(routing: JSON, annotations: dict[str, str]) -> bool:
    if routing.get("policy") == "session-affinity":
        return True
    sticky = routing.get("sticky")
    if isinstance(sticky, bool):
        return sticky
    return str(annotations.get(STICKY_ANNOTATION, "")).lower() == "true"


def _limits(raw: Any, annotations: dict[str, str]) -> Limits | None:
    if not isinstance(raw, dict) or not raw:
        return None
    budget = raw.get("budget") if isinstance(raw.get("budget"), dict) else None
    price = raw.get("usdPerMillionTokens")
    if not isinstance(price, int | float):  # deprecated annotation
        try:
            price = float(annotations.get(PRICE_ANNOTATION, "0") or 0)
        except ValueError:
            price = 0.0
    return Limits(
        requests_per_minute=raw.get("requestsPerMinute"),
        tokens_per_minute=raw.get("tokensPerMinute"),
        budget_usd=None if budget is None else float(budget.get("amount", 0)),
        budget_period_s=_PERIODS.get(str((budget or {}).get("period", "month")), _PERIODS["month"]),
        usd_per_token=price / 1e6,
    )


def _created(meta: JSON) -> int:
    from datetime import datetime

    stamp = meta.get("creationTimestamp")
    if not stamp:
        return 0
    try:
        return int(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0
