"""``Job``: batch or training work, several replicas that start together (gang) near each other."""

from __future__ import annotations

import re
from typing import ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator

from modelplane.api._agent import BUNDLE_DIGEST
from modelplane.api._dra import DeviceClaim
from modelplane.api._meta import Resource, Schema, Status
from modelplane.api._types import Name, Problems, refuse_unknown_fields

TopologyLevel = Literal["host", "rack", "block"]
RestartPolicy = Literal["Never", "OnFailure"]

#: the variables the job runner sets for each replica (as torchrun does); a template may not
RESERVED_ENV = frozenset(
    {
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "LOCAL_WORLD_SIZE",
        "MASTER_ADDR",
        "MASTER_PORT",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "PYTHONPATH",
        "PATH",
        "HOME",
    }
)
#: the interpreter a command may name; any other program is a file of the bundle
JOB_PYTHON = "python3"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


class JobTemplate(Schema):
    """What every replica runs: a command of an uploaded bundle, in the process sandbox."""

    bundle: str | None = Field(
        default=None,
        description="The bundle holding the code, `sha256:<64 hex>` (`modelplane apply -f` of a"
        " Job whose command names a file beside its manifest packs that folder and sets it).",
    )
    command: list[str] = Field(
        min_length=1,
        description="`python3` or a file of the bundle (a relative path without `..`), then its"
        " arguments; it starts in the bundle's folder.",
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Variables for every replica (not RANK, WORLD_SIZE, MASTER_* and the others"
        " the runner sets).",
    )

    @model_validator(mode="after")
    def _checked(self) -> Self:
        problems = Problems()
        if self.bundle is not None and not BUNDLE_DIGEST.match(self.bundle):
            problems.add(
                ("bundle",),
                f"{self.bundle!r} is not a bundle digest; write `sha256:` and 64 lowercase hex"
                " digits (`modelplane apply -f` of the Job's folder sets it)",
            )
        program = self.command[0]
        if program != JOB_PYTHON and (
            not program or program.startswith("/") or ".." in program.split("/")
        ):
            problems.add(
                ("command", 0),
                f"{program!r}: name `{JOB_PYTHON}` or a file of the bundle by a relative path"
                " without `..` (e.g. train.sh); a program outside the bundle does not run",
            )
        for name in self.env:
            if name in RESERVED_ENV:
                problems.add(
                    ("env", name), f"{name} is set by the job runner for each replica; remove it"
                )
            elif not _ENV_NAME.match(name):
                problems.add(("env", name), f"{name!r} is not a variable name (letters, digits, _)")
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
    template: JobTemplate | None = Field(
        default=None,
        description="What each replica runs; a Job without one only holds its devices.",
    )
    restart_policy: RestartPolicy = Field(
        default="Never",
        description="Never: a replica's failure fails the Job; OnFailure: the whole gang starts"
        " again, after an exponential backoff, up to backoffLimit times.",
    )
    backoff_limit: int = Field(
        default=6, ge=0, description="Restarts of the gang before the Job fails (OnFailure)."
    )

    _strict_claim = field_validator("claim")(refuse_unknown_fields)


class JobStatus(Status):
    """Observed state of the job."""

    active: int | None = Field(default=None, description="Replicas running.")
    succeeded: int | None = Field(default=None, description="Replicas that finished.")
    failed: int | None = Field(default=None, description="Replicas that failed.")
    start_time: str | None = Field(default=None, description="When the gang first started.")
    completion_time: str | None = Field(default=None, description="When the Job completed.")
    restarts: int | None = Field(default=None, description="Times the gang was started again.")


class Job(Resource):
    """Batch or training work: several replicas that must start together."""

    spec: JobSpec = Field(default_factory=JobSpec, description="Replicas, placement, devices.")
    status: JobStatus | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "jobs"
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("REPLICAS", "spec.replicas"),
        ("QUEUE", "spec.queue"),
        ("ADMITTED", "status.conditions[type=Admitted].status"),
        ("COMPLETE", "status.conditions[type=Complete].status"),
        ("RESTARTS", "status.restarts"),
    )
