"""``Policy``: Cedar policies evaluated at admission (writes) or at run time (calls).

The Cedar text is parsed when the object is validated, so a Policy that Cedar cannot parse is
refused at write time (422 naming ``spec.cedar``, the line and column, and Cedar's message)
instead of being stored and failing on every request. :mod:`modelplane.policy` evaluates them.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import cedarpy
from pydantic import Field, field_validator

from modelplane.api._meta import Resource, Schema, Status

#: the namespace whose Policies apply cluster-wide (to every namespace and cluster-scoped objects)
CLUSTER_POLICY_NAMESPACE = "modelplane-system"


def cedar_error(text: str) -> str | None:
    """Why Cedar cannot parse ``text`` (``line L, column C: message``), or None when it can.

    Cedar's parser (through cedarpy) names what is wrong but not where; the place is the
    shortest prefix of the text that already fails with the same message, found by bisection
    (a parse error stays once the text that causes it is there).
    """
    try:
        cedarpy.PolicySet.from_str(text)
        return None
    except ValueError as exc:
        message = str(exc)
    low, high = 0, len(text)
    while low < high:
        middle = (low + high) // 2
        if _parse_message(text[: middle + 1]) == message:
            high = middle
        else:
            low = middle + 1
    at = text[: low + 1].rstrip() or text[:1]
    line = at.count("\n") + 1
    column = len(at) - (at.rfind("\n") + 1)
    return f"line {line}, column {max(column, 1)}: {message}"


def _parse_message(text: str) -> str | None:
    try:
        cedarpy.PolicySet.from_str(text)
        return None
    except ValueError as exc:
        return str(exc)


class EntityUid(Schema):
    """A Cedar entity reference: ``Type::"id"``."""

    type: str = Field(min_length=1, description="Entity type, e.g. `Modelplane::Namespace`.")
    id: str = Field(description="Entity id.")


class Entity(Schema):
    """One Cedar entity: its uid, attributes and parents (Cedar's JSON entity format)."""

    uid: EntityUid = Field(description="The entity.")
    attrs: dict[str, Any] = Field(default_factory=dict, description="Attributes.")
    parents: list[EntityUid] = Field(default_factory=list, description="Groups it belongs to.")
    tags: dict[str, Any] | None = Field(default=None, description="Tags (Cedar 4).")


class PolicySpec(Schema):
    """Where the policy applies and what it says."""

    scope: Literal["admission", "runtime"] = Field(
        description=(
            "admission: checked on every write of an object; runtime: checked when agents act"
            ' (`Action::"tools/call"` on every agent tool call, with its arguments; a forbid'
            ' annotated `@decision("approval")` makes the call wait for a person) and when a'
            ' person decides an approval (`Action::"approval.decide"`)'
        )
    )
    cedar: str = Field(description="Cedar policy text (one or more `permit`/`forbid` statements).")
    entities: list[Entity] = Field(
        default_factory=list, description="Entities and relationships the policies refer to."
    )

    @field_validator("cedar")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                "write at least one Cedar statement, e.g. 'permit(principal, action, resource);'"
            )
        error = cedar_error(value)
        if error is not None:
            raise ValueError(f"Cedar cannot parse the policy text: {error}")
        return value


class Policy(Resource):
    """Cedar policies for admission and for run-time actions (tool calls, model access)."""

    spec: PolicySpec = Field(description="Scope, Cedar text and entities.")
    status: Status | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "policies"
    #: governance is written by operators: a tenant who could write Policies could forbid
    #: writes of others (cluster-wide ones) or lift nothing but add noise to every request
    ADMIN_ONLY: ClassVar[bool] = True
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("pol",)
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (("SCOPE", "spec.scope"),)
