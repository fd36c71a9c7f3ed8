"""Flow control: requests held by priority while an Endpoint's replicas are saturated, shed first
from the lowest priority, and shared fairly between the tenants of one priority.

An Endpoint with ``spec.qos`` (or an ``InferenceObjective`` naming it) gets a :class:`FlowQueue`
in the gateway. A request is classed once (:meth:`QosPolicy.classify`): the class its
``x-modelplane-priority`` header names (or the Inference Extension's
``x-gateway-inference-objective``), else its tenant's class, else ``defaultClass``, else
priority 0; a name the Endpoint does not know is a 400 naming the header and the known classes.

While the Endpoint has headroom (some replica is below ``spec.qos.saturation``: the queue depth
and KV-cache use scraped from its ``/metrics``, and the requests this gateway has in flight to it)
and nobody waits, a request goes straight on. The bounds depend on the priority: background
(negative) requests fill only ``backgroundShare`` of ``maxInFlight``, and a class's
``kvCacheReserve`` lowers the KV-cache bound of every class below it, so room stays free for it. Otherwise it waits in the queue:

* the highest priority waiting is served first whenever a replica frees up (or a scrape shows
  headroom again);
* inside one priority, the tenant with the least *virtual token count* goes first: each request
  served charges its token estimate divided by the tenant's ``weight`` (VTC, Sheng et al.,
  "Fairness in Serving Large Language Models", OSDI 2024); a tenant that starts waiting again is
  lifted to the least count of those waiting, so idle time is not saved up as credit;
* when the queue is full (``queue.maxSize``), the newest request of the lowest priority below the
  arriving one is shed with 429 and ``Retry-After``; at the arriving one's own priority, the
  newest of the tenant holding the most of the queue for its weight (when that is more than the
  arriving tenant would hold); else the arriving request is shed: a higher priority is never shed
  while a lower one waits;
* a request waiting longer than ``queue.ttl`` is shed with 429 and ``Retry-After``.

:class:`FlowQueue` is plain and synchronous with an explicit clock, so the simulator drives the
very object the gateway does; :class:`FlowControl` puts it on the serving event loop (a future
per waiting request, no locks).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelplane.api import PRIORITY_HEADER, Principal, parse_duration
from modelplane.gateway._errors import GatewayError
from modelplane.gateway._telemetry import metric_lines

#: the Gateway API Inference Extension's request header naming an InferenceObjective
OBJECTIVE_HEADER = "x-gateway-inference-objective"


@dataclass(frozen=True, slots=True)
class TenantRule:
    """A tenant's default class (None: the Endpoint's) and fair-share weight."""

    klass: str | None = None
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class RequestClass:
    """What flow control knows of one request: its class and priority, tenant and weight."""

    name: str
    priority: int
    tenant: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class QosPolicy:
    """An Endpoint's ``spec.qos`` (with its InferenceObjectives' classes), as the gateway holds it."""

    classes: Mapping[str, int] = field(default_factory=dict)
    default_class: str | None = None
    tenants: Mapping[str, TenantRule] = field(default_factory=dict)
    max_size: int = 256
    ttl: float = 30.0
    queue_depth: float = 4.0
    kv_cache: float = 0.9
    max_in_flight: int | None = None
    background_share: float = 1.0
    #: priority -> share of the KV cache its class keeps free of lower priorities
    kv_reserves: Mapping[int, float] = field(default_factory=dict)

    def kv_bound(self, priority: int) -> float:
        """KV-cache use at which a replica is saturated for ``priority``: ``kvCacheUsage`` less
        what the classes above it reserve."""
        above = sum(share for p, share in self.kv_reserves.items() if p > priority)
        return self.kv_cache - above

    def in_flight_bound(self, priority: int) -> int | None:
        """Most requests in flight per replica before one of ``priority`` waits: background
        (negative) priorities fill only ``backgroundShare`` of ``maxInFlight``, so the rest is
        free the moment a higher priority arrives."""
        if self.max_in_flight is None or priority >= 0:
            return self.max_in_flight
        return max(1, math.floor(self.max_in_flight * self.background_share))

    def classify(self, named: str | None, principal: Principal) -> RequestClass:
        """The class of a request that names ``named`` (None: none) from ``principal``.

        Raises a 400 :class:`GatewayError` naming the header and the known classes when the
        name is not a class of this Endpoint.
        """
        rule = self._tenant(principal)
        tenant = principal.name if rule is None else rule[0]
        weight = 1.0 if rule is None else rule[1].weight
        name = named or (rule[1].klass if rule is not None else None) or self.default_class
        if name is None:
            return RequestClass("", 0, tenant, weight)
        priority = self.classes.get(name)
        if priority is None:
            known = ", ".join(sorted(self.classes)) or "none"
            raise GatewayError(
                400,
                f"The {PRIORITY_HEADER} header names {name!r}, which is not a request class of"
                f" this model; known classes: {known} (or leave the header out for the default).",
                code="unknown_priority_class",
                param=PRIORITY_HEADER,
            )
        return RequestClass(name, priority, tenant, weight)

    def _tenant(self, principal: Principal) -> tuple[str, TenantRule] | None:
        rule = self.tenants.get(principal.name)
        if rule is not None:
            return principal.name, rule
        for namespace in sorted(principal.namespaces):
            rule = self.tenants.get(namespace)
            if rule is not None:
                return namespace, rule
        return None


def qos_policy(raw: Any, objectives: Iterable[tuple[str, int]] = ()) -> QosPolicy | None:
    """The policy of an Endpoint's ``spec.qos`` (validated JSON) plus ``(name, priority)`` of
    the InferenceObjectives naming it; None when it has neither."""
    objectives = list(objectives)
    if not isinstance(raw, dict) and not objectives:
        return None
    qos: dict[str, Any] = raw if isinstance(raw, dict) else {}
    classes = {str(c["name"]): int(c["priority"]) for c in qos.get("classes") or []}
    reserves: dict[int, float] = {}
    for c in qos.get("classes") or []:
        if c.get("kvCacheReserve"):
            priority = int(c["priority"])
            reserves[priority] = reserves.get(priority, 0.0) + float(c["kvCacheReserve"])
    for name, priority in objectives:
        classes.setdefault(name, priority)  # the Endpoint's own class of that name wins
    tenants = {
        str(t["tenant"]): TenantRule(t.get("class"), float(t.get("weight", 1.0)))
        for t in qos.get("tenants") or []
    }
    queue = qos.get("queue") or {}
    saturation = qos.get("saturation") or {}
    most = saturation.get("maxInFlight")
    return QosPolicy(
        classes=classes,
        default_class=qos.get("defaultClass"),
        tenants=tenants,
        max_size=int(queue.get("maxSize", 256)),
        ttl=parse_duration(str(queue.get("ttl", "30s"))),
        queue_depth=float(saturation.get("queueDepth", 4.0)),
        kv_cache=float(saturation.get("kvCacheUsage", 0.9)),
        max_in_flight=int(most) if most is not None else None,
        background_share=float(saturation.get("backgroundShare", 1.0)),
        kv_reserves=reserves,
    )


@dataclass(slots=True, eq=False)
class Waiter:
    """One held request; ``token`` is the holder's handle (a future, a simulated request)."""

    klass: RequestClass
    cost: float
    arrived: float
    token: Any = None


class FlowQueue:
    """One Endpoint's held requests: per priority, per tenant, first come first served."""

    def __init__(self, max_size: int = 256, ttl: float = 30.0) -> None:
        self.max_size = max_size
        self.ttl = ttl
        #: priority -> tenant -> its waiting requests, oldest first
        self.bands: dict[int, dict[str, deque[Waiter]]] = {}
        #: (priority, tenant) -> virtual token count (tokens served / weight)
        self.counts: dict[tuple[int, str], float] = {}
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def top(self) -> int | None:
        """The highest priority waiting, None when nobody waits."""
        return max(self.bands) if self.bands else None

    def waiting(self, priority: int) -> int:
        return sum(len(q) for q in self.bands.get(priority, {}).values())

    def push(self, waiter: Waiter) -> Waiter | None:
        """Hold ``waiter``; the request shed to make room (``waiter`` itself when nothing
        waiting is of lower priority), or None."""
        shed: Waiter | None = None
        if self.size >= self.max_size:
            shed = self._victim(waiter)
            if shed is waiter:
                return waiter
            self.remove(shed)
        band = self.bands.setdefault(waiter.klass.priority, {})
        queue = band.get(waiter.klass.tenant)
        if queue is None:
            self._lift(waiter.klass.priority, waiter.klass.tenant, band)
            queue = band[waiter.klass.tenant] = deque()
        queue.append(waiter)
        self.size += 1
        return shed

    def pop(self) -> Waiter | None:
        """The next request to serve: highest priority, then least virtual token count."""
        if not self.bands:
            return None
        priority = max(self.bands)
        band = self.bands[priority]
        counts = self.counts
        tenant = min(band, key=lambda t: (counts.get((priority, t), 0.0), band[t][0].arrived))
        waiter = band[tenant].popleft()
        self._drop_empty(priority, tenant)
        self.size -= 1
        self.charge(waiter.klass, waiter.cost)
        return waiter

    def charge(self, klass: RequestClass, tokens: float) -> None:
        """Count ``tokens`` served to ``klass``'s tenant (negative: a correction)."""
        key = (klass.priority, klass.tenant)
        self.counts[key] = self.counts.get(key, 0.0) + tokens / klass.weight

    def expire(self, now: float) -> list[Waiter]:
        """Remove and return the requests held ``ttl`` or longer."""
        out: list[Waiter] = []
        for priority, band in list(self.bands.items()):
            for tenant, queue in list(band.items()):
                while queue and now - queue[0].arrived >= self.ttl:
                    out.append(queue.popleft())
                    self.size -= 1
                self._drop_empty(priority, tenant)
        return out

    def remove(self, waiter: Waiter) -> bool:
        """Take ``waiter`` out (it gave up or was shed); False when it was not held."""
        band = self.bands.get(waiter.klass.priority)
        queue = band.get(waiter.klass.tenant) if band is not None else None
        if queue is None:
            return False
        try:
            queue.remove(waiter)
        except ValueError:
            return False
        self.size -= 1
        self._drop_empty(waiter.klass.priority, waiter.klass.tenant)
        return True

    def oldest_wait(self, now: float) -> float:
        """How long the longest-held request has waited (0 when none)."""
        firsts = [q[0].arrived for band in self.bands.values() for q in band.values()]
        return now - min(firsts) if firsts else 0.0

    def _victim(self, arriving: Waiter) -> Waiter:
        """Whom a full queue sheds for ``arriving``: the newest of the lowest priority below it;
        at its own priority, the newest of the tenant holding most of the queue for its weight
        (when that is more than the arriving tenant would), so shedding keeps the weights;
        else ``arriving`` itself."""
        lowest = min(self.bands, default=None)
        klass = arriving.klass
        if lowest is None or lowest > klass.priority:
            return arriving
        band = self.bands[lowest]
        if lowest < klass.priority:
            return max((q[-1] for q in band.values()), key=lambda w: w.arrived)
        mine = (len(band.get(klass.tenant, ())) + 1) / klass.weight
        tenant, queue = max(band.items(), key=lambda item: len(item[1]) / item[1][0].klass.weight)
        if tenant != klass.tenant and len(queue) / queue[0].klass.weight > mine:
            return queue[-1]
        return arriving

    def _lift(self, priority: int, tenant: str, band: dict[str, deque[Waiter]]) -> None:
        # a tenant that starts waiting again joins at the least count of those waiting: no credit
        # for time it sent nothing (VTC's counter lift)
        waiting = [self.counts.get((priority, t), 0.0) for t in band]
        if waiting:
            key = (priority, tenant)
            self.counts[key] = max(self.counts.get(key, 0.0), min(waiting))

    def _drop_empty(self, priority: int, tenant: str) -> None:
        band = self.bands.get(priority)
        if band is not None and not band.get(tenant, True):
            del band[tenant]
        if band is not None and not band:
            del self.bands[priority]


#: how many more requests of a priority the Endpoint's replicas take now, under a policy
Headroom = Callable[[QosPolicy, int], float]


@dataclass(slots=True)
class _Held:
    queue: FlowQueue
    policy: QosPolicy
    headroom: Headroom
    #: requests let through whose replica is not yet counted in flight
    granted: int = 0


class FlowControl:
    """Every Endpoint's :class:`FlowQueue` on the serving loop, with its metrics.

    ``admit`` returns when the request may go to a replica (then the caller calls
    :meth:`started` once the replica counts it in flight), or raises a 429 ``GatewayError``.
    ``pump`` lets waiting requests through while there is headroom; the gateway calls it when a
    request ends and after each scrape.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.held: dict[str, _Held] = {}
        #: (endpoint key, class) -> requests shed, by reason (queue_full, ttl)
        self.shed: dict[tuple[str, str, str], int] = {}
        #: (endpoint key, class) -> requests let through, and how many of them waited first
        self.admitted: dict[tuple[str, str, bool], int] = {}

    def depth(self) -> dict[tuple[str, str], int]:
        """Requests held now, per endpoint and priority (as a string)."""
        return {
            (key, str(priority)): held.queue.waiting(priority)
            for key, held in self.held.items()
            for priority in held.queue.bands
        }

    def prometheus(self) -> list[str]:
        """The flow-control metrics: queue depth per priority, requests shed and let through."""
        depth = [
            ({"endpoint": key, "priority": priority}, float(n))
            for (key, priority), n in sorted(self.depth().items())
        ]
        shed = [
            ({"endpoint": key, "class": name, "reason": reason}, float(n))
            for (key, name, reason), n in sorted(self.shed.items())
        ]
        admitted = [
            ({"endpoint": key, "class": name, "queued": str(waited).lower()}, float(n))
            for (key, name, waited), n in sorted(self.admitted.items())
        ]
        return [
            *metric_lines(
                "modelplane_gateway_flow_queue_depth",
                "gauge",
                "Requests held by flow control while the endpoint is saturated, per priority.",
                depth,
            ),
            *metric_lines(
                "modelplane_gateway_flow_shed_requests_total",
                "counter",
                "Requests shed by flow control with 429 (queue_full or ttl), per class.",
                shed,
            ),
            *metric_lines(
                "modelplane_gateway_flow_admitted_requests_total",
                "counter",
                "Requests flow control let through, per class; queued: whether they waited.",
                admitted,
            ),
        ]

    async def admit(
        self, key: str, policy: QosPolicy, klass: RequestClass, cost: float, headroom: Headroom
    ) -> None:
        held = self._held(key, policy, headroom)
        top = held.queue.top()
        if (top is None or top < klass.priority) and headroom(
            policy, klass.priority
        ) > held.granted:
            held.queue.charge(klass, cost)
            held.granted += 1
            self._count_admitted(key, klass, waited=False)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = Waiter(klass, cost, self.clock(), future)
        shed = held.queue.push(waiter)
        if shed is not None:
            self._count_shed(key, shed, "queue_full")
            error = _too_many(key, held, shed.klass, "queue_full", self.clock())
            if shed is waiter:
                raise error
            shed.token.set_exception(error)
        self.pump(key)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout=policy.ttl)
        except TimeoutError:
            if held.queue.remove(waiter):
                self._count_shed(key, waiter, "ttl")
                raise _too_many(key, held, klass, "ttl", self.clock()) from None
            await future  # granted just as the time ran out: go on
        except asyncio.CancelledError:
            if not held.queue.remove(waiter) and future.done() and not future.exception():
                self.started(key)  # granted, then the client left: give the slot back
                self.pump(key)
            raise

    def started(self, key: str) -> None:
        """A request let through now counts in flight at its replica (or failed before)."""
        held = self.held.get(key)
        if held is not None and held.granted > 0:
            held.granted -= 1

    def pump(self, key: str | None = None) -> None:
        """Let waiting requests through while there is headroom (every Endpoint's when None)."""
        for k in [key] if key is not None else list(self.held):
            held = self.held.get(k)
            if held is None:
                continue
            for expired in held.queue.expire(self.clock()):
                self._expire(k, held, expired)
            while (top := held.queue.top()) is not None and (
                held.headroom(held.policy, top) > held.granted
            ):
                waiter = held.queue.pop()
                assert waiter is not None
                held.granted += 1
                self._count_admitted(k, waiter.klass, waited=True)
                future: asyncio.Future[None] = waiter.token
                if not future.done():
                    future.set_result(None)

    def _held(self, key: str, policy: QosPolicy, headroom: Headroom) -> _Held:
        held = self.held.get(key)
        if held is None:
            held = self.held[key] = _Held(FlowQueue(policy.max_size, policy.ttl), policy, headroom)
        else:  # the Endpoint may have changed: the latest spec and replicas apply
            held.policy, held.headroom = policy, headroom
            held.queue.max_size, held.queue.ttl = policy.max_size, policy.ttl
        return held

    def _expire(self, key: str, held: _Held, waiter: Waiter) -> None:
        self._count_shed(key, waiter, "ttl")
        future: asyncio.Future[None] = waiter.token
        if not future.done():
            future.set_exception(_too_many(key, held, waiter.klass, "ttl", self.clock()))

    def _count_shed(self, key: str, waiter: Waiter, reason: str) -> None:
        name = waiter.klass.name or str(waiter.klass.priority)
        self.shed[(key, name, reason)] = self.shed.get((key, name, reason), 0) + 1

    def _count_admitted(self, key: str, klass: RequestClass, *, waited: bool) -> None:
        slot = (key, klass.name or str(klass.priority), waited)
        self.admitted[slot] = self.admitted.get(slot, 0) + 1


def _too_many(key: str, held: _Held, klass: RequestClass, reason: str, now: float) -> GatewayError:
    # retry once about as long as the queue now takes to turn over, at least a second
    retry = max(1.0, min(held.policy.ttl, math.ceil(held.queue.oldest_wait(now))))
    why = (
        f"it waited {held.policy.ttl:g}s (queue.ttl) without a free replica"
        if reason == "ttl"
        else "the queue is full of requests of the same or higher priority"
    )
    name = f"class {klass.name!r}" if klass.name else "the default class"
    return GatewayError(
        429,
        f"Endpoint {key} is saturated and the request ({name}, priority {klass.priority}) was"
        f" shed: {why}. Retry after {retry:g}s, or send it with a higher priority class.",
        type="rate_limit_exceeded",
        code="flow_control_shed",
        retry_after=retry,
    )
