"""The validating admission webhook: our schema's verdict on a custom resource before it is stored.

kube-apiserver sends an ``admission.k8s.io/v1`` ``AdmissionReview`` for every create or update of
our kinds (the ``ValidatingWebhookConfiguration`` points at the operator's ``/validate``); the
answer allows the object or refuses it with the same message and field paths ``modelplane apply``
prints (``spec.traffic[0].weight: ...``). The CRDs' OpenAPI schemas catch the structural
mistakes; this catches the rest our API checks (cross-field rules, names, durations, CEL).
"""

from __future__ import annotations

from typing import Any

from modelplane.api import errors, validate

API_VERSION = "admission.k8s.io/v1"


def review(body: dict[str, Any]) -> dict[str, Any]:
    """The ``AdmissionReview`` answering the one in ``body``."""
    request = body.get("request") if isinstance(body, dict) else None
    if not isinstance(request, dict) or "uid" not in request:
        return _answer("", False, 400, "the body is not an admission.k8s.io/v1 AdmissionReview")
    obj = request.get("object")
    if request.get("operation") == "DELETE" or not isinstance(obj, dict):
        return _answer(request["uid"], True)
    manifest = {k: v for k, v in obj.items() if k != "status"}
    manifest["metadata"] = {
        k: v
        for k, v in (obj.get("metadata") or {}).items()
        if k in ("name", "namespace", "labels", "annotations")
    }
    try:
        validate(manifest, default_namespace=str(request.get("namespace") or "default"))
    except errors.ModelplaneError as exc:
        return _answer(request["uid"], False, 422, str(exc), exc.causes)
    return _answer(request["uid"], True)


def _answer(
    uid: str,
    allowed: bool,
    code: int = 200,
    message: str = "",
    causes: list[errors.Cause] | None = None,
) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        status: dict[str, Any] = {"code": code, "message": message, "reason": "Invalid"}
        if causes:
            status["details"] = {"causes": [c.to_dict() for c in causes]}
        response["status"] = status
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}
