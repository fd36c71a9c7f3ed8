"""The Modelplane API: every kind's schema, validation, manifests, JSON Schema and explain.

This package owns the shape of objects and nothing else: it imports no other part of Modelplane,
reads no store and starts nothing. Everything that accepts an object (REST, CLI, controllers
writing status) passes it through :func:`validate`, which returns the normalised object or raises
:class:`errors.Invalid` naming each offending field, with ``file:line:column`` when the object was
read from a manifest by :func:`load_manifests` or :func:`load_paths`.

Kinds (group ``modelplane.dev/v1alpha1`` unless noted): ``Model``, ``Endpoint``, ``Graph``,
``Agent``, ``ToolServer`` (cluster-scoped, administrators only), ``Policy``, ``Relationship``
(administrators only), ``Secret``, ``Node`` (cluster-scoped), ``NodePool`` (cluster-scoped, administrators only),
``Queue``, ``Job``, ``Event``, and
the DRA kinds
``DeviceClass``, ``ResourceSlice`` (cluster-scoped) and ``ResourceClaim`` under
``resource.k8s.io/v1``, which are accepted exactly as a Kubernetes cluster serves them, as are the
Gateway API's ``HTTPRoute`` (``gateway.networking.k8s.io/v1``) and the Inference Extension's
``InferencePool`` (``inference.networking.k8s.io/v1``) and ``InferenceObjective``
(``inference.networking.x-k8s.io/v1alpha2``).

Example::

    from modelplane import api

    for manifest in api.load_paths(["examples/quickstart"]):
        obj = api.validate(manifest.obj, manifest=manifest)
"""

from modelplane.api import errors
from modelplane.api._agent import BUNDLE_DIGEST, Agent, AgentSpec, Tool
from modelplane.api._body import json_object, query_count, shown
from modelplane.api._cells import age, cell, human_duration, parse_timestamp
from modelplane.api._dra import DeviceClass, ResourceClaim, ResourceSlice
from modelplane.api._endpoint import (
    PRIORITY_HEADER,
    PRIORITY_VALUE_HEADER,
    Endpoint,
    slo_window_seconds,
)
from modelplane.api._event import Event
from modelplane.api._explain import explain
from modelplane.api._gatewayapi import (
    GATEWAY_GROUP,
    INFERENCE_GROUP,
    HeaderMatch,
    HTTPRoute,
    InferencePool,
)
from modelplane.api._graph import Graph
from modelplane.api._job import JOB_PYTHON, Job
from modelplane.api._jsonschema import json_schema
from modelplane.api._manifest import Manifest, load_manifests, load_paths
from modelplane.api._meta import (
    READY_PATH,
    Condition,
    ObjectMeta,
    Resource,
    check_dns_label,
    check_dns_subdomain,
)
from modelplane.api._model import Model
from modelplane.api._names import (
    ACTION_ANNOTATION,
    ARRIVAL_ANNOTATION,
    BLOCK_LABEL,
    CONSUMER_ANNOTATION,
    CONSUMER_CLAIMS_ANNOTATION,
    DEMAND_ANNOTATION,
    DURATION_ANNOTATION,
    ENDPOINT_LABEL,
    ENSEMBLE_ANNOTATION,
    FALLBACKS_ANNOTATION,
    GANG_ANNOTATION,
    GANG_SIZE_ANNOTATION,
    HOSTNAME_LABEL,
    IDLE_TIMEOUT_ANNOTATION,
    JOB_LABEL,
    MAX_TIME_SLICES,
    METRICS_URL_ANNOTATION,
    NODE_POWER_BUDGET_ANNOTATION,
    NODE_POWER_CAP_ANNOTATION,
    OWNER_KIND_LABEL,
    PREFIX_POLICIES,
    PRICE_ANNOTATION,
    PRIORITY_ANNOTATION,
    PUBLISHER_LABEL,
    QUEUE_ANNOTATION,
    RACK_LABEL,
    RACK_POWER_BUDGET_ANNOTATION,
    RACK_POWER_CAP_ANNOTATION,
    REPLICA_LABEL,
    ROUTING_POLICIES,
    SCRAPED_POLICIES,
    SERVER_OWNED,
    SIMULATED_ANNOTATION,
    SIMULATED_LABEL,
    STICKY_ANNOTATION,
    TEMPLATE_HASH_ANNOTATION,
    TIME_SLICES_CAPACITY,
    TIME_SLICING_ANNOTATION,
    VERSION_LABEL,
    RoutingPolicy,
)
from modelplane.api._node import (
    NODE_LEASE_SECONDS,
    TOPOLOGY_LABELS,
    Node,
    node_lease_name,
)
from modelplane.api._nodepool import NODEPOOL_LABEL, NodePool
from modelplane.api._objective import InferenceObjective
from modelplane.api._openai import STREAM_DONE, openai_error, openai_error_body, openai_stream_error
from modelplane.api._policy import CLUSTER_POLICY_NAMESPACE, Policy, cedar_error
from modelplane.api._principal import (
    ADMIN_GROUP,
    AUTHENTICATED_GROUP,
    LOCAL_OPERATOR,
    NAMESPACE_GROUP_PREFIX,
    SERVICE_ACCOUNT_PREFIX,
    Principal,
    principal_of,
    service_account,
)
from modelplane.api._quantity import Quantity, QuantityError, format_quantity, parse_quantity
from modelplane.api._queue import Queue
from modelplane.api._registry import KindInfo, kind_info, kinds, lookup
from modelplane.api._relationship import (
    RelatedObject,
    Relationship,
    RelationshipSpec,
    Subject,
)
from modelplane.api._secret import Secret, check_secret_key
from modelplane.api._toolserver import ToolServer, ToolServerSpec
from modelplane.api._types import parse_duration
from modelplane.api._unenforced import not_enforced
from modelplane.api._validate import resolve, validate

__all__ = [
    "ACTION_ANNOTATION",
    "ADMIN_GROUP",
    "ARRIVAL_ANNOTATION",
    "AUTHENTICATED_GROUP",
    "BLOCK_LABEL",
    "BUNDLE_DIGEST",
    "CLUSTER_POLICY_NAMESPACE",
    "CONSUMER_ANNOTATION",
    "CONSUMER_CLAIMS_ANNOTATION",
    "DEMAND_ANNOTATION",
    "DURATION_ANNOTATION",
    "ENDPOINT_LABEL",
    "ENSEMBLE_ANNOTATION",
    "FALLBACKS_ANNOTATION",
    "GANG_ANNOTATION",
    "GANG_SIZE_ANNOTATION",
    "GATEWAY_GROUP",
    "HOSTNAME_LABEL",
    "IDLE_TIMEOUT_ANNOTATION",
    "INFERENCE_GROUP",
    "JOB_LABEL",
    "JOB_PYTHON",
    "LOCAL_OPERATOR",
    "MAX_TIME_SLICES",
    "METRICS_URL_ANNOTATION",
    "NAMESPACE_GROUP_PREFIX",
    "NODEPOOL_LABEL",
    "NODE_LEASE_SECONDS",
    "NODE_POWER_BUDGET_ANNOTATION",
    "NODE_POWER_CAP_ANNOTATION",
    "OWNER_KIND_LABEL",
    "PREFIX_POLICIES",
    "PRICE_ANNOTATION",
    "PRIORITY_ANNOTATION",
    "PRIORITY_HEADER",
    "PRIORITY_VALUE_HEADER",
    "PUBLISHER_LABEL",
    "QUEUE_ANNOTATION",
    "RACK_LABEL",
    "RACK_POWER_BUDGET_ANNOTATION",
    "RACK_POWER_CAP_ANNOTATION",
    "READY_PATH",
    "REPLICA_LABEL",
    "ROUTING_POLICIES",
    "SCRAPED_POLICIES",
    "SERVER_OWNED",
    "SERVICE_ACCOUNT_PREFIX",
    "SIMULATED_ANNOTATION",
    "SIMULATED_LABEL",
    "STICKY_ANNOTATION",
    "STREAM_DONE",
    "TEMPLATE_HASH_ANNOTATION",
    "TIME_SLICES_CAPACITY",
    "TIME_SLICING_ANNOTATION",
    "TOPOLOGY_LABELS",
    "VERSION_LABEL",
    "Agent",
    "AgentSpec",
    "Condition",
    "DeviceClass",
    "Endpoint",
    "Event",
    "Graph",
    "HTTPRoute",
    "HeaderMatch",
    "InferenceObjective",
    "InferencePool",
    "Job",
    "KindInfo",
    "Manifest",
    "Model",
    "Node",
    "NodePool",
    "ObjectMeta",
    "Policy",
    "Principal",
    "Quantity",
    "QuantityError",
    "Queue",
    "RelatedObject",
    "Relationship",
    "RelationshipSpec",
    "Resource",
    "ResourceClaim",
    "ResourceSlice",
    "RoutingPolicy",
    "Secret",
    "Subject",
    "Tool",
    "ToolServer",
    "ToolServerSpec",
    "age",
    "cedar_error",
    "cell",
    "check_dns_label",
    "check_dns_subdomain",
    "check_secret_key",
    "errors",
    "explain",
    "format_quantity",
    "human_duration",
    "json_object",
    "json_schema",
    "kind_info",
    "kinds",
    "load_manifests",
    "load_paths",
    "lookup",
    "node_lease_name",
    "not_enforced",
    "openai_error",
    "openai_error_body",
    "openai_stream_error",
    "parse_duration",
    "parse_quantity",
    "parse_timestamp",
    "principal_of",
    "query_count",
    "resolve",
    "service_account",
    "shown",
    "slo_window_seconds",
    "validate",
]
