"""The judge: is the canary worse than the stable version, on the same window of requests?

Per metric, a one-sided test of "the canary is worse" and a materiality check; a metric fails only
when both say so (a regression that is statistically significant *and* beyond the threshold):

* **TTFT**: Mann-Whitney U on time to first token (canary greater?); material when the canary's
  99th percentile exceeds ``ttft_p99`` (or, without a threshold, the stable p99 by ``margin``);
* **TPOT**: the same test on time per output token; material on the mean against ``tpot``;
* **error rate**: Fisher's exact test on the 2x2 table of errors (canary higher?); material when
  the canary's rate exceeds ``error_rate`` (or, without one, the stable rate);
* **eval score** (when both sides carry ``score``): Mann-Whitney U (canary lower?); material when
  the canary's mean is below the stable one by more than ``score_margin`` (absolute, the
  Endpoint's ``eval.scoreMargin``), or without one by ``margin`` of the stable mean.

**Minimum-sample guard**: a metric with fewer than ``min_samples`` on either side is
*inconclusive*, never a pass; the verdict is ``fail`` if any metric fails, else ``inconclusive``
if any metric is, else ``pass``. TPOT is judged when a threshold is set for it or when both sides
have enough samples (non-streamed requests carry none); an eval score when both sides have
enough scores, and, when ``require_score`` is set (the Endpoint has an ``eval`` block), always:
too few scores then hold the step rather than let it pass on latency and errors alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from modelplane.api import parse_duration
from modelplane.rollout._samples import Sample

Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True, slots=True)
class Criteria:
    """What the canary must satisfy. Durations in seconds, rates as fractions."""

    min_samples: int = 100
    ttft_p99: float | None = None
    tpot: float | None = None
    error_rate: float | None = None
    #: significance level of the one-sided tests
    alpha: float = 0.01
    #: relative worsening that counts as material when no absolute threshold is set
    margin: float = 0.2
    #: judge the eval score even with too few scores (inconclusive, then): an eval is configured
    require_score: bool = False
    #: how far (absolute) the canary's mean score may fall below the stable's; None: ``margin``
    score_margin: float | None = None

    @classmethod
    def from_analysis(cls, analysis: Mapping[str, Any] | None) -> Criteria:
        """From an Endpoint's ``spec.rollout.analysis`` (camelCase JSON, durations as text)."""
        analysis = analysis or {}
        metrics = analysis.get("metrics") or {}

        def seconds(key: str) -> float | None:
            value = metrics.get(key)
            return None if value is None else parse_duration(str(value))

        rate = metrics.get("errorRate")
        evals = analysis.get("eval")
        margin = evals.get("scoreMargin", 0.1) if isinstance(evals, Mapping) else None
        return cls(
            min_samples=int(analysis.get("minSamples") or 100),
            ttft_p99=seconds("ttftP99"),
            tpot=seconds("tpot"),
            error_rate=None if rate is None else float(rate),
            require_score=isinstance(evals, Mapping),
            score_margin=None if margin is None else float(margin),
        )


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric's judgement."""

    metric: str
    verdict: Verdict
    reason: str
    p_value: float | None = None


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict on a window, the figures behind it, and the sample counts."""

    verdict: Verdict
    reason: str
    canary_samples: int
    stable_samples: int
    metrics: tuple[MetricResult, ...] = field(default=())


def judge(
    canary: Sequence[Sample],
    stable: Sequence[Sample],
    criteria: Criteria,
    *,
    canary_name: str = "canary",
    stable_name: str = "stable",
) -> Judgement:
    """Judge ``canary`` against ``stable`` (samples of the same window); see the module docstring."""
    names = (canary_name, stable_name)
    ttft_c = [s.ttft_s for s in canary if not s.error and s.ttft_s is not None]
    ttft_s = [s.ttft_s for s in stable if not s.error and s.ttft_s is not None]
    ttft = partial(_latency, threshold=criteria.ttft_p99, statistic=_p99)
    checks: list[tuple[str, Sequence[Any], Sequence[Any], _Test]] = [
        ("error rate", canary, stable, _errors),
        ("TTFT p99", ttft_c, ttft_s, ttft),
    ]
    tpot_c = [s.tpot_s for s in canary if not s.error and s.tpot_s is not None]
    tpot_s = [s.tpot_s for s in stable if not s.error and s.tpot_s is not None]
    if criteria.tpot is not None or min(len(tpot_c), len(tpot_s)) >= criteria.min_samples:
        tpot = partial(_latency, threshold=criteria.tpot, statistic=_mean)
        checks.append(("TPOT mean", tpot_c, tpot_s, tpot))
    score_c = [s.score for s in canary if s.score is not None]
    score_s = [s.score for s in stable if s.score is not None]
    if criteria.require_score or min(len(score_c), len(score_s)) >= criteria.min_samples:
        checks.append(("eval score", score_c, score_s, _score))
    results = [
        _too_few(metric, len(c), len(s), criteria, names) or test(metric, c, s, criteria, names)
        for metric, c, s, test in checks
    ]

    failed = [r for r in results if r.verdict == "fail"]
    held = [r for r in results if r.verdict == "inconclusive"]
    if failed:
        verdict: Verdict = "fail"
        reason = "; ".join(r.reason for r in failed)
    elif held:
        verdict = "inconclusive"
        reason = "; ".join(r.reason for r in held)
    else:
        verdict = "pass"
        reason = "; ".join(r.reason for r in results)
    return Judgement(verdict, reason, len(canary), len(stable), tuple(results))


def _too_few(
    metric: str, n_canary: int, n_stable: int, criteria: Criteria, names: tuple[str, str]
) -> MetricResult | None:
    if min(n_canary, n_stable) >= criteria.min_samples:
        return None
    return MetricResult(
        metric,
        "inconclusive",
        f"{metric}: too few samples to judge ({names[0]} {n_canary}, {names[1]} {n_stable};"
        f" at least {criteria.min_samples} each needed)",
    )


#: one metric's test, on samples enough for it (``_too_few`` guards it)
_Test = Callable[[str, Any, Any, Criteria, tuple[str, str]], MetricResult]


def _outcome(metric: str, figures: str, p: float, worse: bool, criteria: Criteria) -> MetricResult:
    """A fail when the canary is significantly (``p``) and materially (``worse``) worse."""
    return MetricResult(metric, "fail" if p < criteria.alpha and worse else "pass", figures, p)


def _errors(
    metric: str,
    canary: Sequence[Sample],
    stable: Sequence[Sample],
    criteria: Criteria,
    names: tuple[str, str],
) -> MetricResult:
    from scipy.stats import fisher_exact  # type: ignore[import-untyped]

    ce = sum(1 for s in canary if s.error)
    se = sum(1 for s in stable if s.error)
    c_rate, s_rate = ce / len(canary), se / len(stable)
    table = [[ce, len(canary) - ce], [se, len(stable) - se]]
    p = _p(fisher_exact(table, alternative="greater").pvalue)
    limit = criteria.error_rate if criteria.error_rate is not None else s_rate
    figures = (
        f"{names[0]} error rate {c_rate:.1%} vs {names[1]} {s_rate:.1%}, Fisher p={p:.2g} over"
        f" {len(canary) + len(stable)} samples"
    )
    return _outcome(metric, figures, p, c_rate > limit, criteria)


def _latency(
    metric: str,
    canary: list[float],
    stable: list[float],
    criteria: Criteria,
    names: tuple[str, str],
    *,
    threshold: float | None,
    statistic: Any,
) -> MetricResult:
    from scipy.stats import mannwhitneyu  # type: ignore[import-untyped]

    p = _p(mannwhitneyu(canary, stable, alternative="greater").pvalue)
    c_value, s_value = float(statistic(canary)), float(statistic(stable))
    limit = threshold if threshold is not None else s_value * (1 + criteria.margin)
    figures = (
        f"{names[0]} {metric} {_ms(c_value)} vs {names[1]} {_ms(s_value)}"
        f"{f' (limit {_ms(threshold)})' if threshold is not None else ''},"
        f" Mann-Whitney p={p:.2g} over {len(canary) + len(stable)} samples"
    )
    return _outcome(metric, figures, p, c_value > limit, criteria)


def _score(
    metric: str,
    canary: list[float],
    stable: list[float],
    criteria: Criteria,
    names: tuple[str, str],
) -> MetricResult:
    from scipy.stats import mannwhitneyu  # type: ignore[import-untyped]

    p = _p(mannwhitneyu(canary, stable, alternative="less").pvalue)
    c_mean, s_mean = _mean(canary), _mean(stable)
    figures = (
        f"{names[0]} eval score {c_mean:.3g} vs {names[1]} {s_mean:.3g}, Mann-Whitney p={p:.2g}"
        f" over {len(canary) + len(stable)} scored samples"
    )
    drop = (
        criteria.score_margin
        if criteria.score_margin is not None
        else abs(s_mean) * criteria.margin
    )
    return _outcome(metric, figures, p, c_mean < s_mean - drop, criteria)


def _p(value: Any) -> float:
    # identical samples on both sides give NaN: no evidence of a difference
    p = float(value)
    return 1.0 if math.isnan(p) else p


def _p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    # nearest rank, as latency percentiles are usually reported
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.2f} ms"
