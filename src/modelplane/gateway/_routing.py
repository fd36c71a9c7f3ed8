"""Choosing where a request goes: a version by the traffic split, then a replica by policy.

Policies (``Endpoint.spec.routing.policy``):

* ``round-robin`` — each replica in turn;
* ``least-request`` — fewest requests in flight through this gateway (ties in turn);
* ``load`` — queue depth and KV-cache use scraped from the replicas' ``/metrics``, plus in flight;
* ``prefix-cache`` — the replica that most recently served the longest run of the prompt's
  leading blocks (its KV cache most likely holds them); a prompt nobody has seen goes to the
  replica its first block hashes to (rendezvous hashing, stable when replicas come and go);
* ``session-affinity`` — the replica the session key hashes to (rendezvous);
* ``prefix-load`` — prefix match traded against load, never sending to a saturated replica
  (queue or KV cache full, or too many in flight) while an unsaturated one exists.

A request for a LoRA adapter (``route.adapter``) goes, by the policy, among the replicas that
hold the adapter already (no cold load) and are not saturated nor busier than the least busy
replica by more than ``adapter_slack`` requests in flight; when none is, among all (a replica
then loads it: a hot adapter spreads instead of queueing on its first holder).

A prompt's blocks are chained CRC-32 hashes of ``block_chars``-byte slices of its text, so block
``i`` identifies the whole prefix up to it. What each replica served is remembered in an LRU of
block hashes per replica (``blocks_per_replica``) with an inverted index block -> replicas, so a
match costs one dict lookup per block, not one per replica.

Everything here runs on the serving event loop: no locks.
"""

from __future__ import annotations

import math
import random
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from modelplane.api import ROUTING_POLICIES
from modelplane.gateway._matches import headers_fit
from modelplane.gateway._table import EndpointRoute, Replica, VersionRoute

#: the policies an Endpoint may name (``spec.routing.policy``)
POLICIES = ROUTING_POLICIES


def prompt_blocks(text: str, block_chars: int = 64, max_blocks: int = 128) -> list[int]:
    """Chained hashes of the prompt's leading blocks (a trailing partial block is left out)."""
    data = text.encode()
    out: list[int] = []
    h = 0
    end = min(len(data) // block_chars, max_blocks) * block_chars
    for i in range(0, end, block_chars):
        h = zlib.crc32(data[i : i + block_chars], h)
        out.append(h)
    return out


def pick_version(
    route: EndpointRoute,
    session: str | None,
    rnd: random.Random,
    headers: Mapping[str, str] | None = None,
) -> VersionRoute | None:
    """The version of the first header route whose headers all match (``headers`` keyed by
    lowercase name) when it has ready replicas; else by weight among those with ready replicas,
    a session always getting the same one while the weights stay (and moving only towards
    versions whose weight grew)."""
    if headers is not None:
        for header_route in route.header_routes:
            if headers_fit(header_route.headers, headers):
                pinned = next(
                    (v for v in route.versions if v.name == header_route.version and v.replicas),
                    None,
                )
                if pinned is not None:
                    return pinned
    live = [v for v in route.versions if v.replicas and v.weight > 0]
    if not live:
        # weights name only versions without replicas: serve from what runs rather than fail
        live = [v for v in route.versions if v.replicas]
        if not live:
            return None
        return live[0]
    if len(live) == 1:
        return live[0]
    total = sum(v.weight for v in live)
    if route.sticky and session:
        x: float = zlib.crc32(f"{route.key}|{session}".encode()) % total
    else:
        x = rnd.random() * total
    for v in live:
        x -= v.weight
        if x < 0:
            return v
    return live[-1]


@dataclass(slots=True)
class ReplicaLoad:
    """What the gateway knows of one replica's load."""

    in_flight: int = 0
    queue_depth: float = 0.0
    running: float = 0.0
    kv_cache: float = 0.0


class _PrefixMemory:
    """Per replica, an LRU of block hashes it served; an inverted index block -> replicas."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.lru: dict[str, OrderedDict[int, None]] = {}
        self.owners: dict[int, dict[str, None]] = {}

    def longest(self, blocks: Sequence[int], candidates: set[str]) -> tuple[set[str], int]:
        """Candidates holding the longest run of leading blocks, and its length."""
        current = candidates
        depth = 0
        owners = self.owners
        for h in blocks:
            held = owners.get(h)
            if not held:
                break
            now = {u for u in current if u in held}
            if not now:
                break
            current, depth = now, depth + 1
        best = current if depth else set()
        return best, depth

    def record(self, url: str, blocks: Sequence[int]) -> None:
        lru = self.lru.get(url)
        if lru is None:
            lru = self.lru[url] = OrderedDict()
        owners = self.owners
        for h in blocks:
            if h in lru:
                lru.move_to_end(h)
            else:
                lru[h] = None
                owners.setdefault(h, {})[url] = None
        while len(lru) > self.capacity:
            old, _ = lru.popitem(last=False)
            held = owners.get(old)
            if held is not None:
                held.pop(url, None)
                if not held:
                    del owners[old]

    def forget(self, url: str) -> None:
        for h in self.lru.pop(url, ()):
            held = self.owners.get(h)
            if held is not None:
                held.pop(url, None)
                if not held:
                    del self.owners[h]


class Router:
    """Replica choice for every endpoint of one gateway; holds the load and prefix memories.

    ``saturation_queue``/``saturation_kv``/``max_in_flight``: a replica at or above any of them is
    saturated for ``prefix-load``. ``prefix_weight``: how many requests in flight one fully
    matched prompt is worth when ``prefix-load`` trades cache hits against load. The default, 64,
    keeps a prompt on the replica holding its prefix until that replica is clearly busier; with 4,
    deep queues outweighed any cache hit and caches thrashed (``modelplane bench routing``).
    ``adapter_slack``: how many more requests in flight a replica holding a request's LoRA adapter
    may have than the least busy replica and still be preferred (``benchmarks/adapters.py``).
    """

    def __init__(
        self,
        *,
        blocks_per_replica: int = 8192,
        saturation_queue: float = 4.0,
        saturation_kv: float = 0.9,
        max_in_flight: int = 64,
        prefix_weight: float = 64.0,
        adapter_slack: int = 2,
        seed: int | None = None,
    ) -> None:
        self.loads: dict[str, ReplicaLoad] = {}
        self.prefixes = _PrefixMemory(blocks_per_replica)
        self.saturation_queue = saturation_queue
        self.saturation_kv = saturation_kv
        self.max_in_flight = max_in_flight
        self.prefix_weight = prefix_weight
        self.adapter_slack = adapter_slack
        self.random = random.Random(seed)
        self._turn: dict[tuple[str, str], int] = {}
        #: called after :meth:`end` (a replica has room again): flow control lets requests on
        self.on_release: Callable[[str], None] | None = None

    # -- load bookkeeping -------------------------------------------------------------------

    def load(self, url: str) -> ReplicaLoad:
        load = self.loads.get(url)
        if load is None:
            load = self.loads[url] = ReplicaLoad()
        return load

    def begin(self, url: str) -> None:
        self.load(url).in_flight += 1

    def end(self, url: str) -> None:
        load = self.loads.get(url)
        if load is not None and load.in_flight > 0:
            load.in_flight -= 1
        if self.on_release is not None:
            self.on_release(url)

    def headroom(
        self,
        urls: Sequence[str],
        *,
        queue_depth: float,
        kv_cache: float,
        max_in_flight: int | None = None,
    ) -> float:
        """How many more requests ``urls`` take before every one is saturated: none on a
        replica whose scraped queue depth or KV-cache use reached the bound, else the in-flight
        bound less what is in flight (unbounded without one). No replica: unbounded (the request
        goes on to the gateway's usual answer: a cold start's hold, or 503)."""
        if not urls:
            return math.inf
        room = 0.0
        for url in urls:
            load = self.loads.get(url)
            if load is None:
                room += math.inf if max_in_flight is None else max_in_flight
            elif load.queue_depth >= queue_depth or load.kv_cache >= kv_cache:
                continue
            elif max_in_flight is None:
                room += math.inf
            else:
                room += max(0, max_in_flight - load.in_flight)
        return room

    def _pressure(self, url: str) -> float:
        load = self.loads.get(url)
        if load is None:
            return 0.0
        return max(load.in_flight, load.running) + load.queue_depth + 8.0 * load.kv_cache

    def saturated(self, url: str) -> bool:
        load = self.loads.get(url)
        if load is None:
            return False
        return (
            load.queue_depth >= self.saturation_queue
            or load.kv_cache >= self.saturation_kv
            or load.in_flight >= self.max_in_flight
        )

    # -- choosing ---------------------------------------------------------------------------

    def pick(
        self,
        route: EndpointRoute,
        version: VersionRoute,
        *,
        session: str | None = None,
        blocks: Sequence[int] = (),
        exclude: frozenset[str] | set[str] = frozenset(),
    ) -> Replica | None:
        """A replica of ``version`` not in ``exclude`` (URLs already tried), or None."""
        replicas = version.replicas
        if exclude:
            replicas = tuple(r for r in replicas if r.url not in exclude)
        if not replicas:
            return None
        if route.adapter is not None:
            replicas = self._holding(route.adapter, replicas)
        if len(replicas) == 1:
            chosen = replicas[0]
        else:
            chosen = self._choose(route, version, replicas, session, blocks)
        if blocks and route.policy in ("prefix-cache", "prefix-load"):
            self.prefixes.record(chosen.url, blocks)
        return chosen

    def _choose(
        self,
        route: EndpointRoute,
        version: VersionRoute,
        replicas: tuple[Replica, ...],
        session: str | None,
        blocks: Sequence[int],
    ) -> Replica:
        policy = route.policy
        if policy == "round-robin":
            return replicas[self._next_turn(route, version) % len(replicas)]
        if policy == "load":
            return self._least(replicas, self._pressure, self._next_turn(route, version))
        if policy == "session-affinity" and session:
            return _rendezvous(replicas, zlib.crc32(session.encode()))
        if policy == "prefix-cache" and blocks:
            return self._prefix(replicas, blocks)
        if policy == "prefix-load" and (blocks or session):
            return self._prefix_load(route, version, replicas, blocks, session)
        return self._least(replicas, self._in_flight, self._next_turn(route, version))

    def _holding(self, adapter: str, replicas: tuple[Replica, ...]) -> tuple[Replica, ...]:
        """The replicas holding ``adapter`` that are not much busier than the least busy one
        (module docstring), else all of ``replicas``."""
        holders = [r for r in replicas if adapter in r.adapters and not self.saturated(r.url)]
        if not holders:
            return replicas
        within = min(self._in_flight(r.url) for r in replicas) + self.adapter_slack
        return tuple(r for r in holders if self._in_flight(r.url) <= within) or replicas

    def _next_turn(self, route: EndpointRoute, version: VersionRoute) -> int:
        key = (route.key, version.name)
        turn = self._turn.get(key, -1) + 1
        self._turn[key] = turn
        return turn

    def _in_flight(self, url: str) -> float:
        load = self.loads.get(url)
        return 0.0 if load is None else float(load.in_flight)

    @staticmethod
    def _least(replicas: tuple[Replica, ...], cost: Callable[[str], float], start: int) -> Replica:
        n = len(replicas)
        best = replicas[start % n]
        best_cost = cost(best.url)
        for i in range(1, n):
            r = replicas[(start + i) % n]
            c = cost(r.url)
            if c < best_cost:
                best, best_cost = r, c
        return best

    def _prefix(self, replicas: tuple[Replica, ...], blocks: Sequence[int]) -> Replica:
        held, depth = self.prefixes.longest(blocks, {r.url for r in replicas})
        if depth:
            matched = [r for r in replicas if r.url in held]
            return self._least(tuple(matched), self._in_flight, 0)
        return _rendezvous(replicas, blocks[0])

    def _prefix_load(
        self,
        route: EndpointRoute,
        version: VersionRoute,
        replicas: tuple[Replica, ...],
        blocks: Sequence[int],
        session: str | None,
    ) -> Replica:
        usable = tuple(r for r in replicas if not self.saturated(r.url)) or replicas
        pressure = self._pressure
        if blocks:
            held, depth = self.prefixes.longest(blocks, {r.url for r in usable})
            bonus = self.prefix_weight * depth / len(blocks)
        else:
            held, depth, bonus = set(), 0, 0.0
        if not depth:
            if session:
                # no cache to aim at: keep the session together unless its replica is busier
                home = _rendezvous(usable, zlib.crc32(session.encode()))
                least = self._least(usable, pressure, self._next_turn(route, version))
                return home if pressure(home.url) <= pressure(least.url) + 1 else least
            return self._least(usable, pressure, self._next_turn(route, version))
        best = usable[0]
        best_score = float("-inf")
        for r in usable:
            score = (bonus if r.url in held else 0.0) - pressure(r.url)
            if score > best_score:
                best, best_score = r, score
        return best


_MASK64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64's finaliser: every input bit moves every output bit (CRC-32 alone is affine in
    its seed, so rendezvous scores built on it favour some replicas for all keys)."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK64
    return x ^ (x >> 31)


def _rendezvous(replicas: Sequence[Replica], key: int) -> Replica:
    best = replicas[0]
    best_score = -1
    for r in replicas:
        score = _mix64(zlib.crc32(r.url.encode()) << 32 ^ (key & _MASK64))
        if score > best_score:
            best, best_score = r, score
    return best
