"""The REST API's request metrics, under kube-apiserver's names, so that its dashboards read ours.

* ``apiserver_request_total{verb,group,resource,subresource,code}``: every request answered;
* ``apiserver_request_duration_seconds{verb,group,resource,subresource}``: time to the end of the
  response (watches left out: they last as long as the client wants);
* ``apiserver_longrunning_requests{verb,group,resource}``: watch streams open now.

``verb`` is Kubernetes': ``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``,
``delete``, ``deletecollection`` for the object routes; the lower-case method elsewhere (OpenAPI,
discovery, ``/v1``, ``/agents``), with ``resource`` empty. Only the plural of a known kind is a
``resource`` label (anything else is ``unknown``), so a client cannot grow the series without end.
The metrics are in prometheus_client's process-wide registry (``/metrics`` of ``up`` and
``modelplane server``).
"""

from __future__ import annotations

import re
import time
from functools import cache
from urllib.parse import parse_qs

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import Message, Receive, Scope, Send

from modelplane.api import kinds
from modelplane.server._middleware import HTTPMiddleware

_REQUESTS = Counter(
    "apiserver_request_total",
    "Counter of API requests, by verb, group, resource, subresource and HTTP response code.",
    ["verb", "group", "resource", "subresource", "code"],
)
_DURATION = Histogram(
    "apiserver_request_duration_seconds",
    "Response latency distribution in seconds, by verb, group, resource and subresource.",
    ["verb", "group", "resource", "subresource"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0),
)
_LONGRUNNING = Gauge(
    "apiserver_longrunning_requests",
    "Gauge of all active long-running API requests (watches), by verb, group and resource.",
    ["verb", "group", "resource"],
)

# /api/v1/... (the core group) or /apis/<group>/<version>/..., then the object path
_OBJECT_PATH = re.compile(
    r"^/(?:api/[^/]+|apis/(?P<group>[^/]+)/[^/]+)"
    r"(?:/namespaces/[^/]+)?/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?/?$"
)
_ITEM_VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_COLLECTION_VERBS = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}
_SUBRESOURCES = frozenset({"status", "scale"})


@cache
def _plurals() -> frozenset[str]:
    return frozenset(k.plural for k in kinds()) | {"namespaces"}


def request_labels(method: str, path: str, query: str) -> tuple[str, str, str, str]:
    """(verb, group, resource, subresource) of a request, as kube-apiserver labels it."""
    match = _OBJECT_PATH.match(path)
    if match is None:
        return method.lower(), "", "", ""
    resource = match["resource"]
    known = resource in _plurals()
    sub = match["sub"] or ""
    if not known or (sub and sub not in _SUBRESOURCES):
        resource, sub = ("unknown" if not known else resource), ("unknown" if sub else "")
    if match["name"] is None:
        watching = method == "GET" and parse_qs(query).get("watch", [""])[0] in ("true", "1")
        verb = "watch" if watching else _COLLECTION_VERBS.get(method, method.lower())
    else:
        verb = _ITEM_VERBS.get(method, method.lower())
    return verb, match["group"] or "", resource, sub


class RequestMetrics(HTTPMiddleware):
    """ASGI middleware counting and timing every HTTP request (see the module docstring)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        verb, group, resource, sub = request_labels(scope["method"], scope["path"], query)
        began = time.perf_counter()
        code = "500"

        async def sent(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = str(message["status"])
            await send(message)

        open_watch = _LONGRUNNING.labels(verb, group, resource) if verb == "watch" else None
        if open_watch is not None:
            open_watch.inc()
        try:
            await self.app(scope, receive, sent)
        finally:
            _REQUESTS.labels(verb, group, resource, sub, code).inc()
            if open_watch is not None:
                open_watch.dec()
            else:
                _DURATION.labels(verb, group, resource, sub).observe(time.perf_counter() - began)
