"""Relationship permissions (ReBAC): ``Relationship`` tuples resolved into Cedar entity parents.

How a tuple ``subject relation object`` becomes Cedar (see ``docs/policy.md``, "Relationships"):

* subjects: ``User alice`` is ``User::"alice"``; ``Group g`` is ``Group::"g"``; a
  ``ServiceAccount`` or an ``Agent`` ``<ns>/<name>`` is the principal it authenticates as,
  ``User::"system:serviceaccount:<ns>:<name>"``;
* objects: ``Namespace::"team-a"``, ``Group::"g"``, ``User::"alice"``, a cluster-scoped
  ``ToolServer::"files"``, and a namespaced object as the resource of a request names it,
  ``Endpoint::"team-a/chat"`` (a ``Tool`` is ``Tool::"<ns>/<server>/<tool>"``);
* ``member-of X``: the subject's entity gets ``X`` as a parent (``principal in Group::"g"``,
  ``principal in Namespace::"team-a"``);
* ``owner-of X``: the subject gets ``X`` and ``Owner::"<Type>/<id>"`` (e.g.
  ``Owner::"Namespace/team-a"``) as parents, so an owner is also a member and a policy can tell
  owners apart (``principal in Owner::"Namespace/team-a"``);
* ``can-use X``: the subject gets ``X`` itself as a parent, so one policy covers every resource:
  ``permit (principal, action == Action::"model.call", resource) when { principal in resource };``;
* ``delegated-to User u``: no parent at all: the subject may act on behalf of ``u`` and gets at
  most ``u``'s permissions (:func:`~modelplane.policy.decide_on_behalf`); it never inherits them.

Parents are transitive (a member of a group that is a member of a group...). Cedar refuses an
entity graph with a cycle, and walking a deep one on every request would be slow, so the graph is
resolved here: each principal's entity gets its whole closure as direct parents (a walk that marks
what it visited, so a cycle ``A member-of B member-of A`` ends), and no ancestor entity with
parents of its own is handed to Cedar. The resolved graph is rebuilt once after a change of any
Relationship (never per request) and each principal's entities are cached until the next change,
as are the entity sets Cedar parsed for a (principal, resource) pair, reused when the same
principal asks about the same resource again.

Scope: a Relationship in namespace ``N`` takes effect only when its object lies in ``N``
(``Namespace N``, or a namespaced object of ``N``); one in ``modelplane-system`` takes effect for
anything. Others are listed in :attr:`RelationGraph.ignored` with the reason.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cedarpy
import orjson

from modelplane.api import CLUSTER_POLICY_NAMESPACE, Principal, service_account
from modelplane.api.errors import Unavailable
from modelplane.control import Informer
from modelplane.policy._engine import principal_entities

if TYPE_CHECKING:
    from modelplane.store import Store

JSON = dict[str, Any]
#: a Cedar entity uid as (type, id)
Uid = tuple[str, str]

#: how many parsed entity sets (principal and resource) are kept for reuse
PARSED_ENTITIES = 4096
#: object kinds that live in a namespace: their uid is ``<namespace>/<name>``
_NAMESPACED = frozenset({"Endpoint", "Graph", "Agent", "Tool", "Model"})


def subject_uid(subject: Mapping[str, Any]) -> Uid:
    """The Cedar uid of a Relationship's ``spec.subject``."""
    kind, name = str(subject.get("kind")), str(subject.get("name"))
    if kind in ("ServiceAccount", "Agent"):
        return ("User", service_account(str(subject.get("namespace") or ""), name).name)
    return (kind, name)


def object_uid(obj: Mapping[str, Any], namespace: str) -> Uid:
    """The Cedar uid of a Relationship's ``spec.object`` (``namespace``: the Relationship's)."""
    kind, name = str(obj.get("kind")), str(obj.get("name"))
    if kind in _NAMESPACED:
        return (kind, f"{obj.get('namespace') or namespace}/{name}")
    return (kind, name)


def _in_scope(obj: Mapping[str, Any], namespace: str) -> bool:
    if namespace == CLUSTER_POLICY_NAMESPACE:
        return True
    kind = str(obj.get("kind"))
    if kind == "Namespace":
        return obj.get("name") == namespace
    return kind in _NAMESPACED and (obj.get("namespace") or namespace) == namespace


@dataclass
class RelationGraph:
    """Tuples resolved: parents per entity, delegations, and closures computed on first use."""

    #: direct parents of each subject
    parents: dict[Uid, set[Uid]] = field(default_factory=lambda: defaultdict(set))
    #: who may act on behalf of which users
    delegations: dict[Uid, set[Uid]] = field(default_factory=lambda: defaultdict(set))
    #: ``"<namespace>/<name>: why"`` of Relationships that take no effect
    ignored: list[str] = field(default_factory=list)
    _closures: dict[Uid, frozenset[Uid]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, objects: Iterable[Mapping[str, Any]]) -> RelationGraph:
        """The graph of ``Relationship`` objects (as stored)."""
        graph = cls()
        for obj in objects:
            metadata = obj.get("metadata") or {}
            namespace = str(metadata.get("namespace") or "")
            spec = obj.get("spec") or {}
            subject, target = spec.get("subject") or {}, spec.get("object") or {}
            if not _in_scope(target, namespace):
                graph.ignored.append(
                    f"{namespace}/{metadata.get('name')}: its object {target.get('kind')}"
                    f" {target.get('name')!r} is outside namespace {namespace!r}; move it to"
                    f" {CLUSTER_POLICY_NAMESPACE!r} or to the object's namespace"
                )
                continue
            graph.add(
                subject_uid(subject), str(spec.get("relation")), object_uid(target, namespace)
            )
        return graph

    def add(self, subject: Uid, relation: str, target: Uid) -> None:
        """Add one tuple (before the first closure is asked for)."""
        if relation == "delegated-to":
            self.delegations[subject].add(target)
            return
        self.parents[subject].add(target)
        if relation == "owner-of":
            self.parents[subject].add(("Owner", f"{target[0]}/{target[1]}"))

    def ancestors(self, uid: Uid) -> frozenset[Uid]:
        """Every entity ``uid`` is transitively in (itself excluded), cycles included once."""
        with self._lock:
            known = self._closures.get(uid)
        if known is not None:
            return known
        seen: set[Uid] = set()
        stack = list(self.parents.get(uid, ()))
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            stack.extend(self.parents.get(current, ()))
        seen.discard(uid)
        closure = frozenset(seen)
        with self._lock:
            self._closures[uid] = closure
        return closure

    def principal_parents(self, principal: Principal) -> frozenset[Uid]:
        """The parents a principal's entity gets from relationships: those of its user entity
        and of each of its groups (whose own entities are its parents already)."""
        found = set(self.ancestors(("User", principal.name)))
        for group in principal.groups:
            found |= self.ancestors(("Group", group))
        return frozenset(found)

    def delegates(self, agent: Principal, user: Principal) -> bool:
        """Whether a ``delegated-to`` tuple lets ``agent`` act on behalf of ``user``."""
        return ("User", user.name) in self.delegations.get(("User", agent.name), ())


class Relations:
    """The Relationship objects of ``store`` (or ``objects`` given once), resolved into Cedar
    entity parents; pass it as ``relations`` to :meth:`PolicySet.decide`.

    The informer starts on first use (a store's Relationships are loaded before the first
    decision, else the decision fails closed with 503). The graph is rebuilt on the first use
    after a change, and each principal's entities are cached until the next change.
    """

    def __init__(
        self, store: Store | None = None, *, objects: Iterable[Mapping[str, Any]] = ()
    ) -> None:
        self._lock = threading.Lock()
        self._starting = threading.Lock()
        self._graph: RelationGraph | None = RelationGraph.of(objects) if store is None else None
        self._entities: dict[Principal, list[JSON]] = {}
        self._parsed: dict[tuple[Principal, bytes], cedarpy.Entities] = {}
        self._informer: Informer | None = None
        self._store = store
        #: bumped on every change; names the relationship data a decision used
        self.version = 0
        if store is not None:
            self._informer = Informer(store, "Relationship")
            self._informer.add_handler(
                on_add=lambda _obj: self._changed(),
                on_update=lambda _old, _new: self._changed(),
                on_delete=lambda _obj: self._changed(),
            )

    def start(self, timeout: float = 10.0) -> bool:
        """Start following the store; True once the Relationships are loaded."""
        if self._informer is None:
            return True
        with self._starting:
            if not self._informer.running:
                self._informer.start()
        deadline = time.monotonic() + timeout
        while not self._informer.wait_for_sync(min(0.25, timeout)):
            # a store that is down says so now (its own 503), instead of after the whole wait
            if self._store is not None:
                self._store.current_resource_version()
            if time.monotonic() >= deadline:
                return False
        return True

    def stop(self) -> None:
        if self._informer is not None:
            self._informer.stop(timeout=5.0)

    def _changed(self) -> None:
        with self._lock:
            self._graph = None
            self._entities.clear()
            self._parsed.clear()
            self.version += 1

    @property
    def graph(self) -> RelationGraph:
        """The resolved graph, rebuilt here when a Relationship changed since the last use."""
        with self._lock:
            graph, version = self._graph, self.version
        if graph is not None:
            return graph
        if self._informer is not None and not self._informer.has_synced() and not self.start():
            raise Unavailable(
                "the Relationships are not loaded yet, so this decision is refused (fail"
                " closed); retry shortly",
                retry_after=1,
            )
        objects = self._informer.list() if self._informer is not None else []
        graph = RelationGraph.of(objects)
        with self._lock:
            if self.version == version:  # else a newer change came in: the next use rebuilds
                self._graph = graph
        return graph

    def principal_entities(self, principal: Principal) -> list[JSON]:
        """:func:`~modelplane.policy.principal_entities` with the relationship parents added to
        the principal's own entity (the first). Cached per principal: do not modify."""
        with self._lock:
            cached, version = self._entities.get(principal), self.version
        if cached is not None:
            return cached
        entities = principal_entities(principal)
        own = entities[0]
        have = {(p["type"], p["id"]) for p in own["parents"]}
        extra = sorted(self.graph.principal_parents(principal) - have)
        own["parents"] = [*own["parents"], *({"type": t, "id": i} for t, i in extra)]
        with self._lock:
            if self.version == version:
                self._entities[principal] = entities
        return entities

    def entities(self, principal: Principal, resource: JSON) -> cedarpy.Entities:
        """The principal's entities and ``resource``, parsed by Cedar once and reused while the
        same principal asks about the same resource (the same attributes) until a change.

        Cedar's parsing of the entities (JSON and the hierarchy) is a third of a decision's cost
        (``modelplane bench policy``, ``where_the_time_goes``): a repeated request (a tenant
        calling its Endpoint again) skips it."""
        key = (principal, orjson.dumps(resource, option=orjson.OPT_SORT_KEYS))
        with self._lock:
            parsed, version = self._parsed.get(key), self.version
        if parsed is not None:
            return parsed
        document = orjson.dumps([*self.principal_entities(principal), resource]).decode()
        parsed = cedarpy.Entities.from_json_str(document)
        with self._lock:
            if self.version == version:
                if len(self._parsed) >= PARSED_ENTITIES:
                    del self._parsed[next(iter(self._parsed))]  # the oldest
                self._parsed[key] = parsed
        return parsed

    def delegates(self, agent: Principal, user: Principal) -> bool:
        """Whether ``agent`` may act on behalf of ``user`` (a ``delegated-to`` Relationship)."""
        return self.graph.delegates(agent, user)

    def owns_namespace(self, principal: Principal, namespace: str) -> bool:
        """Whether ``principal`` is an owner of ``namespace`` (``owner-of Namespace``), who may
        write Relationships there."""
        return ("Owner", f"Namespace/{namespace}") in self.graph.principal_parents(principal)
