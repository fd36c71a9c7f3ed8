"""What the gateway observes: per-version request samples (for canary analysis) and metrics.

Samples: per (namespace, endpoint, version) a bounded window of the most recent requests, each
``(t, ttft_s, tpot_s, error)`` with ``t`` in seconds since the epoch. The rollout analysis reads
them at ``GET /v1/_modelplane/samples``; a window holds ``samples_per_version`` entries, so memory
stays bounded however long the gateway runs.

Metrics, in Prometheus text at ``/v1/_modelplane/metrics`` (and ``/metrics`` when the gateway runs
alone): ``modelplane_gateway_requests_total{model,version,code}``,
``modelplane_gateway_time_to_first_token_seconds`` and
``modelplane_gateway_request_duration_seconds`` (histograms by model and version).

Traces: the gateway does not emit spans itself; the attribute names it would use are those of the
OpenTelemetry GenAI conventions (``gen_ai.operation.name``, ``gen_ai.request.model``,
``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``), listed in :data:`GEN_AI_ATTRIBUTES`
for a tracing middleware to use.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from dataclasses import dataclass, field

GEN_AI_ATTRIBUTES = (
    "gen_ai.operation.name",
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
)

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Sample = tuple[float, float | None, float | None, bool]


@dataclass(slots=True)
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(_BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(_BUCKETS, value)] += 1
        self.total += value
        self.n += 1


class Telemetry:
    """Samples and metrics of one gateway process."""

    def __init__(self, samples_per_version: int = 4096) -> None:
        self.samples_per_version = samples_per_version
        self.samples: dict[tuple[str, str, str], deque[Sample]] = {}
        self.requests: dict[tuple[str, str, str], int] = {}
        self.ttft: dict[tuple[str, str], _Histogram] = {}
        self.duration: dict[tuple[str, str], _Histogram] = {}

    def record(
        self,
        namespace: str,
        endpoint: str,
        version: str,
        *,
        code: int,
        ttft: float | None,
        duration: float,
        output_tokens: int,
    ) -> None:
        """One finished request (or one failed attempt at it)."""
        error = code >= 500
        tpot = None
        if ttft is not None and output_tokens > 1:
            tpot = max(0.0, duration - ttft) / (output_tokens - 1)
        key = (namespace, endpoint, version)
        window = self.samples.get(key)
        if window is None:
            window = self.samples[key] = deque(maxlen=self.samples_per_version)
        window.append((time.time(), ttft, tpot, error))
        model = endpoint if namespace == "default" else f"{namespace}/{endpoint}"
        ckey = (model, version, str(code))
        self.requests[ckey] = self.requests.get(ckey, 0) + 1
        hkey = (model, version)
        if ttft is not None:
            h = self.ttft.get(hkey)
            if h is None:
                h = self.ttft[hkey] = _Histogram()
            h.observe(ttft)
        h = self.duration.get(hkey)
        if h is None:
            h = self.duration[hkey] = _Histogram()
        h.observe(duration)

    def count_request(self, model: str, version: str, code: int) -> None:
        """A request answered without reaching a replica (404, 429, 503...)."""
        key = (model, version, str(code))
        self.requests[key] = self.requests.get(key, 0) + 1

    def window(
        self, namespace: str, endpoint: str, version: str, since: float = 0.0
    ) -> list[Sample]:
        samples = self.samples.get((namespace, endpoint, version))
        if not samples:
            return []
        return [s for s in samples if s[0] > since]

    def versions(self, namespace: str, endpoint: str) -> list[str]:
        return sorted(v for (ns, ep, v) in self.samples if ns == namespace and ep == endpoint)

    def prometheus(self) -> str:
        lines = [
            "# HELP modelplane_gateway_requests_total Requests answered by the gateway.",
            "# TYPE modelplane_gateway_requests_total counter",
        ]
        for (model, version, code), n in sorted(self.requests.items()):
            lines.append(
                f'modelplane_gateway_requests_total{{model="{_esc(model)}",version="{_esc(version)}",code="{code}"}} {n}'
            )
        for name, what, hists in (
            ("modelplane_gateway_time_to_first_token_seconds", "Time to first token.", self.ttft),
            (
                "modelplane_gateway_request_duration_seconds",
                "Whole request duration.",
                self.duration,
            ),
        ):
            lines.append(f"# HELP {name} {what}")
            lines.append(f"# TYPE {name} histogram")
            for (model, version), h in sorted(hists.items()):
                labels = f'model="{_esc(model)}",version="{_esc(version)}"'
                cumulative = 0
                for bound, count in zip(_BUCKETS, h.counts, strict=False):
                    cumulative += count
                    lines.append(f'{name}_bucket{{{labels},le="{bound}"}} {cumulative}')
                lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {h.n}')
                lines.append(f"{name}_sum{{{labels}}} {h.total}")
                lines.append(f"{name}_count{{{labels}}} {h.n}")
        return "\n".join(lines) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
