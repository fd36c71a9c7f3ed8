"""``Policy``: Cedar policies evaluated at admission (writes) or at run time (calls)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from modelplane.api._meta import Resource, Schema, Status
from modelplane.api._unenforced import POLICY, note


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
            "admission: to be checked on every write of an object; runtime: to be checked on"
            f" model access and tool calls. {note(POLICY)}"
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
        return value


class Policy(Resource):
    """Cedar policies for admission and for run-time actions (tool calls, model access)."""

    spec: PolicySpec = Field(description="Scope, Cedar text and entities.")
    status: Status | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "policies"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("pol",)
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (("SCOPE", "spec.scope"),)
