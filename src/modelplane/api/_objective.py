"""``InferenceObjective``: the Gateway API Inference Extension's request priority for a pool.

Accepted exactly as the Inference Extension serves it (``inference.networking.x-k8s.io/v1alpha2``),
so a manifest written for a Kubernetes inference gateway applies unchanged. Here ``spec.poolRef``
names an Endpoint of the same namespace (or an InferencePool of that name, which stands for the
Endpoint), and the objective is a request class of that Endpoint: a request that names it (the
``x-modelplane-priority`` header, or the Inference Extension's ``x-gateway-inference-objective``)
gets ``spec.priority`` (unset: 0), higher first, negative as background.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict, Field

from modelplane.api._meta import OpenSchema, Resource, Status

_GROUP = "inference.networking.x-k8s.io"


class PoolReference(OpenSchema):
    """The pool the objective applies to: here an Endpoint (or an InferencePool of its name)."""

    group: str | None = Field(
        default=None, description="The referent's group (the Inference Extension's default)."
    )
    kind: str | None = Field(default=None, description="InferencePool (the default) or Endpoint.")
    name: str = Field(
        min_length=1,
        max_length=253,
        description="The Endpoint (or InferencePool) in this namespace.",
    )


class InferenceObjectiveSpec(OpenSchema):
    """The priority of the requests that name this objective."""

    priority: int | None = Field(
        default=None,
        description="Higher is served first; unset is 0; negative is background (shed first).",
    )
    pool_ref: PoolReference = Field(description="The Endpoint (pool) whose requests it classes.")


class InferenceObjective(Resource):
    """A request class of an Endpoint, as the Gateway API Inference Extension writes it."""

    model_config = ConfigDict(extra="allow")

    spec: InferenceObjectiveSpec = Field(description="Priority and the pool it applies to.")
    status: Status | None = Field(
        default=None, description="Conditions (Accepted), as the Inference Extension reports them."
    )

    GROUP: ClassVar[str] = _GROUP
    VERSION: ClassVar[str] = "v1alpha2"
    PLURAL: ClassVar[str] = "inferenceobjectives"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("iobj",)
    NAMESPACED: ClassVar[bool] = True
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("POOL", "spec.poolRef.name"),
        ("PRIORITY", "spec.priority"),
    )
