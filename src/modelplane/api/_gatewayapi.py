"""Gateway API ``HTTPRoute`` and the Inference Extension's ``InferencePool``, accepted unchanged.

``gateway.networking.k8s.io/v1`` ``HTTPRoute`` and ``inference.networking.k8s.io/v1``
``InferencePool`` with their exact field names. As with the DRA kinds, every structure is an
:class:`OpenSchema`: fields we do not model are kept, so an object written for a cluster applies
and round-trips unchanged. What our gateway relies on is typed and checked as the Gateway API's
own CRD validation checks it: match types, header names, regular expressions, path values,
weights, ports, the Service-needs-a-port rule and the list limits. :class:`HeaderMatch` is also
the header match of our own ``Endpoint.spec.routing.headerRoutes`` (where typos are refused).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Self

from pydantic import ConfigDict, Field, field_validator, model_validator

from modelplane.api._meta import OpenSchema, Resource, Schema, check_labels
from modelplane.api._types import Problems

GATEWAY_GROUP = "gateway.networking.k8s.io"
INFERENCE_GROUP = "inference.networking.k8s.io"

#: an HTTP header name (RFC 7230 token), as the Gateway API's HTTPHeaderName pattern says
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

MatchType = Literal["Exact", "RegularExpression"]
HTTPMethod = Literal["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]


def _check_regex(value: str, type_: str) -> str | None:
    """Why ``value`` is not a usable regular expression (None: it is, or it is no regex)."""
    if type_ != "RegularExpression":
        return None
    try:
        re.compile(value)
    except re.error as exc:
        return f"invalid regular expression {value!r}: {exc}; fix it or use type Exact"
    return None


class HeaderMatch(Schema):
    """A request header that must have a value: exactly, or matching a regular expression."""

    type: MatchType = Field(
        default="Exact", description="Exact (the default) or RegularExpression (Python `re`)."
    )
    name: str = Field(
        min_length=1,
        max_length=256,
        description="The header name, compared case-insensitively, e.g. `OpenAI-Project`.",
    )
    value: str = Field(max_length=4096, description="The value, or the regular expression.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _HEADER_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
            )
        return value

    @model_validator(mode="after")
    def _regex(self) -> Self:
        problem = _check_regex(self.value, self.type)
        if problem:
            problems = Problems()
            problems.add(("value",), problem)
            problems.raise_any()
        return self


class HTTPHeaderMatch(HeaderMatch):
    """``rules[].matches[].headers[]`` of an HTTPRoute (unknown fields kept)."""

    model_config = ConfigDict(extra="allow")


class HTTPPathMatch(OpenSchema):
    """Which request paths match."""

    type: Literal["Exact", "PathPrefix", "RegularExpression"] = Field(
        default="PathPrefix", description="Exact, PathPrefix (the default) or RegularExpression."
    )
    value: str = Field(default="/", max_length=1024, description="The path, e.g. `/v1`.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = Problems()
        if self.type != "RegularExpression" and not self.value.startswith("/"):
            problems.add(("value",), f"a {self.type} path must start with '/' (got {self.value!r})")
        problem = _check_regex(self.value, self.type)
        if problem:
            problems.add(("value",), problem)
        problems.raise_any()
        return self


class HTTPQueryParamMatch(OpenSchema):
    """A query parameter that must have a value."""

    type: MatchType = Field(default="Exact", description="Exact or RegularExpression.")
    name: str = Field(min_length=1, max_length=256, description="The parameter name (exact).")
    value: str = Field(max_length=1024, description="The value, or the regular expression.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        problem = _check_regex(self.value, self.type)
        if problem:
            problems = Problems()
            problems.add(("value",), problem)
            problems.raise_any()
        return self


class HTTPRouteMatch(OpenSchema):
    """Conditions a request must all meet (path AND headers AND query parameters AND method)."""

    path: HTTPPathMatch | None = Field(
        default=None, description="The path; unset means PathPrefix `/` (every path)."
    )
    headers: list[HTTPHeaderMatch] | None = Field(
        default=None, max_length=16, description="Headers, all of which must match."
    )
    query_params: list[HTTPQueryParamMatch] | None = Field(
        default=None, max_length=16, description="Query parameters, all of which must match."
    )
    method: HTTPMethod | None = Field(default=None, description="The HTTP method, e.g. `POST`.")


class BackendRef(OpenSchema):
    """Where matching requests go, and with what share (``weight``)."""

    group: str = Field(
        default="",
        max_length=253,
        description=(
            "The referent's API group: `` (core: a Service), `modelplane.dev` (an Endpoint) or"
            " `inference.networking.k8s.io` (an InferencePool)."
        ),
    )
    kind: str = Field(
        default="Service", max_length=63, description="Service, Endpoint or InferencePool."
    )
    name: str = Field(min_length=1, max_length=253, description="The referent's name.")
    namespace: str | None = Field(
        default=None, description="The referent's namespace; only the route's own is served."
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="The port; required for a Service."
    )
    weight: int = Field(
        default=1,
        ge=0,
        le=1_000_000,
        description="Share of the rule's requests, relative to the other backendRefs; 0: none.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.group == "" and self.kind == "Service" and self.port is None:
            problems = Problems()
            problems.add(("port",), "a Service backendRef must set port (e.g. 8000)")
            problems.raise_any()
        return self


class HTTPRouteRule(OpenSchema):
    """Matches (any one of which selects the rule) and the weighted backends it sends to."""

    name: str | None = Field(default=None, description="An optional name for the rule.")
    matches: list[HTTPRouteMatch] | None = Field(
        default=None,
        max_length=64,
        description="Conditions, any one of which selects the rule; unset matches every request.",
    )
    filters: list[dict[str, Any]] | None = Field(
        default=None, max_length=16, description="Filters (kept; not applied by our gateway)."
    )
    backend_refs: list[BackendRef] | None = Field(
        default=None, max_length=16, description="The backends, with weights."
    )


class ParentReference(OpenSchema):
    """The Gateway (or other parent) the route attaches to."""

    group: str = Field(default=GATEWAY_GROUP, description="The parent's group.")
    kind: str = Field(default="Gateway", description="The parent's kind.")
    namespace: str | None = Field(default=None, description="The parent's namespace.")
    name: str = Field(min_length=1, max_length=253, description="The parent's name.")
    section_name: str | None = Field(default=None, description="A listener of the parent.")
    port: int | None = Field(default=None, ge=1, le=65535, description="A port of the parent.")


class HTTPRouteSpec(OpenSchema):
    """Which requests (hostnames, rules) go where (backendRefs)."""

    parent_refs: list[ParentReference] | None = Field(
        default=None, max_length=32, description="The Gateways the route attaches to."
    )
    hostnames: list[str] | None = Field(
        default=None,
        max_length=16,
        description="Host header values served (`*.example.com` wildcards); unset: any.",
    )
    rules: list[HTTPRouteRule] | None = Field(
        default=None,
        max_length=16,
        description=(
            "Rules; the most specific matching one serves a request. Unset: one rule matching"
            " every request, with no backend (the Gateway API's default)."
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = Problems()
        for i, host in enumerate(self.hostnames or []):
            if len(host) > 253 or not _HOSTNAME.fullmatch(host):
                problems.add(
                    ("hostnames", i),
                    f"{host!r} is not a hostname (lowercase DNS name, optionally `*.` first;"
                    " no IP address, no port)",
                )
        problems.raise_any()
        return self


class HTTPRoute(Resource):
    """Gateway API HTTPRoute: rules matching requests to weighted backends (namespaced).

    Our gateway serves it for the ``/v1`` model name equal to the route's name, or the value of
    an ``X-Gateway-Model-Name`` Exact header match (see docs/gateway.md).
    """

    model_config = ConfigDict(extra="allow")

    spec: HTTPRouteSpec = Field(default_factory=HTTPRouteSpec, description="The routing rules.")
    status: dict[str, Any] | None = Field(
        default=None, description="`parents[]` with Accepted and ResolvedRefs conditions."
    )

    GROUP: ClassVar[str] = GATEWAY_GROUP
    VERSION: ClassVar[str] = "v1"
    PLURAL: ClassVar[str] = "httproutes"
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("HOSTNAMES", "spec.hostnames"),
        ("ACCEPTED", "status.parents[0].conditions[type=Accepted].status"),
        ("RESOLVED", "status.parents[0].conditions[type=ResolvedRefs].status"),
    )


class LabelSelector(OpenSchema):
    """The labels every member must have (``matchLabels`` only, as the Inference Extension says)."""

    match_labels: dict[str, str] = Field(
        min_length=1, max_length=64, description="Labels a replica must all have."
    )

    @field_validator("match_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return check_labels(value)


class Port(OpenSchema):
    """A port number."""

    number: int = Field(ge=1, le=65535, description="The port number.")


class EndpointPickerRef(OpenSchema):
    """The endpoint picker (EPP) extension; our gateway picks replicas itself (see the docs)."""

    group: str = Field(default="", description="The picker's group; `` is core (a Service).")
    kind: str = Field(default="Service", description="The picker's kind.")
    name: str = Field(min_length=1, max_length=253, description="The picker's name.")
    port: Port | None = Field(default=None, description="The picker's port (for a Service).")
    failure_mode: Literal["FailOpen", "FailClose"] = Field(
        default="FailClose", description="What to do when the picker does not answer."
    )


class InferencePoolSpec(OpenSchema):
    """Which replicas are members (``selector``), on which ports, picked by which picker."""

    selector: LabelSelector = Field(description="The labels that make a replica a member.")
    target_ports: list[Port] = Field(
        min_length=1, max_length=8, description="The members' serving ports."
    )
    endpoint_picker_ref: EndpointPickerRef | None = Field(
        default=None, description="The endpoint picker extension (unset: our gateway picks)."
    )


class InferencePool(Resource):
    """Inference Extension InferencePool: model-server replicas selected by labels (namespaced).

    In Modelplane a replica of Endpoint ``E`` serving version ``V`` carries the Endpoint's labels
    plus ``modelplane.dev/endpoint: E`` and ``modelplane.dev/version: V`` (the labels the
    rendered Deployments give their pods); the pool's members are the ready replicas whose labels
    include every ``selector.matchLabels`` entry.
    """

    model_config = ConfigDict(extra="allow")

    spec: InferencePoolSpec = Field(description="The selector, ports and endpoint picker.")
    status: dict[str, Any] | None = Field(default=None, description="`parents[]` conditions.")

    GROUP: ClassVar[str] = INFERENCE_GROUP
    VERSION: ClassVar[str] = "v1"
    PLURAL: ClassVar[str] = "inferencepools"
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (("SELECTOR", "spec.selector.matchLabels"),)
