"""``Queue``: quota and fair sharing per tenant, in the manner of Kueue's ClusterQueue."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from modelplane.api._meta import Resource, Schema, Status
from modelplane.api._quantity import Quantity, parse_quantity
from modelplane.api._types import Problems, duplicates


class Quota(Schema):
    """How much of a device class (counted in devices) or a resource (cpu, memory) the queue has."""

    device_class: str | None = Field(default=None, description="A DeviceClass; counted in devices.")
    resource: str | None = Field(default=None, description="A node resource such as cpu or memory.")
    nominal: Quantity = Field(description="Guaranteed amount.")
    borrowing_limit: Quantity | None = Field(
        default=None,
        description="Most it may borrow from its cohort beyond nominal; unlimited if unset.",
    )
    lending_limit: Quantity | None = Field(
        default=None, description="Most of its unused nominal it lends to its cohort; all if unset."
    )

    @model_validator(mode="after")
    def _one_subject(self) -> Self:
        problems = Problems()
        if (self.device_class is None) == (self.resource is None):
            problems.add((), "set exactly one of deviceClass or resource")
        for alias, value in (
            ("nominal", self.nominal),
            ("borrowingLimit", self.borrowing_limit),
            ("lendingLimit", self.lending_limit),
        ):
            if value is not None and parse_quantity(value) < 0:
                problems.add((alias,), f"{value!r} must not be negative")
        problems.raise_any()
        return self


class Preemption(Schema):
    """When admitting a job may evict others."""

    within_queue: Literal["Never", "LowerPriority", "LowerOrNewerEqualPriority"] = Field(
        default="Never",
        description="Evict this queue's own lower-priority (or newer equal-priority) jobs.",
    )
    reclaim_within_cohort: Literal["Never", "LowerPriority", "Any"] = Field(
        default="Never",
        description="Evict other queues' jobs that borrow this queue's nominal quota.",
    )


class QueueSpec(Schema):
    """Quotas, the cohort they are shared in, and preemption."""

    quotas: list[Quota] = Field(
        default_factory=list, description="Quota per device class or resource."
    )
    cohort: str | None = Field(default=None, description="Queues in one cohort lend unused quota.")
    weight: int = Field(default=1, ge=0, description="Share of borrowed capacity in fair sharing.")
    preemption: Preemption = Field(default_factory=Preemption, description="Preemption rules.")

    @model_validator(mode="after")
    def _unique(self) -> Self:
        problems = Problems()
        keys = [q.device_class or f"resource:{q.resource}" for q in self.quotas]
        for i, key, first in duplicates(keys):
            problems.add(
                ("quotas", i), f"{key!r} has a quota already (quotas[{first}]); merge them"
            )
        problems.raise_any()
        return self


class Queue(Resource):
    """Quota and fair sharing for one tenant (namespaced)."""

    spec: QueueSpec = Field(default_factory=QueueSpec, description="Quotas and sharing.")
    status: Status | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "queues"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("q",)
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (("COHORT", "spec.cohort"),)
