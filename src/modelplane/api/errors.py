"""Errors every layer raises and every surface renders.

An error is a value a person can act on: a machine-readable ``reason`` (the Kubernetes
``StatusReason`` vocabulary), a sentence saying what was wrong and how to fix it, and, for invalid
input, one :class:`Cause` per offending field with its path (``spec.versions[0].digest``) and, where
known, the file and line it came from. Surfaces turn these into a Kubernetes ``Status`` object (REST),
an OpenAI error (``/v1``) or a red line (CLI); a traceback never reaches a user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Cause:
    """One reason an object was refused: which field, what was wrong with it."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"
    #: ``file:line[:column]`` where the field was written, when the object came from a file.
    location: str | None = None

    def to_dict(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message, "field": self.field}
        if self.location:
            out["location"] = self.location
        return out


@dataclass
class ModelplaneError(Exception):
    """Base of every error a user may see. ``code`` is the HTTP status it maps to."""

    message: str
    causes: list[Cause] = field(default_factory=list)
    #: what the error is about: ``{"kind": ..., "name": ..., "group": ...}`` (Status.details)
    details: dict[str, Any] = field(default_factory=dict)
    #: seconds after which retrying may help (Retry-After)
    retry_after: int | None = None

    code: ClassVar[int] = 500
    reason: ClassVar[str] = "InternalError"

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        if not self.causes:
            return self.message
        lines = [self.message]
        for c in self.causes:
            where = f" ({c.location})" if c.location else ""
            lines.append(f"  {c.field}: {c.message}{where}")
        return "\n".join(lines)

    def to_status(self) -> dict[str, Any]:
        """The Kubernetes ``Status`` object for this error."""
        details = dict(self.details)
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": str(self),
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            status["details"] = details
        return status


class BadRequest(ModelplaneError):
    code = 400
    reason = "BadRequest"


class Unauthorized(ModelplaneError):
    code = 401
    reason = "Unauthorized"


class Forbidden(ModelplaneError):
    code = 403
    reason = "Forbidden"


class NotFound(ModelplaneError):
    code = 404
    reason = "NotFound"


class MethodNotAllowed(ModelplaneError):
    code = 405
    reason = "MethodNotAllowed"


class AlreadyExists(ModelplaneError):
    code = 409
    reason = "AlreadyExists"


class Conflict(ModelplaneError):
    """A write based on a stale ``resourceVersion``; re-read the object and try again."""

    code = 409
    reason = "Conflict"


class Expired(ModelplaneError):
    """A watch or continue token older than the kept history: list again, then watch from there."""

    code = 410
    reason = "Expired"


class RequestEntityTooLarge(ModelplaneError):
    code = 413
    reason = "RequestEntityTooLarge"


class NotAcceptable(ModelplaneError):
    """The client accepts none of the representations the server has for this path."""

    code = 406
    reason = "NotAcceptable"


class UnsupportedMediaType(ModelplaneError):
    code = 415
    reason = "UnsupportedMediaType"


class Invalid(ModelplaneError):
    """The object breaks the schema; ``causes`` names every offending field."""

    code = 422
    reason = "Invalid"


class TooManyRequests(ModelplaneError):
    code = 429
    reason = "TooManyRequests"


class Unavailable(ModelplaneError):
    """A backend the request needs (the database, an upstream) cannot be reached or used now."""

    code = 503
    reason = "ServiceUnavailable"


class Timeout(ModelplaneError):
    code = 504
    reason = "Timeout"


_BY_REASON: dict[str, type[ModelplaneError]] = {
    cls.reason: cls
    for cls in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        AlreadyExists,
        Conflict,
        Expired,
        RequestEntityTooLarge,
        NotAcceptable,
        UnsupportedMediaType,
        Invalid,
        TooManyRequests,
        Unavailable,
        Timeout,
    )
}


def from_status(status: dict[str, Any]) -> ModelplaneError:
    """Rebuild an error from a ``Status`` object (the SDK and CLI side of the wire)."""
    cls = _BY_REASON.get(str(status.get("reason", "")), ModelplaneError)
    details = dict(status.get("details") or {})
    causes = [
        Cause(
            field=str(c.get("field", "")),
            message=str(c.get("message", "")),
            reason=str(c.get("reason", "FieldValueInvalid")),
            location=c.get("location"),
        )
        for c in details.pop("causes", []) or []
        if isinstance(c, dict)
    ]
    retry = details.pop("retryAfterSeconds", None)
    message = str(status.get("message", "")) or cls.reason
    if causes:
        # the message already embeds the causes (see __str__); keep only the headline
        message = message.split("\n", 1)[0]
    return cls(message, causes=causes, details=details, retry_after=retry)
