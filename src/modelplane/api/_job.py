"""``Job``: batch or training work, several replicas that start together (gang) near each other."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from modelplane.api._dra import DeviceClaim
from modelplane.api._meta import Resource, Schema, Status
from modelplane.api._types import Name, Problems, refuse_unknown_fields

TopologyLevel = Literal["host", "rack", "block"]


class Topology(Schema):
    """How close the replicas must (required) or should (preferred) be; set one of the two."""

    required: TopologyLevel | None = Field(
        default=None, description="All replicas in one host, rack or block, or none start."
    )
    preferred: TopologyLevel | None = Field(
        default=None, description="Pack replicas into one host, rack or block when possible."
    )

    @model_validator(mode="after")
    def _one(self) -> Self:
        if self.required is not None and self.preferred is not None:
            problems = Problems()
            problems.add(("preferred",), "set only one of required or preferred")
            problems.raise_any()
        return self


class JobSpec(Schema):
    """How many replicas, how they are placed, what each needs."""

    replicas: int = Field(default=1, ge=1, description="Number of replicas.")
    gang: bool = Field(
        default=True, description="Start all replicas together or none (gang scheduling)."
    )
    topology: Topology | None = Field(default=None, description="Placement of the replicas.")
    claim: DeviceClaim | None = Field(
        default=None,
        description="Devices each replica needs, as a ResourceClaim's `spec.devices`.",
    )
    queue: Name | None = Field(default=None, description="The Queue (same namespace) to wait in.")
    priority: int = Field(default=0, description="Higher runs first and may preempt lower.")

    _strict_claim = field_validator("claim")(refuse_unknown_fields)


class JobStatus(Status):
    """Observed state of the job."""

    active: int | None = Field(default=None, description="Replicas running.")
    succeeded: int | None = Field(default=None, description="Replicas that finished.")
    failed: int | None = Field(default=None, description="Replicas that failed.")


class Job(Resource):
    """Batch or training work: several replicas that must start together."""

    spec: JobSpec = Field(default_factory=JobSpec, description="Replicas, placement, devices.")
    status: JobStatus | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "jobs"
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("REPLICAS", "spec.replicas"),
        ("QUEUE", "spec.queue"),
        ("ADMITTED", "status.conditions[type=Admitted].status"),
    )
