"""The replica autoscaler's window maths, after Knative's KPA: a stable and a panic window.

Pure and clock-free: each tick the caller :meth:`KPA.record`\\ s what the ready replicas reported
(the metric summed over them, and how many they were) at time ``now``, then asks
:meth:`KPA.decide` for the replicas wanted. The rules, as Knative states them:

* **stable**: wanted = ``ceil(mean over stableWindow of the summed metric / target)``;
* **panic**: the same over ``panicWindow``; when it reaches ``panicThreshold`` times the ready
  replicas (200% by default) the autoscaler panics: it follows the panic window, scales up only,
  never down (the most it wanted since the panic began, and no fewer than were ready when it
  began), and leaves panic once a whole stable window passed without reason to panic;
* **scale-down delay**: it scales down only to the most it wanted over ``scaleDownDelay``;
* **scale to zero** (``min: 0`` with ``scaleToZero``): zero only once no traffic was seen for a
  whole stable window; otherwise at least one;
* the result is held within ``min`` and ``max``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from modelplane.api import parse_duration

Mode = Literal["stable", "panic"]

# a ratio such as 4.0000000001 / 2 is 2 replicas, not 3
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """What ``spec.replicas`` asks of the autoscaler, in seconds and counts."""

    metric: str
    target: float
    min_replicas: int = 1
    max_replicas: int = 1
    scale_to_zero: bool = False
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0
    scale_down_delay: float = 0.0

    @classmethod
    def of(cls, replicas: dict[str, Any]) -> ScalingPolicy | None:
        """The policy of a validated ``spec.replicas``; None without ``autoscaling``."""
        auto = replicas.get("autoscaling")
        if not auto:
            return None
        low = int(replicas.get("min", 1))
        return cls(
            metric=str(auto["metric"]),
            target=float(auto["target"]),
            min_replicas=low,
            max_replicas=int(replicas.get("max") or max(low, 1)),
            scale_to_zero=bool(replicas.get("scaleToZero")) and low == 0,
            stable_window=parse_duration(str(auto.get("stableWindow") or "60s")),
            panic_window=parse_duration(str(auto.get("panicWindow") or "6s")),
            panic_threshold=float(auto.get("panicThreshold") or 2.0),
            scale_down_delay=parse_duration(str(auto.get("scaleDownDelay") or "0s")),
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """Replicas wanted, and why: the mode, the mean per replica it saw, the ready count."""

    desired: int
    mode: Mode
    observed: float | None
    ready: int
    message: str


class KPA:
    """The state of one Endpoint's autoscaler: samples, panic, recent decisions (module doc)."""

    def __init__(self, policy: ScalingPolicy, now: float) -> None:
        self.policy = policy
        self._samples: deque[tuple[float, float, int]] = deque()
        self._wanted: deque[tuple[float, int]] = deque()
        self._panic_since: float | None = None
        self._max_panic = 0
        self._last_traffic = now
        # Knative's initial scale: one, until the metric or a quiet stable window says otherwise
        self.desired = max(policy.min_replicas, 1)
        self.last_sample: float | None = None

    def record(self, now: float, total: float, ready: int) -> None:
        """What ``ready`` replicas reported at ``now``: ``total`` is the metric summed over them."""
        self._samples.append((now, max(0.0, total), ready))
        self.last_sample = now
        if total > 0:
            self._last_traffic = now
        horizon = now - self.policy.stable_window
        while self._samples and self._samples[0][0] <= horizon:
            self._samples.popleft()

    def saw_traffic(self, now: float) -> None:
        """A request came (the gateway's demand for a scaled-to-zero Endpoint)."""
        self._last_traffic = max(self._last_traffic, now)

    def decide(self, now: float, ready: int) -> Decision:
        """The replicas wanted at ``now`` with ``ready`` replicas ready (module docstring)."""
        p = self.policy
        stable = self._window(now, p.stable_window)
        if stable is None:  # nothing read yet (no ready replica): hold what was decided
            return self._held(now, ready)
        panic = self._window(now, p.panic_window) or stable
        want_stable = _ceil(stable[0] / p.target)
        want_panic = _ceil(panic[0] / p.target)
        if want_panic / max(1, ready) >= p.panic_threshold:
            if self._panic_since is None:
                self._max_panic = ready
            self._panic_since = now
        elif self._panic_since is not None and now - self._panic_since >= p.stable_window:
            self._panic_since = None
        mode: Mode = "stable" if self._panic_since is None else "panic"
        if mode == "panic":
            self._max_panic = max(self._max_panic, want_panic)
            wanted, seen = self._max_panic, panic
        else:
            wanted, seen = want_stable, stable
        wanted = self._delayed(now, wanted)
        desired = self._bounded(now, wanted)
        self.desired = desired
        window = p.panic_window if mode == "panic" else p.stable_window
        message = (
            f"{p.metric} {seen[1]:.3g} per replica over {window:g}s on {ready} ready"
            f" (target {p.target:g}): {wanted} wanted, {desired} within"
            f" [{0 if p.scale_to_zero else max(p.min_replicas, 1)}, {p.max_replicas}]"
        )
        return Decision(desired, mode, float(f"{seen[1]:.3g}"), ready, message)

    def _window(self, now: float, seconds: float) -> tuple[float, float] | None:
        """(mean summed metric, mean per replica) of the samples within ``seconds`` of now."""
        inside = [(t, s, r) for t, s, r in self._samples if t > now - seconds]
        if not inside:
            return None
        total = sum(s for _, s, _ in inside)
        replicas = sum(r for _, _, r in inside)
        return total / len(inside), (total / replicas if replicas else 0.0)

    def _delayed(self, now: float, wanted: int) -> int:
        delay = self.policy.scale_down_delay
        if delay <= 0:
            return wanted
        self._wanted.append((now, wanted))
        while self._wanted and self._wanted[0][0] < now - delay:
            self._wanted.popleft()
        return max(w for _, w in self._wanted)

    def _bounded(self, now: float, wanted: int) -> int:
        p = self.policy
        low = max(p.min_replicas, 1)
        if p.scale_to_zero and wanted == 0 and now - self._last_traffic >= p.stable_window:
            low = 0
        return max(low, min(p.max_replicas, wanted))

    def _held(self, now: float, ready: int) -> Decision:
        p = self.policy
        if p.scale_to_zero and ready == 0 and now - self._last_traffic >= p.stable_window:
            self.desired = 0
        mode: Mode = "panic" if self._panic_since is not None else "stable"
        return Decision(
            self.desired, mode, None, ready, f"no reading of {p.metric} yet; holding {self.desired}"
        )


def _ceil(value: float) -> int:
    return max(0, math.ceil(value - _EPSILON))
