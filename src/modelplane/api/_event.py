"""``Event``: something that happened to an object, shown by ``describe`` (Kubernetes' core Event)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from modelplane.api._meta import Resource, Schema


class ObjectReference(Schema):
    """The object an event is about."""

    api_version: str | None = Field(default=None, description="Its apiVersion.")
    kind: str = Field(description="Its kind.")
    namespace: str | None = Field(default=None, description="Its namespace (namespaced kinds).")
    name: str = Field(description="Its name.")
    uid: str | None = Field(default=None, description="Its uid.")


class EventSource(Schema):
    """Who reported the event."""

    component: str = Field(default="", description="The controller or process, e.g. `scheduler`.")
    host: str | None = Field(default=None, description="The node it ran on.")


class Event(Resource):
    """Something that happened to an object: a reason, a message, how often and when."""

    involved_object: ObjectReference = Field(description="The object the event is about.")
    reason: str = Field(
        default="", description="CamelCase machine-readable cause, e.g. `Unschedulable`."
    )
    message: str = Field(default="", description="What happened, for a person.")
    type: Literal["Normal", "Warning"] = Field(default="Normal", description="Normal or Warning.")
    count: int = Field(default=1, ge=1, description="How many times it happened.")
    first_timestamp: str | None = Field(default=None, description="When it first happened.")
    last_timestamp: str | None = Field(default=None, description="When it last happened.")
    source: EventSource = Field(default_factory=EventSource, description="Who reported it.")

    PLURAL: ClassVar[str] = "events"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("ev",)
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("TYPE", "type"),
        ("REASON", "reason"),
        ("OBJECT", "involvedObject.name"),
        ("MESSAGE", "message"),
    )
