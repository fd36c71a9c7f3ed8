"""The MCP gateway: each ToolServer served as a Streamable HTTP MCP endpoint per namespace.

``/mcp/{namespace}/{server}`` is an MCP server built with the SDK's low-level ``Server`` and its
Streamable HTTP session manager (one of each per namespace and ToolServer, made on first use). Its
``tools/list`` and ``tools/call`` are forwarded over the pooled upstream session
(:mod:`._upstream`) after the authorizer (:mod:`._authorize`) answered for the caller:

* the caller is the principal authentication put in the ASGI scope; a principal the gateway does
  not admit to the namespace (``admits``, by default :func:`._authorize.belongs_to`) is refused
  with 403 before any MCP message is read, so another tenant cannot even start the server;
* an MCP session belongs to the principal that opened it: a request of another principal naming
  its ``mcp-session-id`` is answered 404 as if there were none (the SDK's own session binding);
* ``tools/list`` shows only the tools the authorizer lets the caller call;
* a denied ``tools/call`` answers a tool result with ``isError`` and the reason, not a JSON-RPC
  error: MCP clients hand a tool result to the model, which can read why and choose another way,
  while a JSON-RPC error ends the step as a protocol failure. Protocol faults stay JSON-RPC
  errors: arguments that are not a JSON object (``-32602``), a server that cannot be reached;
* every ``tools/call`` decision is appended to the audit sink, with the arguments' digest, and
  so is every tool a ``tools/list`` hides (action ``tools/list``, decision deny).

The gateway never reads the store per request: ToolServers come from ``servers`` (an informer's
cache in :func:`mount`). Each stdio process runs under the platform with the SDK's minimal
environment plus the ToolServer's ``env`` and starts in the platform's working folder.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import mcp_types as types
from mcp import MCPError
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from modelplane.api import Principal, ToolServerSpec, principal_of
from modelplane.egress import EgressRules
from modelplane.mcpgateway._authorize import (
    Authorizer,
    belongs_to,
    call_event,
    decide,
    tenancy,
)
from modelplane.mcpgateway._upstream import Upstream, UpstreamUnavailable
from modelplane.policy import AuditSink, Decision

#: where the gateway keeps the caller in the scope it hands the SDK (which owns ``user`` there)
_PRINCIPAL = "modelplane.principal"

#: the operator's ToolServers by name (None: no such ToolServer)
ToolServers = Callable[[str], ToolServerSpec | None]
#: whether a principal may use the MCP servers of a namespace at all
Admits = Callable[[Principal, str], bool]

Context = ServerRequestContext[Any, Any]
_T = TypeVar("_T")


@dataclass
class _Endpoint:
    """One ``/mcp/{namespace}/{server}``: its MCP server, sessions and upstream."""

    namespace: str
    server: str
    upstream: Upstream
    manager: StreamableHTTPSessionManager | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class McpGateway:
    """The ASGI app of ``/mcp/{namespace}/{server}`` (a Starlette route's path parameters)."""

    def __init__(
        self,
        servers: ToolServers,
        *,
        authorizer: Authorizer = tenancy,
        admits: Admits = belongs_to,
        audit: AuditSink | None = None,
        egress: EgressRules | None = None,
    ) -> None:
        self._servers = servers
        self._authorizer = authorizer
        self._admits = admits
        self._audit = audit
        self._egress = egress if egress is not None else EgressRules()
        self._endpoints: dict[tuple[str, str], _Endpoint] = {}
        self._lock = asyncio.Lock()

    def upstream(self, namespace: str, server: str) -> Upstream | None:
        """The pooled upstream of one endpoint, once a request made it (None before)."""
        endpoint = self._endpoints.get((namespace, server))
        return None if endpoint is None else endpoint.upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        namespace = str(scope["path_params"]["namespace"])
        name = str(scope["path_params"]["server"])
        principal = principal_of(scope)
        if not self._admits(principal, namespace):
            message = (
                f"{principal.name} may not use the MCP servers of the namespace {namespace!r};"
                " connect to /mcp/<your namespace>/<server>"
            )
            await _refuse(403, message)(scope, receive, send)
            return
        spec = self._servers(name)
        if spec is None:
            message = (
                f"there is no ToolServer {name!r}; `modelplane get toolservers` lists those"
                " there are (an administrator creates them)"
            )
            await _refuse(404, message)(scope, receive, send)
            return
        endpoint = await self._endpoint(namespace, name, spec)
        assert endpoint.manager is not None
        inner = {**scope, _PRINCIPAL: principal, "user": _session_owner(principal)}
        await endpoint.manager.handle_request(inner, receive, send)

    async def aclose(self) -> None:
        """End every session and stop every upstream process."""
        async with self._lock:
            endpoints, self._endpoints = list(self._endpoints.values()), {}
        for endpoint in endpoints:
            await _close(endpoint)

    async def _endpoint(self, namespace: str, name: str, spec: ToolServerSpec) -> _Endpoint:
        key = (namespace, name)
        endpoint = self._endpoints.get(key)
        if endpoint is not None and endpoint.upstream.spec == spec:
            return endpoint
        async with self._lock:
            endpoint = self._endpoints.get(key)
            if endpoint is not None and endpoint.upstream.spec == spec:
                return endpoint
            if endpoint is not None:  # the ToolServer changed: its sessions end with it
                await _close(endpoint)
            endpoint = _Endpoint(namespace, name, Upstream(name, spec, self._egress))
            endpoint.manager = StreamableHTTPSessionManager(
                self._mcp_server(endpoint), json_response=True
            )
            started = asyncio.Event()
            endpoint.task = asyncio.create_task(_run(endpoint.manager, started, endpoint.stop))
            await started.wait()
            self._endpoints[key] = endpoint
            return endpoint

    def _mcp_server(self, endpoint: _Endpoint) -> Server[Any]:
        async def list_tools(
            ctx: Context, params: types.PaginatedRequestParams | None
        ) -> types.ListToolsResult:
            return await self._list_tools(endpoint, _caller(ctx), params)

        async def call_tool(
            ctx: Context, params: types.CallToolRequestParams
        ) -> types.CallToolResult:
            return await self._call_tool(endpoint, _caller(ctx), params)

        async def arguments_object(ctx: Context, call_next: CallNext) -> HandlerResult:
            # before the SDK validates the params, so the answer can say what is wrong
            params = ctx.params if ctx.method == "tools/call" else None
            arguments = params.get("arguments") if isinstance(params, Mapping) else None
            if arguments is not None and not isinstance(arguments, dict):
                assert isinstance(params, Mapping)
                self._refuse_arguments(endpoint, _caller(ctx), str(params.get("name")), arguments)
            return await call_next(ctx)

        server: Server[Any] = Server(
            f"modelplane/{endpoint.namespace}/{endpoint.server}",
            on_list_tools=list_tools,
            on_call_tool=call_tool,
        )
        server.middleware.append(arguments_object)
        return server

    def _refuse_arguments(
        self, endpoint: _Endpoint, principal: Principal, tool: str, arguments: Any
    ) -> None:
        kind = type(arguments).__name__
        reason = (
            f"tools/call {tool}: `arguments` must be a JSON object of the tool's parameters"
            f' ({{"name": value, ...}}), not a {kind}'
        )
        decision = Decision(False, (), (reason,))
        if self._audit is not None:
            self._audit.append(
                call_event(
                    principal, endpoint.namespace, endpoint.server, tool, arguments, decision
                )
            )
        raise MCPError(types.INVALID_PARAMS, reason)

    async def _list_tools(
        self, endpoint: _Endpoint, principal: Principal, params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        page = await _upstream(endpoint.upstream.list_tools(params.cursor if params else None))
        ns, server = endpoint.namespace, endpoint.server
        allowed = []
        for tool in page.tools:
            decision = decide(self._authorizer, principal, ns, server, tool.name, None)
            if decision.allowed:
                allowed.append(tool)
            elif self._audit is not None:  # a hidden tool is a refusal worth a record
                event = call_event(principal, ns, server, tool.name, None, decision, "tools/list")
                self._audit.append(event)
        return types.ListToolsResult(tools=allowed, next_cursor=page.next_cursor)

    async def _call_tool(
        self, endpoint: _Endpoint, principal: Principal, params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        arguments: Mapping[str, Any] = params.arguments or {}
        ns, server, tool = endpoint.namespace, endpoint.server, params.name
        decision = decide(self._authorizer, principal, ns, server, tool, arguments)
        if self._audit is not None:
            self._audit.append(call_event(principal, ns, server, tool, arguments, decision))
        if not decision.allowed:
            reasons = "; ".join(r for r in decision.reasons if r) or "no reason given"
            policies = ", ".join(decision.policies) or "none named"
            text = f"denied: {server}/{tool} may not be called: {reasons} (policies: {policies})"
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=text)], is_error=True
            )
        return await _upstream(endpoint.upstream.call_tool(tool, dict(arguments)))


async def _upstream(request: Awaitable[_T]) -> _T:
    """Await an upstream request; an unreachable server is a JSON-RPC error naming why."""
    try:
        return await request
    except UpstreamUnavailable as exc:
        raise MCPError(types.INTERNAL_ERROR, str(exc)) from None


async def _run(
    manager: StreamableHTTPSessionManager, started: asyncio.Event, stop: asyncio.Event
) -> None:
    # the session manager's task group lives as long as the endpoint, in a task of its own
    async with manager.run():
        started.set()
        await stop.wait()


async def _close(endpoint: _Endpoint) -> None:
    endpoint.stop.set()
    if endpoint.task is not None:
        with contextlib.suppress(Exception):
            await endpoint.task
    await endpoint.upstream.aclose()


def _caller(ctx: Context) -> Principal:
    request = ctx.request
    principal = request.scope.get(_PRINCIPAL) if request is not None else None
    if not isinstance(principal, Principal):  # not through McpGateway.__call__: nobody
        raise MCPError(types.INVALID_REQUEST, "the request carries no authenticated principal")
    return principal


def _session_owner(principal: Principal) -> AuthenticatedUser:
    """The SDK's user for ``principal``: its sessions answer only requests of the same name."""
    token = AccessToken(token="", client_id=principal.name, scopes=[], subject=principal.name)
    return AuthenticatedUser(token)


def _refuse(status: int, message: str) -> JSONResponse:
    error = {"code": types.INVALID_REQUEST, "message": message}
    return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=status)
