"""Tenancy: namespaces are tenants, and the default rules that say who may reach which.

A principal **belongs to** namespace ``N`` when it has the group ``modelplane:namespace:N``
(from its token file line or its JWT's groups claim) or is a service account of ``N``
(``system:serviceaccount:N:<name>``). In Cedar, its ``User`` entity has ``Namespace::"N"`` as a
parent for each (see :func:`~modelplane.policy.principal_entities`), so ``principal in
Namespace::"team-a"`` holds for the members of ``team-a``.

The rules (:data:`TENANCY_CEDAR`, shipped with the platform so that it works out of the box) are
decided on **the namespace and the kind**, never on one object: the request's resource is
``Namespace::"<ns>"`` (``Cluster::"cluster"`` for cluster-scoped kinds), the action the verb
(``get``, ``list``, ``watch``, ``create``... or ``model.call``, ``agent.message``) and the kind
goes in ``context.kind``. That is what makes a list or watch across namespaces one decision per
namespace instead of one per object: the equivalent of Cedar's partial evaluation with the
object left unknown, since no rule reads it.

Every decision is a plain permit/deny: what no rule permits is denied (unlike the admission
Policies, which are guardrails over an allow-by-default baseline).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, Protocol

import cedarpy

from modelplane.api import Principal
from modelplane.policy._engine import JSON, Decision, _escape, compile_policy, principal_entities

# the rules' policy ids read ``modelplane-system/tenancy#<i> (<@id>)``
_SOURCE_NAMESPACE, _SOURCE_NAME = "modelplane-system", "tenancy"
#: the resource of a decision about cluster-scoped kinds
CLUSTER = "cluster"
#: how many decisions are remembered (a principal, an action, a kind, a namespace each)
_REMEMBERED = 65536
#: the verbs that only read
READS = frozenset({"get", "list", "watch"})

TENANCY_CEDAR = """\
// Administrators (members of system:masters) may do everything, in every namespace.
@id("administrators")
permit (principal in Group::"system:masters", action, resource);

// A namespace is a tenant: its members read and write its objects, call its models
// (Endpoints, Graphs) and its agents.
@id("namespace-members")
@reason("only members of a namespace reach what is in it")
permit (principal, action, resource is Namespace)
when { principal in resource };

// Cluster-scoped objects (Nodes, DeviceClasses, ResourceSlices...) describe the platform, not a
// tenant: every authenticated principal may read them; only administrators write them.
@id("cluster-reads")
permit (
  principal in Group::"system:authenticated",
  action in [Action::"get", Action::"list", Action::"watch"],
  resource is Cluster
);
"""


class Parents(Protocol):
    """Where principals' entities come from beyond their names and groups (the Relationships:
    :class:`~modelplane.policy.Relations`); ``version`` changes with them."""

    version: int

    def principal_entities(self, principal: Principal) -> list[JSON]: ...


class Tenancy:
    """The tenancy rules, compiled once; :meth:`decide` answers one (namespace, kind) question.

    ``relations``: a principal is also a member of the namespaces its Relationships make it one
    of (``member-of`` / ``owner-of`` ``Namespace``); decisions are remembered per version of them.
    """

    def __init__(self, cedar: str = TENANCY_CEDAR, *, relations: Parents | None = None) -> None:
        self._relations = relations
        statements = compile_policy(_SOURCE_NAMESPACE, _SOURCE_NAME, cedar).statements
        document = {"staticPolicies": dict(statements), "templates": {}, "templateLinks": []}
        self._set = cedarpy.PolicySet.from_json_str(json.dumps(document))
        # a decision reads only its four arguments (the rules are fixed), so it is remembered
        self._remembered = functools.lru_cache(maxsize=_REMEMBERED)(self._evaluate)

    def decide(self, principal: Principal, action: str, kind: str, namespace: str) -> Decision:
        """Whether ``principal`` may ``action`` objects of ``kind`` in ``namespace`` (``""``:
        cluster-scoped). An evaluation error denies (fail closed)."""
        version = self._relations.version if self._relations is not None else 0
        return self._remembered(principal, action, kind, namespace, version)

    def clear(self) -> None:
        """Forget remembered decisions (for a source of entity parents beyond the principal's
        name and groups, such as relationships, when it changes)."""
        self._remembered.cache_clear()

    def _evaluate(
        self, principal: Principal, action: str, kind: str, namespace: str, _version: int
    ) -> Decision:
        if namespace:
            resource = {"type": "Namespace", "id": namespace}
        else:
            resource = {"type": "Cluster", "id": CLUSTER}
        entities = list(
            principal_entities(principal)
            if self._relations is None
            else self._relations.principal_entities(principal)
        )
        if not any(e["uid"] == resource for e in entities):
            entities.append({"uid": resource, "attrs": {}, "parents": []})
        request = {
            "principal": _uid(entities[0]["uid"]),
            "action": f'Action::"{_escape(action)}"',
            "resource": _uid(resource),
            "context": {"kind": kind},
        }
        try:
            result = cedarpy.is_authorized(request, self._set, entities)
        except Exception as exc:  # the engine failing is a deny (fail closed)
            return Decision(False, (f"{_SOURCE_NAMESPACE}/{_SOURCE_NAME}",), (f"error: {exc}",))
        errors = result.diagnostics.errors
        if errors:
            return Decision(False, (f"{_SOURCE_NAMESPACE}/{_SOURCE_NAME}",), tuple(errors))
        if result.allowed:
            return Decision(True, tuple(sorted(result.diagnostics.reasons)))
        return Decision(False, (), ())

    def namespace_filter(
        self, principal: Principal, action: str, kind: str
    ) -> Callable[[str], bool] | None:
        """For a list or watch across namespaces: which namespaces' objects ``principal`` sees,
        decided once per namespace met; None when it sees them all (an administrator)."""
        if principal.is_admin:
            return None
        decided: dict[str, bool] = {}

        def admits(namespace: str) -> bool:
            allowed = decided.get(namespace)
            if allowed is None:
                allowed = decided[namespace] = self.decide(
                    principal, action, kind, namespace
                ).allowed
            return allowed

        return admits


def _uid(uid: dict[str, Any]) -> str:
    return f'{uid["type"]}::"{_escape(str(uid["id"]))}"'
