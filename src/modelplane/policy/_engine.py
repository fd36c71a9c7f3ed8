"""Cedar evaluation: requests and entities built from principals and objects, and the compiled
policy set of one namespace.

Entities (Cedar's JSON entity format):

* the principal is ``User::"<name>"`` with one parent ``Group::"<group>"`` per group;
* the action is ``Action::"<verb>"`` (``create``, ``update``, ``patch``, ``delete``, ``get``,
  ``list``, ``watch``); server-side apply is ``patch`` with ``context.operation == "apply"``,
  a ``/status`` write has ``context.subresource == "status"``;
* the resource has the object's kind as its type (``Endpoint::"team-a/chat"``, a cluster-scoped
  one ``Node::"gpu-1"``) and the attributes ``kind``, ``namespace`` (``""`` cluster-scoped),
  ``name``, ``labels`` (a record) and ``spec`` (the object's spec as a record).

Cedar has no floats and no null: a float in a spec becomes its decimal string, a null is left
out, and keys Cedar's JSON format reserves (``__entity``, ``__extn``, ``__expr``) are left out so
that an object cannot smuggle in an entity reference.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import cedarpy

from modelplane.api import Principal

JSON = dict[str, Any]

#: the verbs an action can be (Kubernetes' verbs for objects)
VERBS = ("create", "update", "patch", "delete", "get", "list", "watch")

# a baseline every admission set holds: admission Policies are guardrails (``forbid`` refuses),
# so what no forbid matches stays allowed, as it was before any Policy existed
_BASELINE_ID = "modelplane:baseline"
_BASELINE = {
    "effect": "permit",
    "principal": {"op": "All"},
    "action": {"op": "All"},
    "resource": {"op": "All"},
    "conditions": [],
}
_RESERVED = frozenset({"__entity", "__extn", "__expr"})


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request: allowed or not, the policies that decided, their reasons."""

    allowed: bool
    #: ids of the policies that determined a denial (or errored, which denies: fail closed)
    policies: tuple[str, ...] = ()
    #: the ``@reason`` annotations of those policies, or the evaluation errors
    reasons: tuple[str, ...] = ()
    #: the :attr:`PolicySet.version` the decision was made with (``""``: no set applied)
    version: str = ""


@dataclass(frozen=True)
class CompiledPolicy:
    """One Policy object's statements in Cedar's JSON form, under ids naming the object."""

    source: str  # "<namespace>/<name>"
    statements: Mapping[str, JSON]


def compile_policy(namespace: str, name: str, cedar: str) -> CompiledPolicy:
    """The statements of a Policy object, each named ``<namespace>/<name>`` (with ``#i`` when
    there are several, and the statement's own ``@id`` annotation after it when it has one).

    Raises ValueError when Cedar cannot parse ``cedar`` (validation refuses such objects first).
    """
    parsed = json.loads(cedarpy.policies_to_json_str(cedar))
    statements = list(parsed.get("staticPolicies", {}).values())
    source = f"{namespace}/{name}"
    named: dict[str, JSON] = {}
    for i, statement in enumerate(statements):
        own = (statement.get("annotations") or {}).get("id")
        key = source if len(statements) == 1 else f"{source}#{i}"
        named[f"{key} ({own})" if own else key] = statement
    return CompiledPolicy(source, named)


class PrincipalResolver(Protocol):
    """Where the entities of a request come from when the principal's are not only its groups
    (e.g. :class:`~modelplane.policy.Relations`, which adds relationship parents)."""

    def entities(self, principal: Principal, resource: JSON) -> list[JSON] | cedarpy.Entities:
        """The principal's entities and ``resource``, as Cedar takes them."""
        ...


class PolicySet:
    """The compiled statements that apply to one namespace, parsed once.

    ``baseline``: whether the set holds the permit-everything baseline (guardrails: only a
    ``forbid`` refuses); without it, only an explicit ``permit`` allows. ``version`` names the
    statements: ``sha256:<hex>`` of their canonical JSON, so a decision can say which set made it.
    """

    def __init__(self, policies: Iterable[CompiledPolicy], *, baseline: bool = True) -> None:
        statements: dict[str, JSON] = {_BASELINE_ID: _BASELINE} if baseline else {}
        for policy in policies:
            statements.update(policy.statements)
        self.reasons = {
            pid: str((s.get("annotations") or {}).get("reason") or "")
            for pid, s in statements.items()
        }
        #: each statement's annotations (``@reason``, ``@decision``, ``@id``)
        self.annotations = {pid: dict(s.get("annotations") or {}) for pid, s in statements.items()}
        document = {"staticPolicies": statements, "templates": {}, "templateLinks": []}
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        self.version = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        self._set = cedarpy.PolicySet.from_json_str(text)
        self.size = len(statements) - (1 if baseline else 0)

    def decide(
        self,
        principal: Principal,
        verb: str,
        obj: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
        *,
        relations: PrincipalResolver | None = None,
    ) -> Decision:
        """Whether ``principal`` may ``verb`` ``obj``: a matching ``forbid`` denies (deny wins), a
        policy that cannot be evaluated denies too (fail closed), anything else is allowed.

        ``relations``: the entities come from there (with the principal's relationship parents)."""
        resource, entity = resource_entity(obj)
        request = {
            "principal": f'User::"{_escape(principal.name)}"',
            "action": f'Action::"{verb}"',
            "resource": resource,
            "context": dict(context or {}),
        }
        entities = (
            [*principal_entities(principal), entity]
            if relations is None
            else relations.entities(principal, entity)
        )
        return self.evaluate(request, entities)

    def evaluate(
        self, request: Mapping[str, Any], entities: list[JSON] | cedarpy.Entities
    ) -> Decision:
        """One Cedar request (``principal``, ``action``, ``resource``, ``context``) against this
        set, with ``entities``: deny wins, an evaluation error denies (fail closed)."""
        result = cedarpy.is_authorized(dict(request), self._set, entities)
        diagnostics = result.diagnostics
        if diagnostics.errors:
            errors = tuple(diagnostics.errors)
            return Decision(False, tuple(_erring(errors)), errors, self.version)
        if result.allowed:
            return Decision(True, version=self.version)
        deciding = tuple(sorted(diagnostics.reasons))
        reasons = tuple(self.reasons.get(p, "") for p in deciding)
        return Decision(False, deciding, reasons, self.version)


def _erring(errors: Iterable[str]) -> list[str]:
    # cedarpy's messages start "while evaluating policy `<id>`: ..."
    found = []
    for error in errors:
        head, sep, rest = error.partition("`")
        if sep and "policy" in head:
            found.append(rest.partition("`")[0])
    return found or ["(evaluation)"]


def _escape(text: str) -> str:
    return json.dumps(text)[1:-1]


def principal_entities(principal: Principal) -> list[JSON]:
    """The principal as a ``User`` whose parents are its ``Group`` entities and the
    ``Namespace`` entities of the namespaces it belongs to (the tenancy convention)."""
    groups = sorted(principal.groups)
    namespaces = sorted(principal.namespaces)
    return [
        {
            "uid": {"type": "User", "id": principal.name},
            "attrs": {"name": principal.name},
            "parents": [
                *({"type": "Group", "id": g} for g in groups),
                *({"type": "Namespace", "id": n} for n in namespaces),
            ],
        },
        *({"uid": {"type": "Group", "id": g}, "attrs": {}, "parents": []} for g in groups),
        *({"uid": {"type": "Namespace", "id": n}, "attrs": {}, "parents": []} for n in namespaces),
    ]


def resource_entity(obj: Mapping[str, Any]) -> tuple[str, JSON]:
    """The object as a Cedar resource: its uid string and its entity."""
    kind = str(obj.get("kind") or "Object")
    metadata = obj.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "")
    name = str(metadata.get("name") or "")
    uid = f"{namespace}/{name}" if namespace else name
    labels = metadata.get("labels") or {}
    attrs = {
        "kind": kind,
        "namespace": namespace,
        "name": name,
        "labels": {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        "spec": cedar_value(obj.get("spec") or {}),
    }
    if kind == "Model":
        # Cedar cannot ask "has every version a signature?" of a list of records: say it here
        attrs["unsignedVersions"] = unsigned_versions(obj.get("spec"))
    entity = {"uid": {"type": kind, "id": uid}, "attrs": attrs, "parents": []}
    return f'{kind}::"{_escape(uid)}"', entity


def unsigned_versions(spec: Any) -> list[str]:
    """The names of a Model's artifact versions (not ``upstream``) that name no ``signature``."""
    versions = spec.get("versions") if isinstance(spec, dict) else None
    return [
        str(v.get("name") or f"#{i}")
        for i, v in enumerate(versions if isinstance(versions, list) else [])
        if isinstance(v, dict) and v.get("format") != "upstream" and not v.get("signature")
    ]


def cedar_value(value: Any) -> Any:
    """A JSON value as Cedar can hold it (see the module docstring)."""
    if isinstance(value, dict):
        return {
            str(k): cedar_value(v) for k, v in value.items() if v is not None and k not in _RESERVED
        }
    if isinstance(value, list):
        return [cedar_value(v) for v in value if v is not None]
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return str(value)


@dataclass
class Counts:
    """Decisions by result, when no Prometheus registry is given (the seam :class:`Admission`
    counts through)."""

    by_result: dict[tuple[str, str], int] = field(default_factory=dict)

    def inc(self, result: str, scope: str) -> None:
        self.by_result[(result, scope)] = self.by_result.get((result, scope), 0) + 1
