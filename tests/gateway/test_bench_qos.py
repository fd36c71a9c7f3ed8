"""The QoS benchmark in its quick form: flow control beside FCFS on simulated replicas, one JSON
object on the last line with both runs' figures and the goals."""

from __future__ import annotations

import json

import pytest

from modelplane.bench.qos import main


def test_the_quick_benchmark_prints_flow_control_and_fcfs_side_by_side(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--quick"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["benchmark"] == "qos" and figures["quick"] is True
    assert figures["capacity_rps"] > 0
    flow, fcfs = figures["priority"]["flow_control"], figures["priority"]["fcfs"]
    # flow control sheds only the low class; FCFS has no classes and loses high requests too
    assert flow["overload_high"]["rejected"] == 0
    assert flow["shed"] > 0 and flow["shed"] <= flow["overload_low"]["rejected"]
    assert fcfs["shed"] == 0 and fcfs["overload_high"]["rejected"] > 0
    assert flow["high_ttft_p99_vs_idle"] < fcfs["high_ttft_p99_vs_idle"]
    # the weighted tenants: flow control's ratio is nearer 3 than FCFS's
    fair = figures["fairness"]
    assert abs(fair["flow_control"]["ratio_a_to_b"] - 3) < abs(fair["fcfs"]["ratio_a_to_b"] - 3)
    assert set(figures["goals"]) == {
        "high_ttft_p99_vs_idle",
        "high_rejections",
        "only_low_shed",
        "tenant_ratio_3_to_1",
    }


def test_the_simulator_drives_the_gateway_flow_queue_with_the_traces_priorities() -> None:
    from modelplane.gateway import QosPolicy
    from modelplane.sim import TraceRequest, simulate_routing

    # given one replica taking 2 requests at once, and 6 arriving together, one of them high
    trace = [TraceRequest(0.0, "", 0, 100, 50, priority=-1) for _ in range(5)]
    trace.append(TraceRequest(0.0, "", 0, 100, 50, priority=5))
    qos = QosPolicy(max_size=2, ttl=60.0, max_in_flight=2)
    # when
    result = simulate_routing(trace, replicas=1, policy="round-robin", qos=qos, per_request=True)
    # then two low ones started, the high one was held and served, the newest low ones were shed
    assert result["classes"]["5"]["first_tokens"] == 1
    assert result["classes"]["-1"] == {**result["classes"]["-1"], "first_tokens": 3, "shed": 2}
    assert result["completed"] + result["failed"] == len(trace)
