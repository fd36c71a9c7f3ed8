"""``/agents/{namespace}/{agent}/instances[...]``: the REST surface of agent instances.

Errors leave as Kubernetes ``Status`` objects (the server's handlers render every
:class:`~modelplane.api.errors.ModelplaneError`). Writes are durable before the answer; work is
picked up by the runtime that owns the instance's shard.

Every route is authorized by the tenancy rules (:class:`~modelplane.policy.Tenancy`): only
members of the namespace and administrators reach its agents' instances (403 otherwise).

Every path segment is checked before anything is read: the namespace is a DNS label, the agent
and the instance id DNS subdomains (the API's name rules), so ``/agents/%2e%2e/...`` or a NUL is a
400 naming the segment. Bodies and query parameters are checked the same way: a value of the wrong
type is a 400 naming the field, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Protocol

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from modelplane.agents._journal import Database
from modelplane.agents.runtime import Instances
from modelplane.api import (
    NAMESPACE_GROUP_PREFIX,
    Principal,
    check_dns_label,
    check_dns_subdomain,
    json_object,
    principal_of,
    query_count,
    shown,
)
from modelplane.api.errors import BadRequest, Forbidden
from modelplane.store import Store


def agents_url(store_url: str) -> str:
    """Where the runtime's tables live for a store: ``agents.db`` beside a SQLite store, or the
    same PostgreSQL database."""
    if store_url.startswith("sqlite:"):
        base, _, _query = store_url.partition("?")
        head, _, _ = base.rpartition("/")
        return f"{head}/agents.db"
    return store_url


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


async def _body(request: Request) -> dict[str, Any]:
    return json_object(await request.body(), empty_is_object=True)


#: what each path segment is, and the API name rule it follows
_SEGMENTS: dict[str, tuple[str, Callable[[str, str], str]]] = {
    "namespace": ("namespace", check_dns_label),
    "agent": ("agent name", check_dns_subdomain),
    "id": ("instance id", check_dns_subdomain),
}


_JSON_TYPES = {
    list: "an array",
    dict: "an object",
    bool: "a boolean",
    int: "a number",
    float: "a number",
}


def _checked(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The namespace, agent (and instance id) of a path, each checked against the name rules."""
    out: list[str] = []
    for key, (what, check) in _SEGMENTS.items():
        if key not in params:
            continue
        value = str(params[key])
        try:
            check(value, what)
        except ValueError as exc:
            raise BadRequest(f"the URL's {key} segment is not valid: {exc}") from None
        out.append(value)
    return tuple(out)


def _instance_id(body: Mapping[str, Any]) -> str | None:
    """The ``id`` a create body asks for: absent/null (one is generated) or a valid name."""
    value = body.get("id")
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(
            f"id in the request body must be a string (the instance's name) or null, not"
            f" {_JSON_TYPES.get(type(value), 'a ' + type(value).__name__)}"
        )
    try:
        return check_dns_subdomain(value, "id in the request body")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _actor(request: Request) -> str:
    user = request.scope.get("user")
    name = getattr(user, "display_name", None) or getattr(user, "username", None)
    return str(name) if name else request.headers.get("x-modelplane-user", "anonymous")


class NamespaceRules(Protocol):
    """Who may do what to the Agents of a namespace (the platform passes the tenancy rules of
    :mod:`modelplane.policy`): ``decide(principal, action, kind, namespace).allowed``."""

    def decide(self, principal: Principal, action: str, kind: str, namespace: str) -> Allowed: ...


class Allowed(Protocol):
    @property
    def allowed(self) -> bool: ...


def _authorize(tenancy: NamespaceRules, request: Request, namespace: str, action: str) -> None:
    """Raise Forbidden unless the caller may ``action`` the Agents of ``namespace`` (the tenancy
    rules: members of the namespace and administrators); 403 whether or not the agent exists."""
    principal = principal_of(request.scope)
    if tenancy.decide(principal, action, "Agent", namespace).allowed:
        return
    raise Forbidden(
        f"agents in the namespace {namespace!r} are forbidden to user {principal.name!r}"
        f" ({action}): only members of the namespace (the group"
        f" {NAMESPACE_GROUP_PREFIX}{namespace}) and administrators reach them; ask an operator"
        " for access",
        details={"kind": "Agent"},
    )


#: the tenancy action of each instance route (method, action segment)
_ACTIONS = {
    ("POST", "messages"): "agent.message",
    ("POST", "input"): "update",
    ("POST", "cancel"): "update",
}


def routes(store: Store, tenancy: NamespaceRules) -> list[BaseRoute]:
    """The instance routes for the agents of ``store``, each authorized by ``tenancy``."""
    endpoints = _InstanceEndpoints(store, tenancy)
    return [
        Mount(
            "/agents",
            routes=[
                Route(
                    "/{namespace}/{agent}/instances",
                    endpoints.collection,
                    methods=["GET", "POST"],
                ),
                Route("/{namespace}/{agent}/instances/{id}", endpoints.one, methods=["GET"]),
                Route(
                    "/{namespace}/{agent}/instances/{id}/{action}",
                    endpoints.action,
                    methods=["GET", "POST"],
                ),
            ],
        )
    ]


class _InstanceEndpoints:
    """The instance endpoints over one store's agents. They raise
    :class:`~modelplane.api.errors.ModelplaneError`; the app they are mounted in renders it."""

    def __init__(self, store: Store, rules: NamespaceRules) -> None:
        self.store = store
        self.rules = rules
        self._instances: Instances | None = None

    @property
    def instances(self) -> Instances:
        """The runtime's tables, opened on first use (a server without agents never opens them)."""
        if self._instances is None:
            self._instances = Instances(Database(agents_url(self.store.url)))
        return self._instances

    async def collection(self, request: Request) -> Response:
        """``POST`` starts an instance; ``GET`` lists a page of them."""
        ns, agent = _checked(request.path_params)
        _authorize(self.rules, request, ns, "create" if request.method == "POST" else "list")
        if request.method == "POST":
            return await self._create(request, ns, agent)
        q = request.query_params
        given = query_count(q, "limit")
        limit = 100 if given is None else given
        status = q.get("status") or None
        token = q.get("continue") or None
        if token is not None:
            try:
                check_dns_subdomain(token, "query parameter continue")
            except ValueError as exc:
                raise BadRequest(
                    f"{exc}; pass the `continue` value of the previous page as it was"
                ) from None
        items, token = await run_in_threadpool(
            self.instances.list, ns, agent, status=status, limit=limit, continue_token=token
        )
        return _json({"items": items, "continue": token})

    async def _create(self, request: Request, ns: str, agent: str) -> Response:
        body = await _body(request)
        name = _instance_id(body)
        version = await run_in_threadpool(self._agent_version, ns, agent)
        info = await run_in_threadpool(
            self.instances.create,
            ns,
            agent,
            name,
            body.get("input"),
            version=version,
            actor=_actor(request),
        )
        return _json(info, 201)

    def _agent_version(self, namespace: str, agent: str) -> str:
        obj = self.store.get("Agent", namespace, agent)
        return str(obj["metadata"].get("generation", 1))

    async def one(self, request: Request) -> Response:
        """``GET`` one instance."""
        key = _checked(request.path_params)
        _authorize(self.rules, request, key[0], "get")
        return _json(await run_in_threadpool(self.instances.get, *key))

    async def action(self, request: Request) -> Response:
        """``POST`` messages, input or cancel; ``GET`` journal or audit."""
        ns, agent, name = _checked(request.path_params)
        key = (ns, agent, name)
        what = request.path_params["action"]
        _authorize(self.rules, request, ns, _ACTIONS.get((request.method, what), "get"))
        actor = _actor(request)
        body = await _body(request) if request.method == "POST" else {}
        i = self.instances
        call: Callable[[], Any]
        match (what, request.method):
            case ("messages", "POST"):
                call = partial(i.send, *key, body.get("payload"), actor=actor)
            case ("input", "POST"):
                call = partial(i.give_input, *key, body.get("value"), actor=actor)
            case ("cancel", "POST"):
                call = partial(i.cancel, *key, actor=actor)
            case ("journal", "GET"):
                after = query_count(request.query_params, "after") or 0
                return _json({"items": await run_in_threadpool(i.journal, *key, after=after)})
            case ("audit", "GET"):
                return _json({"items": await run_in_threadpool(i.audit, *key)})
            case _:
                raise BadRequest(
                    f"{request.method} .../{shown(what)} is not an instance action; use POST"
                    " messages, input or cancel, or GET journal or audit"
                )
        await run_in_threadpool(call)
        return _json({"accepted": True}, 202)


# -- the OpenAPI description ----------------------------------------------------------------------

_STATUS_REF = {"$ref": "#/components/schemas/v1.Status"}
_INSTANCE = "agents.Instance"


def _segment(name: str, description: str, pattern: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": pattern},
        "description": description,
    }


_LABEL = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_SUBDOMAIN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_PATH_PARAMS = [
    _segment("namespace", "The Agent's namespace (a DNS label).", _LABEL),
    _segment("agent", "The Agent's name.", _SUBDOMAIN),
]
_ID = _segment("id", "The instance's id.", _SUBDOMAIN)


def _ok(code: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        code: {"description": description, "content": {"application/json": {"schema": schema}}},
        "default": {
            "description": "the request failed: a Kubernetes Status",
            "content": {"application/json": {"schema": _STATUS_REF}},
        },
    }


def _op(op_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "operationId": op_id,
        "summary": summary,
        "tags": ["agents"],
        **extra,
        "responses": responses,
    }


def _request_body(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "required": False,
        "content": {"application/json": {"schema": {"type": "object", "properties": properties}}},
    }


_INSTANCE_REF = {"$ref": f"#/components/schemas/{_INSTANCE}"}
_ITEMS = {"type": "object", "required": ["items"], "properties": {"items": {"type": "array"}}}
_ACCEPTED = {"type": "object", "properties": {"accepted": {"type": "boolean"}}}
_INSTANCE_PARAMS = [*_PATH_PARAMS, _ID]
_INSTANCE_SCHEMA = {
    "type": "object",
    "required": ["namespace", "agent", "id", "status"],
    "properties": {
        "namespace": {"type": "string"},
        "agent": {"type": "string"},
        "id": {"type": "string"},
        "status": {"type": "string"},
    },
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def openapi_paths(prefix: str = "/agents") -> dict[str, Any]:
    """``{"paths": ..., "schemas": ...}`` describing the instance routes mounted at ``prefix``."""
    base = f"{prefix}/{{namespace}}/{{agent}}/instances"
    paths = {
        base: {"parameters": _PATH_PARAMS, "get": _list_op(), "post": _create_op()},
        f"{base}/{{id}}": {
            "parameters": _INSTANCE_PARAMS,
            "get": _op(
                "readAgentInstance",
                "An instance's status, result, prompt and state",
                _ok("200", _INSTANCE_REF, "the instance"),
            ),
        },
        f"{base}/{{id}}/messages": _post_action(
            "message", "Send the instance a message", {"payload": {}}
        ),
        f"{base}/{{id}}/input": _post_action(
            "input", "Answer the instance's wait_for_input prompt", {"value": {}}
        ),
        f"{base}/{{id}}/cancel": _post_action("cancel", "Cancel the instance", None),
        f"{base}/{{id}}/journal": _get_records(
            "readAgentInstanceJournal",
            "The instance's journal records",
            "journal records",
            parameters=[
                _query("after", {"type": "integer", "minimum": 0}, "Records after this seq.")
            ],
        ),
        f"{base}/{{id}}/audit": _get_records(
            "readAgentInstanceAudit",
            "Who did what to the instance, oldest first",
            "audit records",
        ),
    }
    return {"paths": paths, "schemas": {_INSTANCE: _INSTANCE_SCHEMA}}


def _list_op() -> dict[str, Any]:
    page = {
        "type": "object",
        "required": ["items"],
        "properties": {
            "items": {"type": "array", "items": _INSTANCE_REF},
            "continue": {"type": ["string", "null"]},
        },
    }
    return _op(
        "listAgentInstances",
        "List an Agent's instances, a page at a time",
        _ok("200", page, "a page of instances"),
        parameters=[
            _query("status", {"type": "string"}, "Only instances with this status."),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "Page size."),
            _query("continue", {"type": "string"}, "The `continue` of the previous page."),
        ],
    )


def _create_op() -> dict[str, Any]:
    return _op(
        "createAgentInstance",
        "Start an instance of an Agent",
        _ok("201", _INSTANCE_REF, "the new instance"),
        requestBody=_request_body(
            {
                "id": {"type": ["string", "null"], "pattern": _SUBDOMAIN},
                "input": {"description": "Any JSON value, handed to the handler."},
            }
        ),
    )


def _post_action(action: str, summary: str, body: dict[str, Any] | None) -> dict[str, Any]:
    extra = {"requestBody": _request_body(body)} if body is not None else {}
    operation = _op(f"{action}AgentInstance", summary, _ok("202", _ACCEPTED, "accepted"), **extra)
    return {"parameters": _INSTANCE_PARAMS, "post": operation}


def _get_records(op_id: str, summary: str, what: str, **extra: Any) -> dict[str, Any]:
    return {
        "parameters": _INSTANCE_PARAMS,
        "get": _op(op_id, summary, _ok("200", _ITEMS, what), **extra),
    }
