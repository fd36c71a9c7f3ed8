"""The OpenAI-compatible gateway: ``/v1`` in front of every Endpoint and Graph.

Owns: the data plane of inference requests — model name -> Endpoint or Graph, version by the
traffic split (sticky per session when asked), replica by routing policy (round-robin,
least-request, load, prefix-cache, session-affinity, prefix-load), retries before the first
token, fallback chains, flow control (requests held by priority class while replicas are
saturated, the lowest shed first, tenants shared by weight), per-tenant rate limits and budgets (held across gateways by slices taken from
the store, never a store round trip per request), Graph execution, per-version request
samples for canary analysis (with the scores of answers evaluated while a rollout runs: an eval
set, or a judge model called through the same request path), the gateway's metrics, the :class:`GraphController` (a Graph's
``Ready`` condition: do its steps' Endpoints and nodes exist and serve), Gateway API HTTPRoutes
and Inference Extension InferencePools (header matches, weighted backendRefs, pools selecting
replicas by labels) and the :class:`HTTPRouteController` and :class:`InferencePoolController` (their
``status.parents``). Runs mounted in ``modelplane up``
(:func:`mount`) or alone (:func:`serve_gateway`, ``modelplane gateway``).

Must not touch: the store per request (an in-memory routing table kept by informers serves every
request), other subsystems' internals (replicas are read from ``Endpoint.status.replicas``, which
the node agent publishes), or the objects' spec and status: the gateway only reads (the Graph and HTTPRoute controllers write only
their objects' status), except the
``modelplane.dev/demand`` annotation it sets on a ``scaleToZero`` Endpoint to ask for a replica.

Example::

    from modelplane.gateway import Gateway, standalone_app

    gateway = Gateway(store).start()
    app = standalone_app(gateway)       # or mount(store) beside the REST API
"""

from modelplane.api import (
    DEMAND_ANNOTATION,
    ENSEMBLE_ANNOTATION,
    FALLBACKS_ANNOTATION,
    PRICE_ANNOTATION,
    PRIORITY_VALUE_HEADER,
    STICKY_ANNOTATION,
)
from modelplane.gateway._call import Call
from modelplane.gateway._errors import GatewayError
from modelplane.gateway._flow import (
    OBJECTIVE_HEADER,
    FlowControl,
    FlowQueue,
    QosPolicy,
    RequestClass,
    TenantRule,
    Waiter,
    qos_policy,
)
from modelplane.gateway._gateway import Gateway
from modelplane.gateway._graph_controller import GraphController, graph_problems
from modelplane.gateway._httproute_controller import HTTPRouteController, InferencePoolController
from modelplane.gateway._limits import Limiter, Ticket
from modelplane.gateway._openapi import openapi_paths
from modelplane.gateway._routing import POLICIES, ReplicaLoad, Router, pick_version, prompt_blocks
from modelplane.gateway._serve import mount, serve_gateway, server_stack, standalone_app
from modelplane.gateway._table import (
    EndpointRoute,
    GraphRoute,
    Limits,
    Replica,
    RoutingTable,
    VersionRoute,
)
from modelplane.gateway._telemetry import GEN_AI_ATTRIBUTES, Telemetry

__all__ = [
    "DEMAND_ANNOTATION",
    "ENSEMBLE_ANNOTATION",
    "FALLBACKS_ANNOTATION",
    "GEN_AI_ATTRIBUTES",
    "OBJECTIVE_HEADER",
    "POLICIES",
    "PRICE_ANNOTATION",
    "PRIORITY_VALUE_HEADER",
    "STICKY_ANNOTATION",
    "Call",
    "EndpointRoute",
    "FlowControl",
    "FlowQueue",
    "Gateway",
    "GatewayError",
    "GraphController",
    "GraphRoute",
    "HTTPRouteController",
    "InferencePoolController",
    "Limiter",
    "Limits",
    "QosPolicy",
    "Replica",
    "ReplicaLoad",
    "RequestClass",
    "Router",
    "RoutingTable",
    "Telemetry",
    "TenantRule",
    "Ticket",
    "VersionRoute",
    "Waiter",
    "graph_problems",
    "mount",
    "openapi_paths",
    "pick_version",
    "prompt_blocks",
    "qos_policy",
    "serve_gateway",
    "server_stack",
    "standalone_app",
]
