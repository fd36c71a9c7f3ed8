"""Who am I and may I: Kubernetes' ``SelfSubjectReview`` and ``SelfSubjectAccessReview``.

* ``POST /apis/authentication.k8s.io/v1/selfsubjectreviews`` answers the caller's identity in
  ``status.userInfo`` (``username``, ``groups``), as ``kubectl auth whoami`` expects;
* ``POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`` takes
  ``spec.resourceAttributes`` (``verb``, ``group``, ``resource``, ``namespace``, ``name``,
  ``subresource``) and answers ``status.allowed`` / ``status.denied`` / ``status.reason`` by the
  rules a write passes: the built-in ones (:mod:`modelplane.server._authz`) and the admission
  Policies (:mod:`modelplane.policy`), judged on an object with only its kind, namespace and name.
  A policy that needs more of the object to decide (it errs reading a field the question does not
  give) makes the answer "allowed" with a reason naming it: the write itself is judged in full.

Reads (``get``, ``list``, ``watch``) are answered by the tenancy rules (a principal reads the
namespaces it belongs to; Secret values are redacted for non-administrators).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelplane.api import KindInfo, Principal, principal_of
from modelplane.api.errors import BadRequest, NotFound
from modelplane.policy import VERBS
from modelplane.server._authz import tenancy_refusal, write_refusal
from modelplane.server._bodies import OBJECT_TYPES, read_object
from modelplane.server._context import ServerContext, context
from modelplane.server._responses import JSONResponse

AUTHENTICATION = "authentication.k8s.io/v1"
AUTHORIZATION = "authorization.k8s.io/v1"
WHOAMI_PATH = f"/apis/{AUTHENTICATION}/selfsubjectreviews"
CAN_I_PATH = f"/apis/{AUTHORIZATION}/selfsubjectaccessreviews"
_READS = frozenset({"get", "list", "watch"})


async def self_subject_review(request: Request) -> Response:
    principal = principal_of(request.scope)
    await read_object(request, OBJECT_TYPES)  # a body is sent, as by kubectl; its content is moot
    return JSONResponse(
        {
            "apiVersion": AUTHENTICATION,
            "kind": "SelfSubjectReview",
            "metadata": {},
            "status": {
                "userInfo": {"username": principal.name, "groups": sorted(principal.groups)}
            },
        },
        status_code=201,
    )


async def self_subject_access_review(request: Request) -> Response:
    body = await read_object(request, OBJECT_TYPES)
    spec = body.get("spec")
    attributes = spec.get("resourceAttributes") if isinstance(spec, dict) else None
    if not isinstance(attributes, dict):
        raise BadRequest(
            "spec.resourceAttributes is required: {verb, resource, group?, namespace?, name?}"
        )
    ctx = context(request)
    principal = principal_of(request.scope)
    allowed, reason = await run_in_threadpool(_review, ctx, principal, attributes)
    return JSONResponse(
        {
            "apiVersion": AUTHORIZATION,
            "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {"resourceAttributes": attributes},
            "status": {"allowed": allowed, "denied": not allowed, "reason": reason},
        },
        status_code=201,
    )


def _text(attributes: dict[str, Any], key: str) -> str:
    value = attributes.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"spec.resourceAttributes.{key} must be a string")
    return value


def _review(
    ctx: ServerContext, principal: Principal, attributes: dict[str, Any]
) -> tuple[bool, str]:
    verb = _text(attributes, "verb")
    if verb not in VERBS:
        raise BadRequest(f"spec.resourceAttributes.verb {verb!r} is not one of {', '.join(VERBS)}")
    info = _kind(ctx, _text(attributes, "resource"), _text(attributes, "group"))
    namespace = _text(attributes, "namespace") if info.namespaced else ""
    name = _text(attributes, "name") or None
    if verb in _READS:
        if info.namespaced and not namespace:
            return True, "a list or watch across namespaces shows the namespaces you may read"
        read = tenancy_refusal(ctx.tenancy, principal, info, verb, namespace, name)
        return (True, "") if read is None else (False, read.message)
    status = _text(attributes, "subresource") == "status"
    refusal = write_refusal(
        principal, info, verb, name, status=status, namespace=namespace, tenancy=ctx.tenancy
    )
    if refusal is not None:
        return False, refusal.message
    if ctx.admission is None:
        return True, ""
    obj = {
        "apiVersion": info.api_version,
        "kind": info.kind,
        "metadata": {"name": name or "", **({"namespace": namespace} if namespace else {})},
        "spec": {},
    }
    facts = {"operation": verb, "subresource": "status" if status else ""}
    decision = ctx.admission.decide(principal, verb, obj, facts)
    if decision.allowed:
        return True, ""
    if any(r.startswith("error") for r in decision.reasons):
        return True, (
            f"allowed unless the object's fields say otherwise: {', '.join(decision.policies)}"
            " judge fields the question does not give"
        )
    why = "; ".join(
        f"{p}: {r}" if r else p for p, r in zip(decision.policies, decision.reasons, strict=False)
    )
    return False, f"denied by the admission policy {why}"


def _kind(ctx: ServerContext, resource: str, group: str) -> KindInfo:
    """The kind a review names: by plural, singular, short name or kind (any case)."""
    wanted = resource.lower()
    for info in ctx.catalog.kinds:
        if group and info.group != group:
            continue
        names = {info.plural, info.singular, info.kind.lower(), *info.short_names}
        if wanted in names:
            return info
    raise NotFound(
        f"the server has no resource {resource!r}; `modelplane api-resources` lists them",
        details={"kind": resource},
    )


def routes() -> list[Route]:
    return [
        Route(WHOAMI_PATH, self_subject_review, methods=["POST"]),
        Route(CAN_I_PATH, self_subject_access_review, methods=["POST"]),
    ]


def _review_schemas() -> dict[str, Any]:
    """The JSON Schemas of the two reviews."""
    text = {"type": "string"}
    attributes = {
        "type": "object",
        "required": ["verb", "resource"],
        "properties": {
            "verb": {"type": "string", "enum": list(VERBS)},
            "resource": text,
            "group": text,
            "namespace": text,
            "name": text,
            "subresource": text,
        },
    }
    review: dict[str, Any] = {
        "type": "object",
        "properties": {"apiVersion": text, "kind": text, "metadata": {"type": "object"}},
    }
    access_review = {
        **review,
        "required": ["spec"],
        "properties": {
            **review["properties"],
            "spec": {
                "type": "object",
                "required": ["resourceAttributes"],
                "properties": {"resourceAttributes": attributes},
            },
            "status": {
                "type": "object",
                "properties": {
                    "allowed": {"type": "boolean"},
                    "denied": {"type": "boolean"},
                    "reason": text,
                },
            },
        },
    }
    who = {
        **review,
        "properties": {
            **review["properties"],
            "status": {
                "type": "object",
                "properties": {
                    "userInfo": {
                        "type": "object",
                        "properties": {
                            "username": text,
                            "groups": {"type": "array", "items": text},
                        },
                    }
                },
            },
        },
    }
    return {"v1.SelfSubjectReview": who, "v1.SelfSubjectAccessReview": access_review}


def _operation(op_id: str, summary: str, schema: str) -> dict[str, Any]:
    failed = {
        "description": "the request failed: a Kubernetes Status",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/v1.Status"}}},
    }
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {
        "post": {
            "operationId": op_id,
            "summary": summary,
            "tags": ["auth"],
            "requestBody": {"required": True, "content": {"application/json": {"schema": ref}}},
            "responses": {
                "201": {
                    "description": "the review, answered",
                    "content": {"application/json": {"schema": ref}},
                },
                "400": failed,
                "401": failed,
                "404": failed,
                "415": failed,
            },
        }
    }


def openapi_part() -> dict[str, Any]:
    """How the review routes appear in ``/openapi.json``."""
    return {
        "paths": {
            WHOAMI_PATH: _operation(
                "createSelfSubjectReview",
                "Who the caller is (kubectl auth whoami)",
                "v1.SelfSubjectReview",
            ),
            CAN_I_PATH: _operation(
                "createSelfSubjectAccessReview",
                "Whether the caller may do a verb on a resource (kubectl auth can-i)",
                "v1.SelfSubjectAccessReview",
            ),
        },
        "schemas": _review_schemas(),
    }
