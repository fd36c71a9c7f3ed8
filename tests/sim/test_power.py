"""The power model, the cap planner and ``modelplane bench power --quick``."""

from __future__ import annotations

import orjson
import pytest

from modelplane.bench.power import main
from modelplane.scheduling import PowerDevice, plan_power_caps
from modelplane.sim import CALIBRATION, PowerModel, ReplicaLoad, simulate_power


def test_the_model_reproduces_its_published_calibration() -> None:
    # Samsi et al. (HPEC 2023): 250 W -> 175 W saved about 23% energy for about 6.5% more time
    full, capped, saved, added = CALIBRATION
    m = PowerModel.calibrated(full)
    assert m.slowdown(capped) == pytest.approx(1.0 + added, abs=1e-6)
    energy = m.draw(capped) * m.slowdown(capped) / m.draw(None)
    assert energy == pytest.approx(1.0 - saved, abs=1e-6)
    # and a lower cap is slower and uses less energy per step; no cap is no change
    assert m.slowdown(150.0) > m.slowdown(capped) > m.slowdown(None) == 1.0
    assert m.draw(150.0) * m.slowdown(150.0) < m.draw(capped) * m.slowdown(capped)


def test_caps_stay_under_budget_and_low_priority_gives_up_power_first() -> None:
    devs = [PowerDevice(f"hi-{i}", 700, 90, 200, priority=10) for i in range(4)]
    devs += [PowerDevice(f"lo-{i}", 700, 90, 200, priority=-1) for i in range(4)]
    plan = plan_power_caps(4200.0, devs)
    assert plan.reason is None and plan.total_watts <= 4200.0
    assert sum(plan.caps.values()) <= 4200.0
    hi = {plan.caps[f"hi-{i}"] for i in range(4)}
    lo = {plan.caps[f"lo-{i}"] for i in range(4)}
    assert len(hi) == len(lo) == 1 and min(hi) > max(lo) >= 200.0
    # a budget above the sum of TDPs caps nothing below TDP
    assert set(plan_power_caps(10_000.0, devs).caps.values()) == {700.0}


def test_a_deep_cut_clamps_at_the_lowest_cap_and_takes_the_rest_from_others() -> None:
    devs = [PowerDevice("hi", 700, 90, 200, priority=10), PowerDevice("lo", 700, 90, 200, -1)]
    # 800 W to cut: the background device's share (2/3) passes its 500 W of headroom
    plan = plan_power_caps(600.0, devs)
    assert plan.caps == {"lo": 200.0, "hi": 400.0}


@pytest.mark.parametrize(
    ("budget", "reason", "says"),
    [
        (100.0, "BelowIdleDraw", "below the idle draw of its 2 devices (180 W)"),
        (300.0, "BelowMinimumCaps", "below the lowest caps its 2 devices accept (400 W"),
    ],
)
def test_a_budget_no_cap_can_hold_is_refused_with_the_reason(
    budget: float, reason: str, says: str
) -> None:
    devs = [PowerDevice("a", 700, 90, 200), PowerDevice("b", 700, 90, 200)]
    plan = plan_power_caps(budget, devs)
    assert plan.caps == {} and plan.reason == reason and says in plan.message


def test_a_cap_slows_decoding_and_saves_energy_on_the_same_arrivals() -> None:
    loads = [ReplicaLoad("g", "e", 0, rate_per_s=2.0)]
    free = simulate_power(loads, {}, duration_s=60.0, seed=3)["replicas"]["g"]
    capped = simulate_power(loads, {"g": 450.0}, duration_s=60.0, seed=3)["replicas"]["g"]
    assert free["tokens"] == capped["tokens"] > 0  # same requests served
    assert capped["joules"] < free["joules"]
    assert sorted(capped["tpot"])[-1] > sorted(free["tpot"])[-1]


def test_quick_power_benchmark_meets_its_goals(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick"]) == 0
    figures = orjson.loads(capsys.readouterr().out.rstrip("\n").splitlines()[-1])
    assert set(figures["runs"]) == {"uncapped", "uniform", "budget"}
    assert all(set(g) == {"met", "figure", "target"} for g in figures["goals"].values())
    assert all(g["met"] for g in figures["goals"].values()), figures["goals"]
    ours = figures["ratios"]["budget"]["endpoints"]
    # the high-priority endpoint's TPOT rises less than the background one's
    assert ours["chat"]["tpot_p99"] < ours["batch"]["tpot_p99"]
