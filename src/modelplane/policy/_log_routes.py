"""``/audit/records`` and ``/audit/verify``: the REST surface of the audit log (administrators only).

``GET /audit/records`` lists records oldest first, filtered by the query parameters
``principal``, ``namespace``, ``category``, ``decision`` (exact matches), ``since`` and ``until``
(an RFC 3339 time, or a duration before now such as ``2h`` or ``7d``), at most ``limit`` (1 to
1000, default 100) per page; the answer ``{"items": [...], "continue": "<token>"}`` has a
``continue`` token while more records match, which the next request passes as ``continue``.
Appends are asynchronous, so the route first waits (up to 5 s) for what this process queued before
the request to be committed: a decision is in the next ``modelplane audit log`` of the same process.
``GET /audit/verify`` walks the chain: ``{"verified": true, "records": N}``, or ``verified: false``
with ``firstBad: {sequence, problem}``. Both answer 403 to anyone not in ``system:masters``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelplane.api import principal_of
from modelplane.api.errors import BadRequest, Forbidden
from modelplane.policy._log import AuditLog, AuditQuery, time_bound

RECORDS_PATH = "/audit/records"
VERIFY_PATH = "/audit/verify"
#: the most records one page holds
MAX_LIMIT = 1000
_PARAMS = frozenset(
    {"principal", "namespace", "category", "decision", "since", "until", "limit", "continue"}
)


def _admin(request: Request) -> None:
    principal = principal_of(request.scope)
    if not principal.is_admin:
        raise Forbidden(
            f"user {principal.name!r} cannot read the audit log: it is for administrators"
            " (members of system:masters)"
        )


def _json(value: Any) -> Response:
    return Response(orjson.dumps(value), media_type="application/json")


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise BadRequest(f"{name}={text!r} must be a whole number from {low} to {high}")
    return value


def query_of(params: Mapping[str, str]) -> AuditQuery:
    """The query a request's parameters describe; BadRequest naming a parameter that is wrong."""
    unknown = sorted(set(params) - _PARAMS)
    if unknown:
        raise BadRequest(
            f"unknown query parameter {unknown[0]!r}: the audit log takes"
            f" {', '.join(sorted(_PARAMS))}"
        )
    bounds = {k: time_bound(params[k], k) for k in ("since", "until") if params.get(k)}
    return AuditQuery(
        principal=params.get("principal") or None,
        namespace=params.get("namespace"),
        category=params.get("category") or None,
        decision=params.get("decision") or None,
        since=bounds.get("since"),
        until=bounds.get("until"),
        after=_int(params, "continue", 0, 0, 2**62),
        limit=_int(params, "limit", 100, 1, MAX_LIMIT),
    )


def audit_routes(log: AuditLog) -> list[BaseRoute]:
    """The audit log's routes, reading ``log``."""

    async def records(request: Request) -> Response:
        _admin(request)
        query = query_of(request.query_params)
        # read your writes: what this process decided before the request is committed first
        # (appends are asynchronous); a wait cut short still answers with what is committed
        await run_in_threadpool(log.flush, 5.0)
        # one more than asked: whether a next page exists, without a count
        page = await run_in_threadpool(
            log.records, AuditQuery(**{**_fields(query), "limit": query.limit + 1})
        )
        items = [r.to_json() for r in page[: query.limit]]
        body: dict[str, Any] = {"items": items}
        if len(page) > query.limit:
            body["continue"] = str(page[query.limit - 1].sequence)
        return _json(body)

    async def verify(request: Request) -> Response:
        _admin(request)
        return _json((await run_in_threadpool(log.verify)).to_json())

    return [
        Route(RECORDS_PATH, records, methods=["GET"]),
        Route(VERIFY_PATH, verify, methods=["GET"]),
    ]


def _fields(query: AuditQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in AuditQuery.__slots__}  # type: ignore[attr-defined]


def audit_openapi_paths() -> dict[str, Any]:
    """``{"paths": ..., "schemas": ...}`` describing the audit log's routes."""
    params = [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in sorted(_PARAMS)
    ]

    def op(op_id: str, summary: str, description: str, **extra: Any) -> dict[str, Any]:
        schema = {"type": "object"}
        return {
            "operationId": op_id,
            "summary": summary,
            "tags": ["audit"],
            **extra,
            "responses": {
                "200": {
                    "description": description,
                    "content": {"application/json": {"schema": schema}},
                },
                "default": {
                    "description": "the request failed: a Kubernetes Status",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/v1.Status"}}
                    },
                },
            },
        }

    return {
        "paths": {
            RECORDS_PATH: {
                "get": op(
                    "listAuditRecords",
                    "Read the audit log, oldest first (administrators only)",
                    "a page of records: items, and continue while more match",
                    parameters=params,
                )
            },
            VERIFY_PATH: {
                "get": op(
                    "verifyAuditLog",
                    "Verify the audit log's hash chain (administrators only)",
                    "verified and records, or firstBad naming the first record that does not hold",
                )
            },
        },
        "schemas": {},
    }
