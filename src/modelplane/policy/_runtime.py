"""Run-time decisions: the ``Policy`` objects with ``scope: runtime`` (compiled once per change
per namespace by :class:`~modelplane.policy._cache.PolicyCache`, as admission's are) asked about
agent tool calls, model calls, agent messages and approvals.

A decision has three outcomes: ``allow``; ``deny`` (a matching ``forbid``); ``approval`` (every
matching ``forbid`` carries ``@decision("approval")``: the action waits for a person's
decision). Like admission Policies, runtime Policies are guardrails: what no ``forbid`` matches
is allowed, and a namespace no runtime Policy covers is not evaluated at all.

Fail closed: a policy that cannot be evaluated, an engine that raises, a decision slower than
the time limit and Policies that are not loaded are each a ``deny``, with the reason, and
audited as such. Every decision is appended to the :class:`~modelplane.policy.AuditSink` given
(category ``tool``, ``model``, ``message`` or ``approval``), naming the version of the policy set
it used and, for actions with arguments, the ``sha256`` of their canonical JSON.

Entities of a request: the principal is ``User::"<name>"`` with its ``Group`` parents and a
``Namespace::"<ns>"`` parent for each namespace it belongs to (a group
``modelplane:namespace:<ns>``, or being a service account ``system:serviceaccount:<ns>:<name>``);
a ``Namespace`` entity has the attribute ``labels``, from the ``Namespace`` entities the runtime
Policies declare in ``spec.entities`` (namespaces are not API objects yet).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelplane.api import Principal
from modelplane.api.errors import ModelplaneError
from modelplane.policy._audit import AuditEvent, AuditSink
from modelplane.policy._cache import PolicyCache
from modelplane.policy._engine import PolicySet, cedar_value, principal_entities
from modelplane.policy._metrics import DECISIONS

if TYPE_CHECKING:
    from modelplane.store import Store

JSON = dict[str, Any]

#: a decision slower than this (seconds) is a deny: an engine that hangs must not hold a call
TIMEOUT_SECONDS = 0.5
#: which audit category each run-time action's decisions go to
CATEGORIES = {
    "tools/call": "tool",
    "tools/list": "tool",
    "model.call": "model",
    "agent.message": "message",
    "approval.decide": "approval",
}
_NO_ARGUMENTS = object()


@dataclass(frozen=True, slots=True)
class RuntimeDecision:
    """One run-time decision: ``outcome`` is ``allow``, ``deny`` or ``approval``."""

    outcome: str
    #: ids of the policies that decided (for a deny or an approval: the forbidding ones)
    policies: tuple[str, ...] = ()
    #: their ``@reason`` annotations, or why the decision failed closed
    reasons: tuple[str, ...] = ()
    #: the version of the policy set the decision used (``""``: no runtime Policy applied)
    version: str = ""
    #: ``sha256:<hex>`` of the canonical JSON of the arguments, when there were any
    arguments_digest: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"

    @property
    def reason(self) -> str:
        """One line for a person: the policies and their reasons."""
        if self.outcome == "allow":
            return "allowed" + (" by the runtime Policies" if self.version else ": no Policy")
        return "; ".join(
            f"{p}: {r}" if r else p for p, r in zip(self.policies, self.reasons, strict=False)
        )


def canonical_json(value: Any) -> bytes:
    """``value`` as canonical JSON (sorted keys, no spaces), or ValueError naming where it is not
    JSON (a key that is not a string, a float that is not finite, an object of another type)."""
    _check_json(value, "arguments")
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


def _check_json(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value!r}, which JSON cannot hold")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has the key {key!r}, not a string")
            _check_json(item, f"{where}.{key}")
        return
    raise ValueError(f"{where} is a {type(value).__name__}, not a JSON value")


def digest(value: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``value`` (ValueError when it is not JSON)."""
    return "sha256:" + hashlib.sha256(canonical_json(value)).hexdigest()


class RuntimePolicies:
    """The runtime Policies of ``store``, followed by an informer started on first use.

    ``audit``: where every decision is appended (None: not recorded); ``timeout``: a decision
    slower than this many seconds is a deny; ``clock``: monotonic seconds (tests move it).
    """

    def __init__(
        self,
        store: Store,
        *,
        audit: AuditSink | None = None,
        timeout: float = TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache = PolicyCache(store, "runtime")
        self.audit = audit
        self._timeout = timeout
        self._clock = clock

    def start(self) -> None:
        """Start following the Policies and wait until they are loaded (Unavailable if not)."""
        self._cache.start()

    def stop(self) -> None:
        self._cache.stop()

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: JSON,
        context: Mapping[str, Any] | None = None,
        *,
        arguments: Any = _NO_ARGUMENTS,
    ) -> RuntimeDecision:
        """May ``principal`` do ``action`` (``tools/call``, ``model.call``, ...) to ``resource``
        (a Cedar entity: ``uid``, ``attrs`` with ``namespace``, ``parents``)?

        ``arguments``: the action's arguments, put into ``context.arguments`` as a Cedar record and
        digested for the audit; arguments that are not JSON are a deny naming where.
        """
        namespace = str((resource.get("attrs") or {}).get("namespace") or "")
        context = dict(context or {})
        found = ""
        if arguments is not _NO_ARGUMENTS:
            try:
                found = digest(arguments)
            except ValueError as exc:
                refused = RuntimeDecision(
                    "deny",
                    ("(arguments)",),
                    (f"the arguments are not JSON: {exc}; pass JSON values only",),
                )
                return self._record(principal, action, resource, refused)
            context["arguments"] = cedar_value(arguments)
        decision = self._evaluate(principal, action, resource, context, namespace, baseline=True)
        if found:
            decision = _with_digest(decision, found)
        return self._record(principal, action, resource, decision)

    def may_decide(
        self, principal: Principal, approval: Mapping[str, Any], *, record: bool = True
    ) -> RuntimeDecision:
        """May ``principal`` approve or deny ``approval`` (``id``, ``namespace``, ``agent``,
        ``instance``, ``server``, ``tool``)? Administrators may; anyone else only where a runtime
        Policy ``permit``\\ s ``Action::"approval.decide"`` (no baseline: silence is a no).
        ``record``: audit a refusal (a permitted decider's verdict is audited once decided)."""
        named = ("namespace", "agent", "instance", "server", "tool")
        attrs = {k: str(approval.get(k) or "") for k in named}
        resource = {
            "uid": {"type": "Approval", "id": str(approval.get("id") or "")},
            "attrs": attrs,
            "parents": [{"type": "Namespace", "id": attrs["namespace"]}],
        }
        if principal.is_admin:
            decision = RuntimeDecision("allow", (), ("an administrator (system:masters)",))
        else:
            decision = self._evaluate(
                principal, "approval.decide", resource, {}, attrs["namespace"], baseline=False
            )
            if decision.outcome == "approval":  # a forbid's "approval" here is a plain no
                decision = RuntimeDecision(
                    "deny", decision.policies, decision.reasons, decision.version
                )
        if decision.allowed or not record:
            return decision
        return self._record(principal, "approval.decide", resource, decision)

    def _evaluate(
        self,
        principal: Principal,
        action: str,
        resource: JSON,
        context: JSON,
        namespace: str,
        *,
        baseline: bool,
    ) -> RuntimeDecision:
        began = self._clock()
        try:
            self._cache.start()
            policies = self._cache.policy_set(namespace, baseline=baseline)
            if policies is None:
                if baseline:
                    return RuntimeDecision("allow")
                return RuntimeDecision("deny", ("(none)",), ("no runtime Policy permits it",))
            request = {
                "principal": _uid(principal_entities(principal)[0]["uid"]),
                "action": f'Action::"{_escape(action)}"',
                "resource": _uid(resource["uid"]),
                "context": context,
            }
            entities = self._entities(principal, resource, namespace)
            decided = policies.evaluate(request, entities)
        except ModelplaneError as exc:
            return RuntimeDecision("deny", ("(engine)",), (f"error: {exc.message}",))
        except Exception as exc:  # the engine itself failed: fail closed, and say so
            why = f"error: the policy engine raised {type(exc).__name__}: {exc}"
            return RuntimeDecision("deny", ("(engine)",), (why,))
        elapsed = self._clock() - began
        if elapsed > self._timeout:
            why = f"error: the decision took {elapsed:.3f}s, over the limit of {self._timeout}s"
            return RuntimeDecision("deny", ("(timeout)",), (why,), policies.version)
        return _outcome(decided.allowed, decided.policies, decided.reasons, policies)

    def _entities(self, principal: Principal, resource: JSON, namespace: str) -> list[JSON]:
        """The principal (with its namespaces), the resource, and the namespaces they name."""
        # principal_entities gives the user its Namespace parents (Principal.namespaces)
        mine = principal_entities(principal)
        user = mine[0]
        labels = self._labels(namespace)
        named = {*principal.namespaces, namespace} - {""}
        named |= {p["id"] for p in resource.get("parents") or () if p.get("type") == "Namespace"}
        spaces = [
            {"uid": {"type": "Namespace", "id": n}, "attrs": {"labels": labels.get(n, {})}}
            for n in sorted(named)
        ]
        # the namespaces come once, with their labels (principal_entities has them without)
        groups = [e for e in mine[1:] if e["uid"]["type"] != "Namespace"]
        return [user, *groups, resource, *({**s, "parents": []} for s in spaces)]

    def _labels(self, namespace: str) -> dict[str, dict[str, str]]:
        labels: dict[str, dict[str, str]] = {}
        for entity in self._cache.entities(namespace):
            uid = entity.get("uid") or {}
            if uid.get("type") == "Namespace":
                declared = (entity.get("attrs") or {}).get("labels") or {}
                if isinstance(declared, Mapping):
                    labels.setdefault(str(uid.get("id")), {}).update(
                        {str(k): str(v) for k, v in declared.items()}
                    )
        return labels

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        """The labels the runtime Policies declare for ``namespace`` (see the module docstring)."""
        try:
            self._cache.start()
        except ModelplaneError:
            return {}  # the decision that follows fails closed on the same cause
        return self._labels(namespace).get(namespace, {})

    def _record(
        self, principal: Principal, action: str, resource: JSON, decision: RuntimeDecision
    ) -> RuntimeDecision:
        erred = any(r.startswith("error") for r in decision.reasons)
        DECISIONS.labels(result="error" if erred else decision.outcome, scope="runtime").inc()
        if self.audit is not None:
            uid = resource["uid"]
            self.audit.append(
                AuditEvent(
                    category=CATEGORIES.get(action, "runtime"),
                    principal=principal.name,
                    action=action,
                    resource=f"{uid['type']}/{uid['id']}",
                    decision=decision.outcome,
                    namespace=str((resource.get("attrs") or {}).get("namespace") or ""),
                    policies=decision.policies,
                    reasons=decision.reasons,
                    policy_version=decision.version,
                    arguments_digest=decision.arguments_digest,
                )
            )
        return decision


def _outcome(
    allowed: bool, policies: Sequence[str], reasons: Sequence[str], used: PolicySet
) -> RuntimeDecision:
    if allowed:
        return RuntimeDecision("allow", version=used.version)
    erred = any(r.startswith("error") for r in reasons) or any(
        p not in used.annotations for p in policies
    )
    approval = (
        bool(policies)
        and not erred
        and all(str(used.annotations[p].get("decision") or "") == "approval" for p in policies)
    )
    return RuntimeDecision(
        "approval" if approval else "deny", tuple(policies), tuple(reasons), used.version
    )


def _with_digest(decision: RuntimeDecision, found: str) -> RuntimeDecision:
    return RuntimeDecision(
        decision.outcome, decision.policies, decision.reasons, decision.version, found
    )


def _uid(uid: Mapping[str, Any]) -> str:
    return f'{uid["type"]}::"{_escape(str(uid["id"]))}"'


def _escape(text: str) -> str:
    return json.dumps(text)[1:-1]
