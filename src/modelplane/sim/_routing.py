"""A discrete-event model of vLLM-like replicas, driven by the gateway's real routing policies.

``simulate_routing(trace, replicas=N, policy=...)`` replays a request trace against N simulated
replicas and returns TTFT percentiles, throughput, success rate and cache hit rate. The replica
is picked by :class:`~modelplane.gateway.Router` itself, the object the gateway uses, fed
the way the gateway feeds it: ``begin``/``end`` around each request (requests in flight), and
queue depth, running requests and KV-cache use copied from the replicas every
``scrape_interval_s`` (the gateway scrapes ``/metrics`` every second).

Each replica is modelled on vLLM:

* **continuous batching** — a step runs every running sequence; waiting sequences join at step
  boundaries, first come first served, bounded by ``max_num_seqs`` and by ``max_batched_tokens``
  prefill tokens per step (one longer prompt may take a step alone);
* a step lasts ``step_base_s + step_per_seq_s * batch + prefill_per_token_s * uncached tokens``:
  prefill costs only the prompt tokens the KV cache does not already hold, and decode grows
  mildly with the batch. The prefill step yields the first token (TTFT), each further step one;
* an **LRU block KV cache** of ``kv_blocks`` blocks of ``block_tokens`` tokens. A prompt's
  *prefix* (trace field ``prefix``: an id of shared content) fills whole blocks that later
  requests with the same prefix hit while resident; the rest of a sequence (a partial prefix
  block, the suffix, the output) is its own and freed when it ends. A sequence reserves its
  blocks when admitted; when they do not fit even after evicting idle prefix blocks (least
  recently used first, from a prefix's tail, as vLLM frees them), the queue waits;
* a request waiting longer than ``queue_timeout_s`` fails (the client gave up), as does one that
  could never fit in the cache.

Because the batch only changes at arrivals and completions, a run of decode steps with the same
batch is one event, not one per step; that is what makes an hour of ten replicas take seconds.

Trace lines (JSON): ``{"arrival": s, "prefix": "id", "prefix_tokens": n, "suffix_tokens": m,
"output_tokens": k, "session": "id"}``; :func:`generate_trace` writes the standard workloads.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from modelplane.api import PREFIX_POLICIES
from modelplane.gateway import (
    POLICIES,
    EndpointRoute,
    FlowQueue,
    QosPolicy,
    Replica,
    RequestClass,
    Router,
    VersionRoute,
    Waiter,
)

WORKLOADS = ("shared-prefix", "multi-round", "low-reuse", "hot-prefix")
#: the gateway hashes at most this many leading blocks of a prompt (``prompt_blocks``)
_ROUTER_MAX_BLOCKS = 128


class TraceError(ValueError):
    """A trace line that is not a valid request; the message names the line and the field."""


@dataclass(frozen=True, slots=True)
class TraceRequest:
    """One request of a trace. ``prefix`` names content shared with other requests."""

    arrival: float
    prefix: str
    prefix_tokens: int
    suffix_tokens: int
    output_tokens: int
    session: str = ""
    #: the request's priority (higher first) and tenant, for flow control (``qos=``)
    priority: int = 0
    tenant: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "arrival": round(self.arrival, 6),
            "prefix": self.prefix,
            "prefix_tokens": self.prefix_tokens,
            "suffix_tokens": self.suffix_tokens,
            "output_tokens": self.output_tokens,
            "session": self.session,
        }
        if self.priority:
            out["priority"] = self.priority
        if self.tenant:
            out["tenant"] = self.tenant
        return out


@dataclass(frozen=True, slots=True)
class ReplicaModel:
    """Costs and limits of one replica. Defaults: roughly an 8B model on one H100-class GPU
    with a KV cache of 131,072 tokens."""

    block_tokens: int = 16
    kv_blocks: int = 8192
    max_num_seqs: int = 128
    max_batched_tokens: int = 8192
    prefill_per_token_s: float = 50e-6
    step_base_s: float = 0.012
    step_per_seq_s: float = 0.0001


# -- traces ---------------------------------------------------------------------------------------

_INT_FIELDS = ("prefix_tokens", "suffix_tokens", "output_tokens")


def parse_trace(lines: Iterable[bytes | str], source: str = "trace") -> list[TraceRequest]:
    """Requests from JSON lines (blank lines skipped), sorted by arrival; errors name the line."""
    out: list[TraceRequest] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{number}"
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise TraceError(f"{where}: not JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise TraceError(f"{where}: expected a JSON object per line")
        out.append(_request(obj, where))
    out.sort(key=lambda r: r.arrival)
    return out


def _request(obj: dict[str, Any], where: str) -> TraceRequest:
    arrival = obj.get("arrival")
    if isinstance(arrival, bool) or not isinstance(arrival, int | float) or arrival < 0:
        raise TraceError(f"{where}: arrival: expected seconds >= 0, got {arrival!r}")
    ints: dict[str, int] = {}
    for name in _INT_FIELDS:
        value = obj.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TraceError(f"{where}: {name}: expected a whole number >= 0, got {value!r}")
        ints[name] = value
    if ints["output_tokens"] < 1:
        raise TraceError(f"{where}: output_tokens: a request generates at least 1 token")
    if ints["prefix_tokens"] + ints["suffix_tokens"] < 1:
        raise TraceError(f"{where}: prefix_tokens + suffix_tokens: the prompt is empty")
    prefix = obj.get("prefix", "")
    session = obj.get("session", "")
    tenant = obj.get("tenant", "")
    if not isinstance(prefix, str) or not isinstance(session, str) or not isinstance(tenant, str):
        raise TraceError(f"{where}: prefix, session and tenant must be strings")
    priority = obj.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TraceError(f"{where}: priority: expected a whole number, got {priority!r}")
    return TraceRequest(
        float(arrival), prefix, session=session, priority=priority, tenant=tenant, **ints
    )


def load_trace(path: str | Path) -> list[TraceRequest]:
    """The requests of a JSON-lines trace file (see :func:`parse_trace`)."""
    p = Path(path)
    with p.open("rb") as f:
        return parse_trace(f, str(p))


def generate_trace(
    workload: str, *, rate: float, duration_s: float, seed: int = 0
) -> list[TraceRequest]:
    """A trace of Poisson arrivals at ``rate`` requests/s over ``duration_s`` seconds.

    * ``shared-prefix`` — 100 tenants, each with its own 2,000-4,000-token system prompt shared
      by all its requests; short questions (50-250 tokens), answers of 20-200 tokens;
    * ``multi-round`` — chat sessions of 3-8 rounds, 10-30 s apart; each round's prefix is the
      whole conversation so far (it grows), behind a 500-token system prompt;
    * ``low-reuse`` — every request its own prompt (200-2,000 tokens): nothing to hit;
    * ``hot-prefix`` — like shared-prefix, but 90 % of requests share one tenant's prompt.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"workload: expected one of {', '.join(WORKLOADS)}, got {workload!r}")
    if rate <= 0 or duration_s <= 0:
        raise ValueError("rate and duration_s must be > 0")
    rnd = random.Random(seed)
    if workload == "multi-round":
        return _multi_round(rnd, rate, duration_s)
    out: list[TraceRequest] = []
    t = rnd.expovariate(rate)
    tenants = [rnd.randint(2000, 4000) for _ in range(100)]
    i = 0
    while t < duration_s:
        suffix, output = rnd.randint(50, 250), rnd.randint(20, 200)
        if workload == "low-reuse":
            req = TraceRequest(t, f"q{i}", rnd.randint(200, 2000), suffix, output, f"u{i}")
        else:
            hot = workload == "hot-prefix" and rnd.random() < 0.9
            tenant = 0 if hot else rnd.randrange(len(tenants))
            user = f"t{tenant}-u{rnd.randrange(50)}"
            req = TraceRequest(t, f"t{tenant}", tenants[tenant], suffix, output, user)
        out.append(req)
        i += 1
        t += rnd.expovariate(rate)
    return out


def _multi_round(rnd: random.Random, rate: float, duration_s: float) -> list[TraceRequest]:
    out: list[TraceRequest] = []
    mean_rounds = 5.5
    t = rnd.expovariate(rate / mean_rounds)
    s = 0
    while t < duration_s:
        history = 500
        at = t
        for _ in range(rnd.randint(3, 8)):
            if at >= duration_s:
                break
            suffix, output = rnd.randint(30, 200), rnd.randint(50, 300)
            out.append(TraceRequest(at, f"s{s}", history, suffix, output, f"s{s}"))
            history += suffix + output
            at += rnd.uniform(10.0, 30.0)
        s += 1
        t += rnd.expovariate(rate / mean_rounds)
    out.sort(key=lambda r: r.arrival)
    return out


# -- replicas -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Seq:
    index: int
    request: TraceRequest
    prefix_blocks: int  # whole prefix blocks: shareable, in the replica's prefix cache
    own_blocks: int  # everything else: freed when the sequence ends
    hit_tokens: int = 0
    uncached_tokens: int = 0
    finish_step: int = 0


@dataclass(slots=True)
class _Entry:
    """One prefix on one replica: its resident leading blocks and the sequences using it."""

    resident: int = 0
    refs: int = 0


@dataclass(slots=True)
class _Replica:
    index: int
    url: str
    model: ReplicaModel
    waiting: list[_Seq] = field(default_factory=list)
    waiting_head: int = 0
    finishing: list[tuple[int, int, _Seq]] = field(default_factory=list)  # heap by finish step
    prefilling: list[_Seq] = field(default_factory=list)
    running: int = 0
    steps: int = 0  # steps completed
    # the stretch of decode steps in progress: started at t0 after `steps0` steps, each dt long
    t0: float = 0.0
    steps0: int = 0
    dt: float = 0.0
    busy: bool = False
    version: int = 0  # invalidates a scheduled boundary when an arrival moves it
    prefixes: dict[str, _Entry] = field(default_factory=dict)
    idle: OrderedDict[str, None] = field(default_factory=OrderedDict)  # refs == 0, LRU first
    idle_blocks: int = 0
    used_blocks: int = 0
    routed: int = 0
    max_queue: int = 0

    def queue_depth(self) -> int:
        return len(self.waiting) - self.waiting_head

    def kv_usage(self) -> float:
        return (self.used_blocks - self.idle_blocks) / self.model.kv_blocks

    # -- the block cache ------------------------------------------------------------------

    def hit_blocks(self, seq: _Seq) -> int:
        """How many of the sequence's prefix blocks are resident now."""
        if not seq.prefix_blocks:
            return 0
        entry = self.prefixes.get(seq.request.prefix)
        return min(entry.resident, seq.prefix_blocks) if entry is not None else 0

    def try_reserve(self, seq: _Seq, hit: int) -> bool:
        """Pin the sequence's prefix blocks and reserve the rest, evicting idle blocks LRU."""
        req = seq.request
        entry = self.prefixes.get(req.prefix) if seq.prefix_blocks else None
        new = seq.prefix_blocks - hit + seq.own_blocks
        reclaimable = self.idle_blocks
        if entry is not None and entry.refs == 0:
            reclaimable -= entry.resident  # it is about to be pinned
        if self.model.kv_blocks - self.used_blocks + reclaimable < new:
            return False
        if entry is not None and entry.refs == 0:
            del self.idle[req.prefix]
            self.idle_blocks -= entry.resident
        self._evict(new - (self.model.kv_blocks - self.used_blocks))
        if seq.prefix_blocks:
            if entry is None:
                entry = self.prefixes[req.prefix] = _Entry()
            entry.refs += 1
            if entry.resident < seq.prefix_blocks:
                entry.resident = seq.prefix_blocks
        self.used_blocks += new
        seq.hit_tokens = hit * self.model.block_tokens
        seq.uncached_tokens = req.prefix_tokens + req.suffix_tokens - seq.hit_tokens
        return True

    def _evict(self, blocks: int) -> None:
        while blocks > 0:
            prefix = next(iter(self.idle))
            entry = self.prefixes[prefix]
            take = min(entry.resident, blocks)
            entry.resident -= take
            self.idle_blocks -= take
            self.used_blocks -= take
            blocks -= take
            if entry.resident == 0:
                del self.idle[prefix]
                del self.prefixes[prefix]

    def release(self, seq: _Seq) -> None:
        self.used_blocks -= seq.own_blocks
        if seq.prefix_blocks:
            entry = self.prefixes[seq.request.prefix]
            entry.refs -= 1
            if entry.refs == 0:
                self.idle[seq.request.prefix] = None  # most recently used
                self.idle_blocks += entry.resident


# -- the simulation -------------------------------------------------------------------------------


class _Simulation:
    def __init__(
        self,
        trace: Sequence[TraceRequest],
        replicas: int,
        policy: str,
        model: ReplicaModel,
        seed: int,
        queue_timeout_s: float,
        scrape_interval_s: float,
        router: Router | None,
        qos: QosPolicy | None = None,
    ) -> None:
        self.trace = trace
        self.model = model
        self.queue_timeout_s = queue_timeout_s
        self.scrape_interval_s = scrape_interval_s
        self.reps = [_Replica(i, f"http://sim-{i}:8000/v1", model) for i in range(replicas)]
        self.by_url = {r.url: r for r in self.reps}
        self.route_replicas = tuple(
            Replica(f"sim-{i}", r.url, "v1") for i, r in enumerate(self.reps)
        )
        self.version = VersionRoute("v1", 100, self.route_replicas)
        self.route = EndpointRoute("default", "sim", "sim", "chat", (self.version,), policy=policy)
        self.router = router if router is not None else Router(seed=seed)
        self.events: list[tuple[float, int, int, int]] = []  # (time, order, replica, version)
        self.order = 0
        self.ttft: list[float] = []
        #: per request that got its first token: (index, replica, ttft_s, uncached, hit tokens)
        self.firsts: list[tuple[int, int, float, int, int]] = []
        self.failed_indices: list[int] = []
        self.failed = 0
        self.completed = 0
        self.output_tokens = 0
        self.prompt_tokens = 0
        self.hit_tokens = 0
        self.admitted_prompt_tokens = 0
        self.last_done = 0.0
        self.event_count = 0
        self._router_blocks: dict[str, list[int]] = {}
        # flow control: the gateway's own queue, let on whenever a replica frees up or is scraped
        self.qos = qos
        self.flow = FlowQueue(qos.max_size, qos.ttl) if qos is not None else None
        self.shed_indices: list[int] = []
        self.released = False
        self.last_arrival = trace[-1].arrival if trace else 0.0
        #: output tokens per tenant of the requests finished while requests still arrived
        self.tenant_tokens: dict[str, int] = {}
        if qos is not None:
            self.router.on_release = self._released

    # -- routing --------------------------------------------------------------------------

    def _blocks(self, index: int, req: TraceRequest) -> list[int]:
        """What the gateway would hash: the prompt's leading blocks, shared while the prefix is."""
        b = self.model.block_tokens
        whole = req.prefix_tokens // b if req.prefix else 0
        need = min(whole, _ROUTER_MAX_BLOCKS)
        chain = self._router_blocks.get(req.prefix)
        if chain is None or len(chain) < need:
            chain = self._router_blocks[req.prefix] = _chain(req.prefix, need)
        blocks = chain[:need]
        room = _ROUTER_MAX_BLOCKS - len(blocks)
        own = min((req.prefix_tokens + req.suffix_tokens) // b - whole, room)
        if own > 0:
            h = blocks[-1] if blocks else 0
            for k in range(own):
                h = zlib.crc32(f"{index}:{k}".encode(), h)
                blocks.append(h)
        return blocks

    def _released(self, _url: str) -> None:
        self.released = True

    def _headroom(self, qos: QosPolicy, priority: int) -> float:
        return self.router.headroom(
            [r.url for r in self.route_replicas],
            queue_depth=qos.queue_depth,
            kv_cache=qos.kv_bound(priority),
            max_in_flight=qos.in_flight_bound(priority),
        )

    def arrive(self, index: int, req: TraceRequest) -> None:
        """A request reaches the gateway: through flow control when it has ``qos``, as the
        gateway's :class:`~modelplane.gateway.FlowControl` admits it."""
        flow, qos = self.flow, self.qos
        if flow is None or qos is None:
            self.dispatch(index, req, req.arrival)
            return
        tenant = req.tenant or "default"
        rule = qos.tenants.get(tenant)
        klass = RequestClass(str(req.priority), req.priority, tenant, rule.weight if rule else 1.0)
        cost = req.prefix_tokens + req.suffix_tokens + req.output_tokens
        top = flow.top()
        if (top is None or top < req.priority) and self._headroom(qos, req.priority) > 0:
            flow.charge(klass, cost)
            self.dispatch(index, req, req.arrival)
            return
        shed = flow.push(Waiter(klass, cost, req.arrival, index))
        if shed is not None:
            self._shed(int(shed.token))

    def _shed(self, index: int) -> None:
        """Flow control refused the request (429): it failed, and is counted as shed."""
        self.shed_indices.append(index)
        self.failed_indices.append(index)
        self.failed += 1

    def pump(self, now: float) -> None:
        """Let held requests on while a replica has room; shed those past the TTL."""
        flow, qos = self.flow, self.qos
        self.released = False
        if flow is None or qos is None:
            return
        for expired in flow.expire(now):
            self._shed(int(expired.token))
        while (top := flow.top()) is not None and self._headroom(qos, top) > 0:
            waiter = flow.pop()
            assert waiter is not None
            index = int(waiter.token)
            self.dispatch(index, self.trace[index], now)

    def dispatch(self, index: int, req: TraceRequest, now: float) -> None:
        """Send a request to the replica the gateway's Router picks."""
        blocks = self._blocks(index, req) if self.route.policy in PREFIX_POLICIES else []
        replica = self.router.pick(
            self.route, self.version, session=req.session or None, blocks=blocks
        )
        assert replica is not None  # the version always has replicas
        self.router.begin(replica.url)
        rep = self.by_url[replica.url]
        rep.routed += 1
        b = self.model.block_tokens
        prefix_blocks = req.prefix_tokens // b if req.prefix else 0
        total = math.ceil((req.prefix_tokens + req.suffix_tokens + req.output_tokens) / b)
        seq = _Seq(index, req, prefix_blocks, total - prefix_blocks)
        self.prompt_tokens += req.prefix_tokens + req.suffix_tokens
        if total > self.model.kv_blocks:
            self._fail(rep, seq)
            return
        rep.waiting.append(seq)
        depth = rep.queue_depth()
        if depth > rep.max_queue:
            rep.max_queue = depth
        self._wake(rep, now)

    def _fail(self, rep: _Replica, seq: _Seq) -> None:
        self.failed += 1
        self.failed_indices.append(seq.index)
        self.router.end(rep.url)

    # -- replicas -------------------------------------------------------------------------

    def _wake(self, rep: _Replica, now: float) -> None:
        """A sequence is waiting: make sure a step boundary comes no later than the next one."""
        if not rep.busy:
            rep.busy = True
            rep.t0, rep.steps0, rep.dt = now, rep.steps, 0.0
            self._schedule(rep, now)
            return
        if rep.dt <= 0.0 or rep.prefilling:
            return  # a prefill step is running; its end is a boundary already
        done = int((now - rep.t0) / rep.dt)
        boundary = rep.t0 + (done + 1) * rep.dt
        scheduled_steps = rep.finishing[0][0] - rep.steps0 if rep.finishing else 0
        if done + 1 < scheduled_steps:
            self._schedule(rep, boundary)

    def _schedule(self, rep: _Replica, at: float) -> None:
        rep.version += 1
        self.order += 1
        heapq.heappush(self.events, (at, self.order, rep.index, rep.version))

    def boundary(self, rep: _Replica, now: float) -> None:
        """The end of a step (or of a stretch of decode steps): retire, admit, plan the next."""
        if rep.dt > 0.0:
            rep.steps = rep.steps0 + round((now - rep.t0) / rep.dt)
        elif rep.prefilling:
            rep.steps += 1
        for seq in rep.prefilling:
            ttft = now - seq.request.arrival
            self.ttft.append(ttft)
            self.firsts.append((seq.index, rep.index, ttft, seq.uncached_tokens, seq.hit_tokens))
        rep.prefilling.clear()
        finishing = rep.finishing
        while finishing and finishing[0][0] <= rep.steps:
            _, _, seq = heapq.heappop(finishing)
            rep.running -= 1
            rep.release(seq)
            self.completed += 1
            self.output_tokens += seq.request.output_tokens
            if now <= self.last_arrival:
                tenant = seq.request.tenant
                self.tenant_tokens[tenant] = (
                    self.tenant_tokens.get(tenant, 0) + seq.request.output_tokens
                )
            self.last_done = now
            self.router.end(rep.url)
        prefill_tokens = self._admit(rep, now)
        m = self.model
        step = m.step_base_s + m.step_per_seq_s * rep.running
        if prefill_tokens:
            rep.dt = 0.0
            self._schedule(rep, now + step + m.prefill_per_token_s * prefill_tokens)
        elif finishing:
            rep.t0, rep.steps0, rep.dt = now, rep.steps, step
            self._schedule(rep, now + (finishing[0][0] - rep.steps) * step)
        else:
            rep.busy = False
            rep.dt = 0.0
            rep.version += 1

    def _admit(self, rep: _Replica, now: float) -> int:
        m = self.model
        tokens = 0
        waiting = rep.waiting
        while rep.waiting_head < len(waiting) and rep.running < m.max_num_seqs:
            seq = waiting[rep.waiting_head]
            if now - seq.request.arrival > self.queue_timeout_s:
                rep.waiting_head += 1
                self._fail(rep, seq)
                continue
            hit = rep.hit_blocks(seq)
            uncached = seq.request.prefix_tokens + seq.request.suffix_tokens - hit * m.block_tokens
            if tokens and tokens + uncached > m.max_batched_tokens:
                break  # the step's prefill budget is spent: next step
            if not rep.try_reserve(seq, hit):
                break  # the KV cache is full: wait for sequences to finish
            rep.waiting_head += 1
            tokens += max(seq.uncached_tokens, 1)
            self.hit_tokens += seq.hit_tokens
            self.admitted_prompt_tokens += seq.request.prefix_tokens + seq.request.suffix_tokens
            rep.running += 1
            rep.prefilling.append(seq)
            seq.finish_step = rep.steps + seq.request.output_tokens
            heapq.heappush(rep.finishing, (seq.finish_step, seq.index, seq))
        if rep.waiting_head > 1024 and rep.waiting_head * 2 > len(waiting):
            del waiting[: rep.waiting_head]
            rep.waiting_head = 0
        return tokens

    def scrape(self) -> None:
        for rep in self.reps:
            load = self.router.load(rep.url)
            load.queue_depth = float(rep.queue_depth())
            load.running = float(rep.running)
            load.kv_cache = rep.kv_usage()

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> None:
        events = self.events
        trace = self.trace
        i, n = 0, len(trace)
        next_scrape = 0.0
        while i < n or events:
            t_arrival = trace[i].arrival if i < n else math.inf
            t_event = events[0][0] if events else math.inf
            now = min(t_arrival, t_event)
            if now >= next_scrape and self.scrape_interval_s > 0:
                self.scrape()
                self.released = True  # a replica may have room again
                next_scrape = (math.floor(now / self.scrape_interval_s) + 1) * (
                    self.scrape_interval_s
                )
            self.event_count += 1
            if t_arrival <= t_event:
                self.arrive(i, trace[i])
                i += 1
            else:
                at, _, r, version = heapq.heappop(events)
                rep = self.reps[r]
                if version == rep.version:
                    self.boundary(rep, at)
            if self.released:
                self.pump(now)
            if self.flow and not events and i >= n:
                # nothing left to free a replica: what is held waits out its TTL and is shed
                self.pump(now + self.flow.ttl)
        for rep in self.reps:  # anything left waiting can never be admitted: it failed
            for seq in rep.waiting[rep.waiting_head :]:
                self._fail(rep, seq)
            rep.waiting_head = len(rep.waiting)

    def per_request(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {
                "index": i,
                "replica": r,
                "ttft_s": ttft,
                "uncached_tokens": uncached,
                "hit_tokens": hit,
                "ok": True,
            }
            for i, r, ttft, uncached, hit in self.firsts
        ]
        out.extend({"index": i, "ok": False} for i in self.failed_indices)
        out.sort(key=lambda d: int(d["index"]))
        return out

    def metrics(self, wall_s: float) -> dict[str, Any]:
        ttft = sorted(self.ttft)
        total = len(self.trace)
        start = self.trace[0].arrival if self.trace else 0.0
        span = max(self.last_done - start, 1e-9)
        routed = [r.routed for r in self.reps]
        mean_routed = sum(routed) / len(routed) if routed else 0.0
        return {
            "policy": self.route.policy,
            "replicas": len(self.reps),
            "requests": total,
            "completed": self.completed,
            "failed": self.failed,
            "success_rate": round(self.completed / total, 4) if total else 1.0,
            "ttft_p50_s": _pct(ttft, 0.50),
            "ttft_p90_s": _pct(ttft, 0.90),
            "ttft_p99_s": _pct(ttft, 0.99),
            "throughput_tokens_s": round(self.output_tokens / span, 1),
            "prompt_tokens_s": round(self.admitted_prompt_tokens / span, 1),
            "cache_hit_rate": round(self.hit_tokens / self.admitted_prompt_tokens, 4)
            if self.admitted_prompt_tokens
            else 0.0,
            "requests_per_replica": routed,
            "load_spread": round(max(routed) / mean_routed, 3) if mean_routed else 0.0,
            "max_queue": max((r.max_queue for r in self.reps), default=0),
            "simulated_s": round(span, 3),
            "events": self.event_count,
            "wall_s": round(wall_s, 3),
            "tenant_output_tokens": dict(sorted(self.tenant_tokens.items())),
            **(self._classes() if self.qos is not None else {}),
        }

    def _classes(self) -> dict[str, Any]:
        """Flow control's figures: per priority, requests, completions, shed and TTFT; output
        tokens per tenant finished while requests still arrived (the saturated stretch)."""
        ttfts: dict[int, list[float]] = {}
        for index, _, ttft, _, _ in self.firsts:
            ttfts.setdefault(self.trace[index].priority, []).append(ttft)
        asked: dict[int, int] = {}
        for req in self.trace:
            asked[req.priority] = asked.get(req.priority, 0) + 1
        shed: dict[int, int] = {}
        for index in self.shed_indices:
            p = self.trace[index].priority
            shed[p] = shed.get(p, 0) + 1
        failed: dict[int, int] = {}
        for index in self.failed_indices:
            p = self.trace[index].priority
            failed[p] = failed.get(p, 0) + 1
        classes = {}
        for p in sorted(asked, reverse=True):
            got = sorted(ttfts.get(p, []))
            classes[str(p)] = {
                "requests": asked[p],
                "first_tokens": len(got),
                "shed": shed.get(p, 0),
                "failed": failed.get(p, 0),
                "ttft_p50_s": _pct(got, 0.50),
                "ttft_p99_s": _pct(got, 0.99),
            }
        return {"shed": len(self.shed_indices), "classes": classes}


def _chain(prefix: str, count: int) -> list[int]:
    out: list[int] = []
    h = zlib.crc32(prefix.encode())
    for k in range(count):
        h = zlib.crc32(k.to_bytes(4, "little"), h)
        out.append(h)
    return out


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 4)


def simulate_routing(
    trace: Sequence[TraceRequest],
    *,
    replicas: int,
    policy: str,
    model: ReplicaModel | None = None,
    seed: int = 0,
    queue_timeout_s: float = 60.0,
    scrape_interval_s: float = 1.0,
    router: Router | None = None,
    per_request: bool = False,
    qos: QosPolicy | None = None,
) -> dict[str, Any]:
    """Replay ``trace`` (sorted by arrival) on ``replicas`` simulated replicas with ``policy``.

    Returns one JSON-ready dict: ``ttft_p50_s``/``ttft_p90_s``/``ttft_p99_s`` (over completed
    requests; None when none completed), ``throughput_tokens_s`` (output tokens per second from
    the first arrival to the last completion), ``success_rate``, ``cache_hit_rate`` (prompt
    tokens served from the KV cache / prompt tokens admitted), ``requests_per_replica``,
    ``load_spread`` (busiest replica's requests / the mean), ``max_queue``, ``wall_s`` and more.
    ``router``: a :class:`Router` to use (its settings), else a fresh one seeded with ``seed``.
    ``per_request``: add ``requests_detail``, one dict per request in trace order: ``ok``, and
    for those that got a first token ``replica``, ``ttft_s``, ``uncached_tokens``, ``hit_tokens``.
    ``qos``: put the gateway's flow control in front (its :class:`~modelplane.gateway.FlowQueue`,
    with the trace's ``priority`` and ``tenant``): requests wait there while every replica is
    saturated; adds ``shed``, ``classes`` (per priority: requests, first_tokens, shed, failed,
    ttft_p50_s, ttft_p99_s, TTFT counted from the arrival at the gateway). Always:
    ``tenant_output_tokens``, output tokens per trace ``tenant`` of the requests finished while
    requests still arrived. Deterministic for a given trace, policy, model and seed (``wall_s`` aside).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy: expected one of {', '.join(POLICIES)}, got {policy!r}")
    if replicas < 1:
        raise ValueError("replicas: expected at least 1")
    if any(b.arrival < a.arrival for a, b in itertools.pairwise(trace)):
        trace = sorted(trace, key=lambda r: r.arrival)
    sim = _Simulation(
        trace,
        replicas,
        policy,
        model or ReplicaModel(),
        seed,
        queue_timeout_s,
        scrape_interval_s,
        router,
        qos,
    )
    start = time.perf_counter()
    sim.run()
    out = sim.metrics(time.perf_counter() - start)
    if per_request:
        out["requests_detail"] = sim.per_request()
    return out
