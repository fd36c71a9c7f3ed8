"""The Modelplane API: every kind's schema, validation, manifests, JSON Schema and explain.

This package owns the shape of objects and nothing else: it imports no other part of Modelplane,
reads no store and starts nothing. Everything that accepts an object (REST, CLI, controllers
writing status) passes it through :func:`validate`, which returns the normalised object or raises
:class:`errors.Invalid` naming each offending field, with ``file:line:column`` when the object was
read from a manifest by :func:`load_manifests` or :func:`load_paths`.

Kinds (group ``modelplane.dev/v1alpha1`` unless noted): ``Model``, ``Endpoint``, ``Graph``,
``Agent``, ``ToolServer`` (cluster-scoped, administrators only), ``Policy``, ``Secret``,
``Node`` (cluster-scoped), ``Queue``, ``Job``, ``Event``, and the DRA kinds
``DeviceClass``, ``ResourceSlice`` (cluster-scoped) and ``ResourceClaim`` under
``resource.k8s.io/v1``, which are accepted exactly as a Kubernetes cluster serves them.

Example::

    from modelplane import api

    for manifest in api.load_paths(["examples/quickstart"]):
        obj = api.validate(manifest.obj, manifest=manifest)
"""

from modelplane.api import errors
from modelplane.api._agent import Agent
from modelplane.api._cells import age, cell, human_duration, parse_timestamp
from modelplane.api._dra import DeviceClass, ResourceClaim, ResourceSlice
from modelplane.api._endpoint import Endpoint
from modelplane.api._event import Event
from modelplane.api._explain import explain
from modelplane.api._graph import Graph
from modelplane.api._job import Job
from modelplane.api._jsonschema import json_schema
from modelplane.api._manifest import Manifest, load_manifests, load_paths
from modelplane.api._meta import (
    Condition,
    ObjectMeta,
    Resource,
    check_dns_label,
    check_dns_subdomain,
)
from modelplane.api._model import Model
from modelplane.api._node import TOPOLOGY_LABELS, Node
from modelplane.api._policy import Policy
from modelplane.api._principal import (
    ADMIN_GROUP,
    AUTHENTICATED_GROUP,
    LOCAL_OPERATOR,
    Principal,
    principal_of,
)
from modelplane.api._quantity import Quantity, parse_quantity
from modelplane.api._queue import Queue
from modelplane.api._registry import KindInfo, kind_info, kinds, lookup
from modelplane.api._secret import Secret, check_secret_key
from modelplane.api._toolserver import ToolServer
from modelplane.api._types import parse_duration
from modelplane.api._unenforced import not_enforced
from modelplane.api._validate import resolve, validate

__all__ = [
    "ADMIN_GROUP",
    "AUTHENTICATED_GROUP",
    "LOCAL_OPERATOR",
    "TOPOLOGY_LABELS",
    "Agent",
    "Condition",
    "DeviceClass",
    "Endpoint",
    "Event",
    "Graph",
    "Job",
    "KindInfo",
    "Manifest",
    "Model",
    "Node",
    "ObjectMeta",
    "Policy",
    "Principal",
    "Quantity",
    "Queue",
    "Resource",
    "ResourceClaim",
    "ResourceSlice",
    "Secret",
    "ToolServer",
    "age",
    "cell",
    "check_dns_label",
    "check_dns_subdomain",
    "check_secret_key",
    "errors",
    "explain",
    "human_duration",
    "json_schema",
    "kind_info",
    "kinds",
    "load_manifests",
    "load_paths",
    "lookup",
    "not_enforced",
    "parse_duration",
    "parse_quantity",
    "parse_timestamp",
    "principal_of",
    "resolve",
    "validate",
]
