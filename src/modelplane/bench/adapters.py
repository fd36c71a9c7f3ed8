"""Adapter benchmark: adapter-aware routing against adapter-blind routing (cold loads, TTFT),
simulated for many adapters and measured on SmolLM2 with real peft adapters.

Two parts, one run:

* **real** — a continuous-batching SmolLM2 engine (CPU) with :class:`~modelplane.serving.
  AdapterSet` room for one adapter and two LoRA adapters made with peft (rank 8 on q/k/v/o): the
  time to first token of a request whose adapter is resident (warm), of one that must load it
  first (cold: the other adapter is unloaded, this one verified and loaded from the artifact
  store), of a base request while adapters are held (``base``) and before any was (``plain``).
  ``cold_load_s`` (the median time from admission until the adapter was ready, cold requests)
  is what a cold load costs.
* **simulated** — ``replicas`` replicas, each holding at most ``capacity`` adapters (least recently
  used out), ``adapters`` adapters with Zipf(1.1) popularity, Poisson arrivals. A replica runs one
  prefill at a time (``prefill_s``), preceded by a load (``cold_load_s``, 1 s by default: about
  what the real part measured on the shared CPU; fixed so that the simulated figures do not
  follow the machine's noise) when it does not hold the request's adapter; decoding overlaps and is left out. The gateway's own
  :class:`~modelplane.gateway.Router` chooses (policy ``least-request``, requests in flight until
  their first token): **aware** sees which replicas hold each adapter, as
  ``status.replicas[].adapters`` tells it (here without the status's delay), **blind** does not.

Figures: cold-load rate and TTFT p50/p99 of each, and the ratios blind/aware (above 1: aware wins).
Progress on stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import random
import statistics
import tempfile
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelplane.bench._figures import parse_sized, percentile, print_summary, progress
from modelplane.bench.batching import find_model
from modelplane.gateway import EndpointRoute, Replica, Router, VersionRoute

_say = progress("adapters")
PROMPT = "Write one sentence about the sea."


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python benchmarks/adapters.py", description=__doc__)
    p.add_argument("--model-dir", default=None, help="SmolLM2 safetensors folder")
    p.add_argument("--samples", type=int, default=6, help="real requests of each kind")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1, as the batching benchmark: on a shared machine more"
        " threads than free cores slowed every forward pass)",
    )
    p.add_argument("--replicas", type=int, default=8)
    p.add_argument("--capacity", type=int, default=4, help="adapters resident per replica")
    p.add_argument("--adapters", type=int, default=64)
    p.add_argument("--rate", type=float, default=8.0, help="simulated requests per second")
    p.add_argument(
        "--cold-load-s",
        type=float,
        default=1.0,
        help="simulated adapter load time (default 1 s; the real part measures SmolLM2's)",
    )
    p.add_argument("--duration", type=float, default=600.0, help="simulated seconds of arrivals")
    p.add_argument("--prefill-s", type=float, default=0.05, help="simulated prefill per request")
    p.add_argument("--seed", type=int, default=7)
    return p


# -- the real part --------------------------------------------------------------------------------


def _make_adapters(base: Path, work: Path, home: Path) -> dict[str, str]:
    """Two seeded random LoRA adapters of ``base`` imported into the store at ``home``: name ->
    digest."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from modelplane.serving import ArtifactStore

    store = ArtifactStore(home)
    out: dict[str, str] = {}
    for seed, name in enumerate(("alpha", "beta")):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
        config = LoraConfig(
            r=8,
            lora_alpha=16,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            init_lora_weights=False,
        )
        get_peft_model(model, config).save_pretrained(str(work / name))
        out[name] = store.import_path(work / name).digest
    return out


async def _ttft(
    engine: Any, adapters: Any, adapter: str | None, loads: list[float] | None = None
) -> float:
    """A request's time to first token; ``loads`` gets the time its adapter took to be ready."""
    from modelplane.serving import GenerationRequest

    start = time.perf_counter()
    if adapter is not None:
        await adapters.acquire(adapter)
        if loads is not None:
            loads.append(time.perf_counter() - start)
    request = GenerationRequest(PROMPT, 4, temperature=0.0, adapter=adapter)
    try:
        async for _ in engine.generate(request):
            return time.perf_counter() - start
    finally:
        if adapter is not None:
            adapters.release(adapter)
    return time.perf_counter() - start


async def _measure(engine: Any, adapters: Any, samples: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"plain": [], "base": [], "warm": [], "cold": [], "load": []}
    for _ in range(samples + 1):  # the first warms torch up
        out["plain"].append(await _ttft(engine, adapters, None))
    del out["plain"][0]
    await _ttft(engine, adapters, "alpha")
    for i in range(samples):
        out["base"].append(await _ttft(engine, adapters, None))
        out["warm"].append(await _ttft(engine, adapters, ("alpha", "beta")[i % 2]))
        # the other adapter: not resident (room for one), so it is loaded first
        out["cold"].append(await _ttft(engine, adapters, ("beta", "alpha")[i % 2], out["load"]))
    return out


def real_case(model_dir: str | None, samples: int, threads: int = 1) -> dict[str, Any]:
    """TTFT of base, warm-adapter and cold-adapter requests on SmolLM2 (module docstring)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _real_case(model_dir, samples) | {"torch_threads": threads}
    finally:
        torch.set_num_threads(before)  # main may run inside a test process


def _real_case(model_dir: str | None, samples: int) -> dict[str, Any]:
    from modelplane.serving import AdapterSet
    from modelplane.serving.worker import load_engine

    base = find_model(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        digests = _make_adapters(base, work, work / "home")
        engine = load_engine(base)
        try:
            adapters = AdapterSet(engine, work / "home", capacity=1)
            for name, digest in digests.items():
                adapters.register(name, digest)
            runs = asyncio.run(_measure(engine, adapters, samples))
        finally:
            engine.close()
    medians = {k: statistics.median(v) for k, v in runs.items()}
    return {
        "samples": samples,
        "ttft_plain_s": round(medians["plain"], 4),
        "ttft_base_s": round(medians["base"], 4),
        "ttft_warm_s": round(medians["warm"], 4),
        "ttft_cold_s": round(medians["cold"], 4),
        "cold_load_s": round(medians["load"], 4),
        "cold_over_warm": round(medians["cold"] / medians["warm"], 2),
        "base_over_plain": round(medians["base"] / medians["plain"], 2),
        "loads": adapters.loads,
    }


# -- the simulated part ---------------------------------------------------------------------------


def _zipf(n: int, s: float) -> list[float]:
    weights = [1.0 / (k + 1) ** s for k in range(n)]
    total = sum(weights)
    return [w / total for w in weights]


class _SimReplica:
    def __init__(self, url: str, capacity: int) -> None:
        self.url = url
        self.capacity = capacity
        self.held: OrderedDict[str, None] = OrderedDict()
        self.free_at = 0.0

    def serve(self, adapter: str, now: float, prefill: float, load: float) -> tuple[float, bool]:
        """(first-token time, was cold) of a request for ``adapter`` arriving at ``now``."""
        start = max(now, self.free_at)
        cold = adapter not in self.held
        if cold:
            while len(self.held) >= self.capacity:
                self.held.popitem(last=False)
            self.held[adapter] = None
        self.held.move_to_end(adapter)
        self.free_at = start + (load if cold else 0.0) + prefill
        return self.free_at, cold


def simulate(args: argparse.Namespace, cold_load_s: float, aware: bool) -> dict[str, Any]:
    """One simulated run (module docstring): cold-load rate and TTFT percentiles."""
    rnd = random.Random(args.seed)
    names = [f"adapter-{i}" for i in range(args.adapters)]
    weights = _zipf(args.adapters, 1.1)
    replicas = [_SimReplica(f"http://r{i}/v1", args.capacity) for i in range(args.replicas)]
    router = Router(seed=args.seed)
    pending: list[tuple[float, str]] = []  # (first-token time, url): in flight until then
    now, ttfts, colds = 0.0, [], 0
    while True:
        now += rnd.expovariate(args.rate)
        if now > args.duration:
            break
        while pending and pending[0][0] <= now:
            router.end(heapq.heappop(pending)[1])
        adapter = rnd.choices(names, weights)[0]
        version = VersionRoute(
            "v1",
            100,
            tuple(
                Replica(r.url, r.url, "v1", adapters=frozenset(r.held) if aware else frozenset())
                for r in replicas
            ),
        )
        route = EndpointRoute("bench", "ep", "m", "chat", (version,), adapter=adapter)
        chosen = router.pick(route, version)
        assert chosen is not None
        replica = next(r for r in replicas if r.url == chosen.url)
        router.begin(replica.url)
        first, cold = replica.serve(adapter, now, args.prefill_s, cold_load_s)
        heapq.heappush(pending, (first, replica.url))
        ttfts.append(first - now)
        colds += cold
    return {
        "requests": len(ttfts),
        "cold_load_rate": round(colds / max(1, len(ttfts)), 4),
        "ttft_p50_s": round(percentile(ttfts, 0.5), 4),
        "ttft_p99_s": round(percentile(ttfts, 0.99), 4),
    }


def main(argv: Sequence[str] | None = None) -> int:
    quick = {"samples": 2, "duration": 60.0, "adapters": 32}
    args = parse_sized(_parser(), argv, quick)
    _say("real: SmolLM2 with two peft adapters, room for one")
    real = real_case(args.model_dir, args.samples, args.threads)
    _say(f"real: {real}")
    sim: dict[str, Any] = {
        k: getattr(args, k)
        for k in ("replicas", "capacity", "adapters", "rate", "duration", "prefill_s", "seed")
    }
    sim["cold_load_s"] = args.cold_load_s
    for mode in ("blind", "aware"):
        sim[mode] = simulate(args, args.cold_load_s, aware=mode == "aware")
        _say(f"simulated {mode}: {sim[mode]}")
    blind, aware = sim["blind"], sim["aware"]
    sim["cold_loads_blind_over_aware"] = round(
        blind["cold_load_rate"] / max(aware["cold_load_rate"], 1e-9), 2
    )
    for q in ("p50", "p99"):
        sim[f"ttft_{q}_blind_over_aware"] = round(
            blind[f"ttft_{q}_s"] / max(aware[f"ttft_{q}_s"], 1e-9), 2
        )
    print_summary({"benchmark": "adapters", "quick": bool(args.quick), "real": real, "sim": sim})
    return 0
