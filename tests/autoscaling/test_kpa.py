"""The KPA window maths: stable and panic windows, no scale-down in panic, scale to zero.

Time is driven by the test (the maths take ``now``), one sample every 2 s as the controller reads.
"""

from __future__ import annotations

import pytest

from modelplane.api import validate
from modelplane.api.errors import Invalid
from modelplane.autoscaling import KPA, ScalingPolicy, per_replica, read_metric


def _policy(**kw: object) -> ScalingPolicy:
    base: dict[str, object] = {
        "metric": "modelplane_worker_queue_depth",
        "target": 2.0,
        "min_replicas": 1,
        "max_replicas": 20,
        "stable_window": 60.0,
        "panic_window": 6.0,
    }
    return ScalingPolicy(**{**base, **kw})  # type: ignore[arg-type]


def _feed(kpa: KPA, start: float, end: float, total: float, ready: int) -> float:
    t = start
    while t < end:
        kpa.record(t, total, ready)
        t += 2.0
    return t


def test_steady_load_scales_to_load_over_target_in_stable_mode() -> None:
    # given 3 replicas holding 12 queued requests in all for a minute, target 2 per replica
    kpa = KPA(_policy(), now=0.0)
    t = _feed(kpa, 0.0, 60.0, total=12.0, ready=3)
    # when it decides
    d = kpa.decide(t, ready=3)
    # then it wants 12 / 2 = 6 replicas, in stable mode (6 is exactly the 200% threshold: 6/3)
    assert d.desired == 6
    assert d.observed == 4.0
    kpa2 = KPA(_policy(), now=0.0)
    t = _feed(kpa2, 0.0, 60.0, total=10.0, ready=3)
    d2 = kpa2.decide(t, ready=3)
    assert (d2.desired, d2.mode) == (5, "stable")


def test_burst_enters_panic_on_the_short_window_and_scales_up_at_once() -> None:
    # given a quiet minute at 2 requests on 1 replica
    kpa = KPA(_policy(), now=0.0)
    t = _feed(kpa, 0.0, 60.0, total=2.0, ready=1)
    assert kpa.decide(t, ready=1).desired == 1
    # when a burst of 20 queued requests lasts 6 s
    t = _feed(kpa, t, t + 6.0, total=20.0, ready=1)
    d = kpa.decide(t, ready=1)
    # then the panic window (mean 20 -> 10 replicas, >= 2x the 1 ready) rules: panic, 10
    assert d.mode == "panic"
    assert d.desired == 10
    # while the stable window alone would have wanted far fewer
    assert d.desired > 2


def test_panic_never_scales_down_and_ends_after_a_calm_stable_window() -> None:
    # given a panic to 10 replicas
    kpa = KPA(_policy(), now=0.0)
    t = _feed(kpa, 0.0, 6.0, total=20.0, ready=1)
    assert kpa.decide(t, ready=1).desired == 10
    # when the load drops to nothing for less than a stable window
    t = _feed(kpa, t, t + 30.0, total=0.0, ready=10)
    d = kpa.decide(t, ready=10)
    # then it stays in panic and keeps 10 (no scale-down in panic)
    assert (d.mode, d.desired) == ("panic", 10)
    # and once a whole stable window passed without reason to panic it scales down
    t = _feed(kpa, t, t + 40.0, total=0.0, ready=10)
    d = kpa.decide(t, ready=10)
    assert (d.mode, d.desired) == ("stable", 1)


def _first_time_at(kpa: KPA, start: float, total: float, ready: int, wanted: int) -> float:
    t = start
    while t < start + 300.0:
        kpa.record(t, total, ready)
        if kpa.decide(t, ready).desired == wanted:
            return t
        t += 2.0
    raise AssertionError(f"never reached {wanted}")


def test_scale_down_delay_holds_the_most_wanted_over_the_delay() -> None:
    # given two autoscalers at 4 replicas under steady load, one with a 30 s scale-down delay
    prompt, delayed = KPA(_policy(), now=0.0), KPA(_policy(scale_down_delay=30.0), now=0.0)
    for kpa in (prompt, delayed):
        t = _feed(kpa, 0.0, 60.0, total=8.0, ready=4)
        assert kpa.decide(t, ready=4).desired == 4
    # when the load stops
    at_once = _first_time_at(prompt, t, total=0.0, ready=4, wanted=1)
    later = _first_time_at(delayed, t, total=0.0, ready=4, wanted=1)
    # then the delayed one reaches 1 replica 30 s after the prompt one
    assert later - at_once >= 30.0


def test_scale_to_zero_only_after_a_whole_stable_window_without_traffic() -> None:
    kpa = KPA(_policy(min_replicas=0, scale_to_zero=True), now=0.0)
    t = _feed(kpa, 0.0, 20.0, total=4.0, ready=1)
    # traffic stops: the stable mean falls below one replica's worth, yet one stays
    t = _feed(kpa, t, t + 50.0, total=0.0, ready=1)
    assert kpa.decide(t, ready=1).desired == 1
    # a whole stable window after the last request it goes to zero
    t = _feed(kpa, t, t + 20.0, total=0.0, ready=1)
    assert kpa.decide(t, ready=1).desired == 0
    # and demand (the gateway's annotation) brings one back before any metric is read
    kpa.saw_traffic(t + 1)
    assert kpa.decide(t + 2, ready=0).desired == 1


def test_min_and_max_bound_the_decision() -> None:
    kpa = KPA(_policy(min_replicas=2, max_replicas=3), now=0.0)
    t = _feed(kpa, 0.0, 60.0, total=100.0, ready=3)
    assert kpa.decide(t, ready=3).desired == 3
    quiet = KPA(_policy(min_replicas=2, max_replicas=3), now=0.0)
    t = _feed(quiet, 0.0, 60.0, total=0.0, ready=2)
    assert quiet.decide(t, ready=2).desired == 2


def test_policy_reads_spec_replicas_and_none_without_autoscaling() -> None:
    spec = {
        "min": 0,
        "max": 5,
        "scaleToZero": True,
        "autoscaling": {"metric": "m", "target": 3, "stableWindow": "30s", "panicWindow": "3s"},
    }
    p = ScalingPolicy.of(spec)
    assert p is not None
    assert (p.target, p.stable_window, p.panic_window, p.scale_to_zero) == (3.0, 30.0, 3.0, True)
    assert ScalingPolicy.of({"min": 1}) is None


_TEXT = """\
# TYPE modelplane_worker_queue_depth gauge
modelplane_worker_queue_depth 3.0
# TYPE modelplane_worker_generated_tokens_total counter
modelplane_worker_generated_tokens_total 100.0
# TYPE modelplane_worker_time_to_first_token_seconds histogram
modelplane_worker_time_to_first_token_seconds_bucket{le="+Inf"} 4.0
modelplane_worker_time_to_first_token_seconds_count 4.0
modelplane_worker_time_to_first_token_seconds_sum 2.0
"""

_LATER = """\
# TYPE modelplane_worker_generated_tokens_total counter
modelplane_worker_generated_tokens_total 160.0
# TYPE modelplane_worker_time_to_first_token_seconds histogram
modelplane_worker_time_to_first_token_seconds_bucket{le="+Inf"} 6.0
modelplane_worker_time_to_first_token_seconds_count 6.0
modelplane_worker_time_to_first_token_seconds_sum 5.0
"""


def test_gauge_counter_and_histogram_readings_per_replica() -> None:
    gauge = read_metric(_TEXT, "modelplane_worker_queue_depth", 0.0)
    assert gauge is not None and per_replica(None, gauge) == 3.0
    # a counter is a rate: 60 tokens in 2 s is 30/s (named with or without _total)
    first = read_metric(_TEXT, "modelplane_worker_generated_tokens_total", 0.0)
    later = read_metric(_LATER, "modelplane_worker_generated_tokens", 2.0)
    assert first is not None and later is not None
    assert per_replica(None, first) is None
    assert per_replica(first, later) == 30.0
    # a histogram is the mean of the new observations: (5 - 2) / (6 - 4) = 1.5 s
    h1 = read_metric(_TEXT, "modelplane_worker_time_to_first_token_seconds", 0.0)
    h2 = read_metric(_LATER, "modelplane_worker_time_to_first_token_seconds", 2.0)
    assert h1 is not None and h2 is not None
    assert per_replica(h1, h2) == 1.5
    assert read_metric(_TEXT, "absent_metric", 0.0) is None


def _endpoint_with(autoscaling: dict[str, object]) -> dict[str, object]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Endpoint",
        "metadata": {"name": "e"},
        "spec": {"model": "m", "replicas": {"min": 1, "max": 4, "autoscaling": autoscaling}},
    }


@pytest.mark.parametrize(
    ("autoscaling", "field"),
    [
        ({"metric": "9-lives", "target": 1}, "spec.replicas.autoscaling.metric"),
        ({"metric": "m", "target": 0}, "spec.replicas.autoscaling.target"),
        (
            {"metric": "m", "target": 1, "stableWindow": "2s"},
            "spec.replicas.autoscaling.stableWindow",
        ),
        (
            {"metric": "m", "target": 1, "panicWindow": "2m"},
            "spec.replicas.autoscaling.panicWindow",
        ),
        (
            {"metric": "m", "target": 1, "panicThreshold": 1},
            "spec.replicas.autoscaling.panicThreshold",
        ),
        ({"metric": "m", "target": 1, "window": "6s"}, "spec.replicas.autoscaling.window"),
    ],
)
def test_bad_autoscaling_is_refused_naming_the_field(
    autoscaling: dict[str, object], field: str
) -> None:
    with pytest.raises(Invalid) as exc:
        validate(_endpoint_with(autoscaling))
    assert field in str(exc.value)


def test_autoscaling_defaults_are_knatives() -> None:
    replicas = validate(_endpoint_with({"metric": "modelplane_worker_queue_depth", "target": 4}))
    auto = replicas["spec"]["replicas"]["autoscaling"]
    assert (auto["stableWindow"], auto["panicWindow"], auto["panicThreshold"]) == ("60s", "6s", 2.0)
