"""``Relationship``: one relationship tuple (subject, relation, object) for permissions (ReBAC).

``subject relation object``, e.g. ``User alice member-of Group ml-team``, ``Group ml-team
owner-of Namespace team-a``, ``Agent team-a/helper delegated-to User alice`` (the agent acts on
behalf of alice), ``Group ml-team can-use Endpoint team-a/chat``. :mod:`modelplane.policy`
resolves them into the parents of Cedar entities (see ``docs/policy.md``, "Relationships").

Relationship is **namespaced**: most tuples are a tenant's own business (who belongs to the
team, who may use its endpoints), so they live beside the objects they name, are listed and
watched per tenant, and a namespace's owner can manage them there. A Relationship in namespace
``N`` takes effect only when its object lies in ``N`` (``Namespace N`` itself, or an object of
``N``); tuples about cluster-wide things (group nesting, ownership of several namespaces) live in
``modelplane-system``, where only administrators write. Writes are administrators' only
(``ADMIN_ONLY``) unless the writer owns the namespace (``modelplane.policy.Relations``).
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from modelplane.api._meta import Resource, Schema, Status
from modelplane.api._types import Problems

SubjectKind = Literal["User", "Group", "ServiceAccount", "Agent"]
RelationName = Literal["owner-of", "member-of", "delegated-to", "can-use"]
ObjectKind = Literal[
    "Namespace", "Group", "User", "Endpoint", "Graph", "Agent", "ToolServer", "Tool", "Model"
]

#: kinds whose objects live in a namespace (``namespace`` is required for them)
NAMESPACED_OBJECTS = frozenset({"Endpoint", "Graph", "Agent", "Tool", "Model"})
#: which object kinds each relation may point at
RELATION_OBJECTS: dict[str, frozenset[str]] = {
    "member-of": frozenset({"Group", "Namespace"}),
    "owner-of": frozenset({"Namespace", "Group", "Endpoint", "Graph", "Agent", "ToolServer"}),
    "delegated-to": frozenset({"User"}),
    "can-use": frozenset({"Endpoint", "Graph", "Agent", "ToolServer", "Tool", "Model"}),
}
#: which subject kinds may act on behalf of someone
DELEGATES = frozenset({"Agent", "ServiceAccount"})


class Subject(Schema):
    """Who the tuple is about."""

    kind: SubjectKind = Field(description="User, Group, ServiceAccount or Agent.")
    name: str = Field(min_length=1, description="The user's, group's, account's or agent's name.")
    namespace: str | None = Field(
        default=None, description="ServiceAccount and Agent: the namespace they belong to."
    )

    @model_validator(mode="after")
    def _placed(self) -> Self:
        problems = Problems()
        if self.kind in ("ServiceAccount", "Agent") and not self.namespace:
            problems.add(("namespace",), f"a {self.kind} subject needs `namespace: NS`")
        if self.kind in ("User", "Group") and self.namespace:
            problems.add(("namespace",), f"a {self.kind} is not namespaced; remove `namespace`")
        problems.raise_any()
        return self


class RelatedObject(Schema):
    """What the subject is related to."""

    kind: ObjectKind = Field(
        description="Namespace, Group, User, Endpoint, Graph, Agent, ToolServer, Tool or Model."
    )
    name: str = Field(
        min_length=1,
        description="Its name; a Tool is `<server>/<tool>`.",
    )
    namespace: str | None = Field(
        default=None,
        description="For namespaced kinds (Endpoint, Graph, Agent, Tool, Model): the namespace;"
        " defaults to the Relationship's own.",
    )

    @model_validator(mode="after")
    def _placed(self) -> Self:
        if self.namespace and self.kind not in NAMESPACED_OBJECTS:
            problems = Problems()
            problems.add(("namespace",), f"a {self.kind} is not namespaced; remove `namespace`")
            problems.raise_any()
        return self


class RelationshipSpec(Schema):
    """The tuple: ``subject relation object``."""

    subject: Subject = Field(description="Who: a User, Group, ServiceAccount or Agent.")
    relation: RelationName = Field(
        description="owner-of, member-of, delegated-to (the subject acts on behalf of the"
        " object, a User) or can-use."
    )
    object: RelatedObject = Field(description="What the subject is related to.")

    @model_validator(mode="after")
    def _fits(self) -> Self:
        problems = Problems()
        allowed = RELATION_OBJECTS[self.relation]
        if self.object.kind not in allowed:
            problems.add(
                ("object", "kind"),
                f"{self.relation} relates to {', '.join(sorted(allowed))}, not {self.object.kind}",
            )
        if self.relation == "delegated-to" and self.subject.kind not in DELEGATES:
            problems.add(
                ("subject", "kind"),
                "only an Agent or a ServiceAccount acts on behalf of a user (delegated-to);"
                " make the user a member-of a Group instead",
            )
        problems.raise_any()
        return self


class Relationship(Resource):
    """A relationship tuple resolved into Cedar entity parents (ReBAC)."""

    spec: RelationshipSpec = Field(description="Subject, relation and object.")
    status: Status | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "relationships"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("rel",)
    #: who belongs to what is governance: a tenant who could relate itself to any Namespace
    #: would join that tenant; the owner of a namespace may still relate within it
    ADMIN_ONLY: ClassVar[bool] = True
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("SUBJECT", "spec.subject.name"),
        ("RELATION", "spec.relation"),
        ("OBJECT", "spec.object.name"),
    )
