"""The canary judge: Mann-Whitney U on latencies, Fisher's exact test on errors, a sample guard."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from modelplane.api.errors import Invalid
from modelplane.rollout import Criteria, RecordedSamples, Sample, judge


def _samples(
    rnd: random.Random, n: int, *, ttft: float, tpot: float = 0.01, errors: float = 0.0
) -> list[Sample]:
    # log-normal latencies, as real request latencies roughly are
    return [
        Sample(
            t=1000.0 + i,
            ttft_s=ttft * rnd.lognormvariate(0, 0.25),
            tpot_s=tpot * rnd.lognormvariate(0, 0.25),
            error=rnd.random() < errors,
        )
        for i in range(n)
    ]


def test_too_few_samples_is_inconclusive_never_pass() -> None:
    # given a canary with fewer samples than the minimum, even a perfect one
    rnd = random.Random(1)
    canary = _samples(rnd, 19, ttft=0.05)
    stable = _samples(rnd, 400, ttft=0.05)
    # when judged
    verdict = judge(canary, stable, Criteria(min_samples=20))
    # then the step holds, and the reason says how many are missing
    assert verdict.verdict == "inconclusive"
    assert "canary 19" in verdict.reason and "at least 20" in verdict.reason
    assert verdict.canary_samples == 19 and verdict.stable_samples == 400


def test_too_few_stable_samples_is_inconclusive_too() -> None:
    rnd = random.Random(2)
    verdict = judge(_samples(rnd, 50, ttft=0.05), _samples(rnd, 3, ttft=0.05), Criteria(20))
    assert verdict.verdict == "inconclusive"


@pytest.mark.parametrize("seed", range(5))
def test_equal_distributions_pass(seed: int) -> None:
    # given canary and stable drawn from the same distribution
    rnd = random.Random(seed)
    canary = _samples(rnd, 100, ttft=0.05, errors=0.01)
    stable = _samples(rnd, 400, ttft=0.05, errors=0.01)
    # when judged, then they pass, with the figures of every metric in the reason
    verdict = judge(canary, stable, Criteria(min_samples=50))
    assert verdict.verdict == "pass", verdict.reason
    assert {m.metric for m in verdict.metrics} == {"error rate", "TTFT p99", "TPOT mean"}
    assert "Mann-Whitney" in verdict.reason and "Fisher" in verdict.reason


def test_canary_five_times_slower_fails_with_the_figures() -> None:
    # given a canary whose time to first token is 5x the stable one's
    rnd = random.Random(3)
    canary = _samples(rnd, 40, ttft=0.25)
    stable = _samples(rnd, 160, ttft=0.05)
    # when judged
    verdict = judge(
        canary, stable, Criteria(min_samples=20), canary_name="canary v2", stable_name="stable v1"
    )
    # then it fails on TTFT, saying by how much, with the p-value and the sample count
    assert verdict.verdict == "fail"
    assert verdict.reason.startswith("canary v2 TTFT p99 ")
    assert " ms vs stable v1 " in verdict.reason
    assert "Mann-Whitney p=" in verdict.reason and "over 200 samples" in verdict.reason
    (ttft,) = [m for m in verdict.metrics if m.metric == "TTFT p99"]
    assert ttft.p_value is not None and ttft.p_value < 1e-6


def test_a_slower_canary_within_its_absolute_threshold_passes() -> None:
    # given a canary significantly slower (2x) but under an explicit ttftP99 of 1s
    rnd = random.Random(4)
    canary = _samples(rnd, 100, ttft=0.1)
    stable = _samples(rnd, 100, ttft=0.05)
    # then the regression is not material: pass
    assert judge(canary, stable, Criteria(min_samples=50, ttft_p99=1.0)).verdict == "pass"
    # and without a threshold (20% margin over the stable p99) it fails
    assert judge(canary, stable, Criteria(min_samples=50)).verdict == "fail"


def test_canary_errors_fail_even_when_it_has_no_latency_samples() -> None:
    # given a canary whose every request failed (so no TTFT at all)
    rnd = random.Random(5)
    canary = [Sample(t=1.0 + i, error=True) for i in range(30)]
    stable = _samples(rnd, 120, ttft=0.05)
    # then the error rate alone fails it
    verdict = judge(canary, stable, Criteria(min_samples=20, error_rate=0.05))
    assert verdict.verdict == "fail"
    assert "error rate 100.0% vs stable 0.0%" in verdict.reason


def test_error_rate_under_its_threshold_passes() -> None:
    rnd = random.Random(6)
    canary = _samples(rnd, 400, ttft=0.05, errors=0.03)
    stable = _samples(rnd, 400, ttft=0.05, errors=0.0)
    assert judge(canary, stable, Criteria(min_samples=50, error_rate=0.1)).verdict == "pass"


def test_tpot_threshold_without_tpot_samples_holds() -> None:
    # given non-streamed traffic (no TPOT) but a TPOT threshold: the canary cannot be judged on it
    canary = [Sample(t=1.0 + i, ttft_s=0.05) for i in range(30)]
    stable = [Sample(t=1.0 + i, ttft_s=0.05) for i in range(30)]
    verdict = judge(canary, stable, Criteria(min_samples=20, tpot=0.05))
    assert verdict.verdict == "inconclusive"
    assert "TPOT" in verdict.reason


def test_a_lower_eval_score_fails() -> None:
    rnd = random.Random(7)
    canary = [Sample(t=i, ttft_s=0.05, score=rnd.gauss(0.5, 0.05)) for i in range(60)]
    stable = [Sample(t=i, ttft_s=0.05, score=rnd.gauss(0.9, 0.05)) for i in range(60)]
    verdict = judge(canary, stable, Criteria(min_samples=20))
    assert verdict.verdict == "fail" and "eval score" in verdict.reason


def _scored(n: int, scores: list[float]) -> list[Sample]:
    return [Sample(t=float(i), ttft_s=0.05, score=scores[i % len(scores)]) for i in range(n)]


def test_with_an_eval_configured_too_few_scores_hold_the_step_though_latency_passes() -> None:
    # given plenty of requests on both sides, alike in latency, but only 5 scored each
    canary = [*_scored(5, [0.0]), *[Sample(t=10.0 + i, ttft_s=0.05) for i in range(60)]]
    stable = [*_scored(5, [1.0]), *[Sample(t=10.0 + i, ttft_s=0.05) for i in range(60)]]
    criteria = Criteria.from_analysis({"minSamples": 20, "eval": {"cases": [{"expect": "json"}]}})
    # when judged
    verdict = judge(canary, stable, criteria)
    # then the eval score's guard holds the step rather than letting latency alone pass it
    assert verdict.verdict == "inconclusive"
    assert "eval score: too few samples" in verdict.reason and "canary 5" in verdict.reason
    # and without an eval configured, the same samples pass
    assert judge(canary, stable, Criteria(min_samples=20)).verdict == "pass"


def test_the_score_margin_is_how_far_below_the_stable_mean_the_canary_may_score() -> None:
    # given a canary right 85% of the time against a stable right 95% of the time
    canary = _scored(400, [1.0] * 17 + [0.0] * 3)
    stable = _scored(400, [1.0] * 19 + [0.0] * 1)
    # when the margin is 0.05 the drop of 0.10 fails; at 0.2 it is within the margin
    tight = Criteria.from_analysis({"minSamples": 20, "eval": {"scoreMargin": 0.05}})
    loose = Criteria.from_analysis({"minSamples": 20, "eval": {"scoreMargin": 0.2}})
    failed = judge(canary, stable, tight)
    assert failed.verdict == "fail"
    assert "canary eval score 0.85 vs stable 0.95" in failed.reason
    assert judge(canary, stable, loose).verdict == "pass"


def test_criteria_come_from_the_endpoint_analysis() -> None:
    criteria = Criteria.from_analysis(
        {"minSamples": 30, "metrics": {"ttftP99": "800ms", "tpot": "50ms", "errorRate": 0.02}}
    )
    assert criteria == Criteria(min_samples=30, ttft_p99=0.8, tpot=0.05, error_rate=0.02)


def test_recorded_samples_load_what_the_gateway_returned(tmp_path: Path) -> None:
    # given a file saved from GET /v1/_modelplane/samples?endpoint=chat
    body = {
        "namespace": "default",
        "endpoint": "chat",
        "versions": {
            "v1": [{"t": 10.0, "ttft_s": 0.05, "tpot_s": None, "error": False}],
            "v2": [
                {"t": 11.0, "ttft_s": 0.5, "tpot_s": 0.01, "error": False},
                {"t": 12.0, "ttft_s": None, "tpot_s": None, "error": True},
            ],
        },
    }
    path = tmp_path / "samples.json"
    path.write_bytes(orjson.dumps(body))
    # when loaded, then each version's samples are there, and `since` filters by time
    recorded = RecordedSamples.load(path)
    assert recorded.versions("default", "chat") == ["v1", "v2"]
    assert recorded.samples("default", "chat", "v2", since=11.0) == [Sample(t=12.0, error=True)]
    # and a file of another shape is refused with what was expected
    path.write_text("[1, 2]")
    with pytest.raises(Invalid, match="versions"):
        RecordedSamples.load(path)
