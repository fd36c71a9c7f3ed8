"""``/approvals[/{id}[/approve|/deny]]``: the REST surface of approvals (``modelplane approvals``).

Who may see and decide an approval is the :class:`~modelplane.agents.authz.ApprovalGate`'s
answer (administrators; with the runtime Policies, also principals a Policy permits
``Action::"approval.decide"``): a list shows only the approvals the caller may decide, and a
decision by anyone else is a 403 that changes nothing.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelplane.agents._approvals import STATES
from modelplane.agents._journal import Database
from modelplane.agents._routes import (
    _SUBDOMAIN,
    _body,
    _json,
    _ok,
    _op,
    _request_body,
    _segment,
    agents_url,
)
from modelplane.agents.authz import AdminsDecide, ApprovalGate
from modelplane.agents.runtime import Instances
from modelplane.api import Principal, check_dns_label, check_dns_subdomain, principal_of, shown
from modelplane.api.errors import BadRequest, Forbidden
from modelplane.store import Store


def _approval_id(request: Request) -> str:
    value = str(request.path_params["id"])
    try:
        return check_dns_subdomain(value, "approval id")
    except ValueError as exc:
        raise BadRequest(f"the URL's id segment is not valid: {exc}") from None


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason", "")
    if reason is None:
        return ""
    if not isinstance(reason, str) or len(reason) > 1024:
        raise BadRequest("reason in the request body must be a string of at most 1024 characters")
    return reason


def routes(store: Store, gate: ApprovalGate | None = None) -> list[BaseRoute]:
    """The approval routes for the agents of ``store``; ``gate``: who may decide (default:
    administrators only)."""
    decides = gate or AdminsDecide()
    state: dict[str, Instances] = {}

    def instances() -> Instances:
        if "i" not in state:
            state["i"] = Instances(Database(agents_url(store.url)))
        return state["i"]

    def visible(principal: Principal, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [a for a in items if decides.may_decide(principal, a, record=False).allow]

    async def collection(request: Request) -> Response:
        q = request.query_params
        which = q.get("state") or "open"
        if which not in STATES:
            raise BadRequest(f"query parameter state={shown(which)} must be one of {STATES}")
        namespace = q.get("namespace") or None
        if namespace is not None:
            try:
                check_dns_label(namespace, "query parameter namespace")
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        items = await run_in_threadpool(
            instances().approvals.list, state=which, namespace=namespace
        )
        seen = await run_in_threadpool(visible, principal_of(request.scope), items)
        return _json({"items": seen})

    async def one(request: Request) -> Response:
        approval = _approval_id(request)
        info = await run_in_threadpool(instances().approvals.get, approval)
        if not await run_in_threadpool(visible, principal_of(request.scope), [info]):
            raise Forbidden(f"you may not see approval {approval!r}; ask an administrator")
        return _json(info)

    async def decide(request: Request) -> Response:
        approval = _approval_id(request)
        verb = request.path_params["verb"]
        if verb not in ("approve", "deny"):
            raise BadRequest(f"POST .../{shown(verb)}: use approve or deny")
        reason = _reason(await _body(request))
        principal = principal_of(request.scope)
        approvals = instances().approvals
        info = await run_in_threadpool(approvals.get, approval)
        may = await run_in_threadpool(decides.may_decide, principal, info)
        if not may.allow:
            raise Forbidden(
                f"user {principal.name!r} may not decide approval {approval!r}: {may.reason};"
                " ask an administrator, or for a runtime Policy permitting"
                ' Action::"approval.decide"'
            )
        allow = verb == "approve"
        decided = await run_in_threadpool(
            approvals.decide, approval, allow, reason, actor=principal.name
        )
        await run_in_threadpool(decides.decided, principal, decided, allow, reason)
        return _json(decided)

    return [
        Route("/approvals", collection, methods=["GET"]),
        Route("/approvals/{id}", one, methods=["GET"]),
        Route("/approvals/{id}/{verb}", decide, methods=["POST"]),
    ]


def openapi_paths() -> dict[str, Any]:
    """``{"paths": ..., "schemas": ...}`` describing the approval routes."""
    approval = {"$ref": f"#/components/schemas/{_APPROVAL}"}
    listed = {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": approval}},
    }
    one = [_segment("id", "The approval's id.", _SUBDOMAIN)]
    verb = _segment("verb", "approve or deny.", "^(approve|deny)$")
    state = {"type": "string", "enum": list(STATES)}
    paths = {
        "/approvals": {
            "get": _op(
                "listApprovals",
                "Tool calls waiting for a person's decision (those the caller may decide)",
                _ok("200", listed, "approvals"),
                parameters=[
                    {
                        "name": "state",
                        "in": "query",
                        "schema": state,
                        "description": "open (default), decided or all.",
                    },
                    {
                        "name": "namespace",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "Only this namespace.",
                    },
                ],
            )
        },
        "/approvals/{id}": {
            "parameters": one,
            "get": _op("readApproval", "One approval", _ok("200", approval, "the approval")),
        },
        "/approvals/{id}/{verb}": {
            "parameters": [*one, verb],
            "post": _op(
                "decideApproval",
                "Approve or deny a waiting tool call",
                _ok("200", approval, "the decided approval"),
                requestBody=_request_body({"reason": {"type": "string", "maxLength": 1024}}),
            ),
        },
    }
    schema = {
        "type": "object",
        "required": ["id", "namespace", "agent", "instance", "tool", "decision"],
        "properties": {
            k: {"type": "string"}
            for k in (
                "id",
                "namespace",
                "agent",
                "instance",
                "server",
                "tool",
                "reason",
                "decision",
            )
        },
    }
    return {"paths": paths, "schemas": {_APPROVAL: schema}}


_APPROVAL = "agents.Approval"
