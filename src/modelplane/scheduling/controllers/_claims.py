"""Claims from templates: one ResourceClaim per Endpoint replica, per Job replica, per Agent.

``Endpoint.spec.devices`` and ``Job.spec.claim`` are inline claim templates (a ResourceClaim's
``spec.devices``). :class:`EndpointClaimController` and :class:`JobClaimController` keep one
ResourceClaim per replica (of an Endpoint: ``status.desiredReplicas``, the slots its node agent
wants over every version in traffic, scaled and scaled-to-zero ones included, and
``spec.replicas.min`` until the node agent has said; of a Job: ``spec.replicas``),
named ``<owner>-devices-<i>`` / ``<owner>-claim-<i>``, labelled with the replica index and owned
by the Endpoint or Job (``metadata.ownerReferences``), so that the
:class:`~modelplane.scheduling.ResourceClaimController` allocates them and whoever runs the
replicas (the serving runtime, a job runner) reads their ``status.allocation``.

An ``Agent`` with ``spec.resources`` (``cpu``, ``memory``) gets one claim for its worker slot:
a share of a host's consumable capacity from the CPU driver (DeviceClass
``cpu.modelplane.dev``), so agent workers are placed by the same scheduler as models and jobs.

A changed template replaces the claims (a ResourceClaim's spec is immutable, as in Kubernetes);
fewer replicas delete the claims of the replicas above the count; a deleted owner deletes all.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any, ClassVar

import orjson

from modelplane.api import OWNER_KIND_LABEL, REPLICA_LABEL, TEMPLATE_HASH_ANNOTATION
from modelplane.api.errors import NotFound
from modelplane.control import Controller, Request, Result, Watches, map_owner
from modelplane.store import Store

from ..workloads._queues import PRIORITY_ANNOTATION, QUEUE_ANNOTATION
from ..workloads._workloads import GANG_ANNOTATION, GANG_SIZE_ANNOTATION, endpoint_replica_slots

__all__ = [
    "OWNER_KIND_LABEL",
    "REPLICA_LABEL",
    "TEMPLATE_HASH_ANNOTATION",
    "AgentClaimController",
    "EndpointClaimController",
    "JobClaimController",
]

JSON = dict[str, Any]

#: the DeviceClass of host CPU and memory that agent workers claim a share of
HOST_DEVICE_CLASS = "cpu.modelplane.dev"


def _hash(template: JSON) -> str:
    return hashlib.sha256(orjson.dumps(template, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


class _TemplateClaims(Controller):
    """Keeps one claim per replica of the primary kind's objects."""

    suffix: ClassVar[str]
    #: the field of the owner's ``spec`` that holds the claim template (``spec.devices``)
    template_field: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # the owner's claims: one changed or deleted by hand is put back
        cls.watches = (Watches("ResourceClaim", map_owner(cls.kind)),)

    def __init__(self, store: Store) -> None:
        super().__init__(store, workers=1)

    def template(self, owner: JSON) -> JSON | None:
        found = (owner.get("spec") or {}).get(self.template_field)
        return dict(found) if found else None

    def replicas(self, owner: JSON) -> int:
        raise NotImplementedError

    def reconcile(self, request: Request) -> Result | None:
        try:
            owner: JSON | None = self.store.get(self.kind, request.namespace, request.name)
        except NotFound:
            owner = None
        claims = [
            c
            for c in self.store.list("ResourceClaim", request.namespace).items
            if any(
                r.get("kind") == self.kind and r.get("name") == request.name
                for r in (c.get("metadata") or {}).get("ownerReferences") or ()
            )
        ]
        if owner is None or (owner.get("metadata") or {}).get("deletionTimestamp"):
            for c in claims:
                self._delete(c)
            return None
        meta = owner["metadata"]
        template = self.template(owner)
        count = self.replicas(owner) if template else 0
        digest = _hash(template) if template else ""
        have: set[int] = set()
        for c in claims:
            cmeta = c["metadata"]
            index = _int((cmeta.get("labels") or {}).get(REPLICA_LABEL))
            uids = {r.get("uid") for r in cmeta.get("ownerReferences") or ()}
            stale = (
                index is None
                or index >= count
                or index in have
                or (cmeta.get("annotations") or {}).get(TEMPLATE_HASH_ANNOTATION) != digest
                or meta.get("uid") not in uids
            )
            if stale:
                self._delete(c)
            else:
                have.add(index)  # type: ignore[arg-type]
        for i in range(count):
            if i not in have:
                assert template is not None
                self._create(owner, i, template, digest)
        return None

    def extra_annotations(self, owner: JSON) -> dict[str, str]:
        return {}

    def _create(self, owner: JSON, index: int, template: JSON, digest: str) -> None:
        meta = owner["metadata"]
        claim = {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {
                "name": f"{meta['name']}-{self.suffix}-{index}",
                "namespace": meta.get("namespace") or "default",
                "labels": {REPLICA_LABEL: str(index), OWNER_KIND_LABEL: self.kind},
                "annotations": {
                    TEMPLATE_HASH_ANNOTATION: digest,
                    **self.extra_annotations(owner),
                },
                "ownerReferences": [
                    {
                        "apiVersion": owner.get("apiVersion", ""),
                        "kind": self.kind,
                        "name": meta["name"],
                        "uid": meta.get("uid", ""),
                        "controller": True,
                    }
                ],
            },
            "spec": {"devices": template},
        }
        self.store.create(claim)

    def _delete(self, claim: JSON) -> None:
        meta = claim["metadata"]
        with contextlib.suppress(NotFound):
            self.store.delete("ResourceClaim", str(meta.get("namespace") or ""), str(meta["name"]))


class EndpointClaimController(_TemplateClaims):
    """One claim per replica slot of every Endpoint with ``spec.devices`` (module docstring)."""

    kind = "Endpoint"
    name = "endpoint-claims"
    suffix = "devices"
    template_field = "devices"

    def replicas(self, owner: JSON) -> int:
        return endpoint_replica_slots(owner)


class JobClaimController(_TemplateClaims):
    """One claim per replica (``spec.replicas``) of every Job with ``spec.claim``.

    Claims of a gang Job carry the annotations ``modelplane.dev/gang`` (the Job's name) and
    ``modelplane.dev/gang-size``; the Job's ``spec.queue`` and ``spec.priority`` are copied to
    ``modelplane.dev/queue`` and ``modelplane.dev/priority``.
    """

    kind = "Job"
    name = "job-claims"
    suffix = "claim"
    template_field = "claim"

    def replicas(self, owner: JSON) -> int:
        return int((owner.get("spec") or {}).get("replicas") or 1)

    def extra_annotations(self, owner: JSON) -> dict[str, str]:
        spec = owner.get("spec") or {}
        out: dict[str, str] = {}
        if spec.get("queue"):
            out[QUEUE_ANNOTATION] = str(spec["queue"])
        if spec.get("priority"):
            out[PRIORITY_ANNOTATION] = str(spec["priority"])
        if spec.get("gang", True) and self.replicas(owner) > 1:
            out[GANG_ANNOTATION] = str(owner["metadata"]["name"])
            out[GANG_SIZE_ANNOTATION] = str(self.replicas(owner))
        return out


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class AgentClaimController(_TemplateClaims):
    """One claim (``<agent>-worker-0``) for the worker slot of every Agent with ``spec.resources``.

    The claim asks the host device class for ``capacity.requests`` of the Agent's ``cpu`` and
    ``memory`` (consumable capacity: many agents share one host).
    """

    kind = "Agent"
    name = "agent-claims"
    suffix = "worker"

    def template(self, owner: JSON) -> JSON | None:
        resources = (owner.get("spec") or {}).get("resources") or {}
        wanted = {k: str(resources[k]) for k in ("cpu", "memory") if resources.get(k)}
        if not wanted:
            return None
        request = {
            "name": "worker",
            "exactly": {"deviceClassName": HOST_DEVICE_CLASS, "capacity": {"requests": wanted}},
        }
        return {"requests": [request]}

    def replicas(self, owner: JSON) -> int:
        return 1
