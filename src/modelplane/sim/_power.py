"""A GPU power model (latency and energy against a power cap) and a decode-serving simulator.

Calibration: Samsi et al., "From Words to Watts: Benchmarking the Energy Costs of Large Language
Model Inference", IEEE HPEC 2023 (arXiv:2310.03003), measured LLaMA inference on V100 GPUs with
the power limit lowered from 250 W to 175 W: about 23% less energy for about 6-7% more time
(:data:`CALIBRATION`). The model: a busy GPU without a cap draws ``busy_share`` of its TDP; under a
cap ``C`` its clock drops to the frequency ratio ``x`` at which ``idle + (busy - idle) * x**3 =
C`` (dynamic power about cubic in frequency under DVFS), and a decode step takes ``memory_bound
+ (1 - memory_bound) / x`` of its uncapped time (the memory-bound share does not slow down with
the clock). ``busy_share`` and ``memory_bound`` are solved from the published pair, so the
model reproduces it exactly; other caps are interpolated by the same laws.

:func:`simulate_power` replays Poisson requests on replicas (one GPU each, continuous batching:
a decode step takes ``step_s + step_per_seq_s * batch`` seconds, times the slowdown of the GPU's
cap) and integrates energy (busy draw while a batch runs, idle draw otherwise), giving per
replica tokens, joules, tokens per joule and per-request TPOT.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CALIBRATION",
    "PowerModel",
    "ReplicaLoad",
    "simulate_power",
]

#: (uncapped W, capped W, energy saved, time added): Samsi et al., HPEC 2023, V100 power capping
CALIBRATION = (250.0, 175.0, 0.23, 0.065)
#: idle draw as a share of TDP, used when a device does not say (V100: about 50 W of 250 W)
IDLE_SHARE = 0.2
GAMMA = 3.0


@dataclass(frozen=True)
class PowerModel:
    """One GPU: its TDP, idle draw, and the two calibrated shares (see the module docstring)."""

    tdp_watts: float
    idle_watts: float
    busy_share: float
    memory_bound: float

    @classmethod
    def calibrated(cls, tdp_watts: float, idle_watts: float | None = None) -> PowerModel:
        """The model of a ``tdp_watts`` GPU, with the shares solved from :data:`CALIBRATION`."""
        full, capped, saved, added = CALIBRATION
        slow = 1.0 + added
        # energy ratio = (capped / busy) * slowdown  =>  the busy draw the measurement implies
        busy = capped * slow / (1.0 - saved)
        idle = IDLE_SHARE * full
        x = ((capped - idle) / (busy - idle)) ** (1.0 / GAMMA)
        memory_bound = 1.0 - (slow - 1.0) / (1.0 / x - 1.0)
        idle_w = idle_watts if idle_watts is not None else IDLE_SHARE * tdp_watts
        return cls(tdp_watts, idle_w, busy / full, memory_bound)

    @property
    def busy_watts(self) -> float:
        return self.busy_share * self.tdp_watts

    def frequency(self, cap_watts: float | None) -> float:
        """Clock ratio under ``cap_watts`` (1.0 uncapped or when the cap is above the draw)."""
        if cap_watts is None or cap_watts >= self.busy_watts:
            return 1.0
        span = self.busy_watts - self.idle_watts
        return float(max(1e-3, max(cap_watts - self.idle_watts, 0.0) / span) ** (1.0 / GAMMA))

    def slowdown(self, cap_watts: float | None) -> float:
        """How much longer a decode step takes under ``cap_watts`` (1.0 uncapped)."""
        x = self.frequency(cap_watts)
        return self.memory_bound + (1.0 - self.memory_bound) / x

    def draw(self, cap_watts: float | None) -> float:
        """Watts drawn while busy under ``cap_watts``."""
        if cap_watts is None:
            return self.busy_watts
        return min(self.busy_watts, max(cap_watts, self.idle_watts))


@dataclass
class ReplicaLoad:
    """One replica (one GPU) and what it serves: Poisson requests of geometric output lengths."""

    name: str
    endpoint: str
    priority: int
    rate_per_s: float
    mean_tokens: float = 256.0
    step_s: float = 0.012  # decode step at batch 1 (an 8B model on one H100-class GPU)
    step_per_seq_s: float = 0.0004  # added per sequence in the batch
    max_batch: int = 64
    model: PowerModel = field(default_factory=lambda: PowerModel.calibrated(700.0, 90.0))


def _arrivals(load: ReplicaLoad, duration_s: float, rng: random.Random) -> list[tuple[float, int]]:
    out: list[tuple[float, int]] = []
    t = rng.expovariate(load.rate_per_s)
    p = 1.0 / load.mean_tokens
    while t < duration_s:
        tokens = 1
        while rng.random() > p and tokens < 8 * load.mean_tokens:
            tokens += 1
        out.append((t, tokens))
        t += rng.expovariate(load.rate_per_s)
    return out


def _replay(
    load: ReplicaLoad, cap: float | None, arrivals: list[tuple[float, int]]
) -> dict[str, Any]:
    """Continuous batching on one GPU under ``cap``: tokens, joules and per-request TPOT."""
    slow = load.model.slowdown(cap)
    busy_w, idle_w = load.model.draw(cap), load.model.idle_watts
    t = 0.0
    joules = 0.0
    tokens = 0
    waiting = list(arrivals)
    waiting.reverse()  # pop from the end: earliest first
    active: list[list[float]] = []  # [tokens left, first token time, tokens done]
    tpot: list[float] = []
    queue: list[tuple[float, int]] = []
    while waiting or active or queue:
        while waiting and waiting[-1][0] <= t:
            heapq.heappush(queue, waiting.pop())
        while queue and len(active) < load.max_batch:
            _, n = heapq.heappop(queue)
            active.append([float(n), -1.0, 0.0])
        if not active:
            nxt = waiting[-1][0]
            joules += (nxt - t) * idle_w
            t = nxt
            continue
        step = (load.step_s + load.step_per_seq_s * len(active)) * slow
        t += step
        joules += step * busy_w
        tokens += len(active)
        still: list[list[float]] = []
        for seq in active:
            if seq[1] < 0:
                seq[1] = t  # first token (the prefill is folded into the first step)
            seq[0] -= 1
            seq[2] += 1
            if seq[0] > 0:
                still.append(seq)
            elif seq[2] > 1:
                tpot.append((t - seq[1]) / (seq[2] - 1))
        active = still
    return {"tokens": tokens, "joules": joules, "seconds": t, "tpot": tpot}


def simulate_power(
    loads: list[ReplicaLoad],
    caps: dict[str, float | None],
    *,
    duration_s: float = 600.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Replay every replica of ``loads`` under its cap (``caps[name]``; None: uncapped).

    The same arrivals (seeded per replica) whatever the caps, so runs compare request by request.
    Returns per replica ``tokens``, ``joules``, ``tokens_per_joule`` and the TPOT samples, and
    per endpoint the same sums.
    """
    replicas: dict[str, Any] = {}
    endpoints: dict[str, dict[str, Any]] = {}
    for i, load in enumerate(loads):
        arrivals = _arrivals(load, duration_s, random.Random(seed * 7919 + i))
        row = _replay(load, caps.get(load.name), arrivals)
        row["tokens_per_joule"] = row["tokens"] / row["joules"] if row["joules"] else 0.0
        row["priority"] = load.priority
        replicas[load.name] = row
        ep = endpoints.setdefault(
            load.endpoint, {"tokens": 0, "joules": 0.0, "tpot": [], "priority": load.priority}
        )
        ep["tokens"] += row["tokens"]
        ep["joules"] += row["joules"]
        ep["tpot"].extend(row["tpot"])
    for ep in endpoints.values():
        ep["tokens_per_joule"] = ep["tokens"] / ep["joules"] if ep["joules"] else 0.0
    return {"replicas": replicas, "endpoints": endpoints}
