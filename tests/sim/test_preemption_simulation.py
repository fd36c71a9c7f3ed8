"""The simulator with Queues and Jobs: preemptions reported, per-queue usage and fairness."""

from __future__ import annotations

from typing import Any

from modelplane.sim import simulate
from scheduling._admission import gpu_quota, job, queue, rack_cluster
from scheduling._dra import claim, exactly


def _timed(obj: dict[str, Any], arrival: float, duration: float) -> dict[str, Any]:
    obj["metadata"].setdefault("annotations", {}).update(
        {
            "modelplane.dev/arrival-seconds": str(arrival),
            "modelplane.dev/duration-seconds": str(duration),
        }
    )
    return obj


def _claim(name: str, gpus: int, queue_name: str, priority: int, arrival: float) -> dict[str, Any]:
    c = claim(name, [exactly(count=gpus)])
    c["metadata"]["annotations"] = {
        "modelplane.dev/queue": queue_name,
        "modelplane.dev/priority": str(priority),
    }
    return _timed(c, arrival, 100.0)


def test_simulation_reports_preemptions_and_requeues_the_victim() -> None:
    # Given one 8-GPU node, a queue that preempts lower priority, and a gang Job in it,
    cluster = [*rack_cluster({"r0": 1}), queue("q", [gpu_quota(8)], within_queue="LowerPriority")]
    workload = [
        _claim("batch", 8, "q", 0, 0.0),
        _timed(job("train", 2, 4, queue_name="q", priority=5, required="host"), 10.0, 50.0),
    ]
    # when the job arrives while the batch claim holds the node,
    out = simulate(cluster, workload, "modelplane")
    # then the batch claim is preempted by the job, reported, and runs again after it.
    assert out["preemptions"] == [
        {
            "claim": "team-a/batch",
            "time": 10.0,
            "by": "team-a/train",
            "reason": "InClusterQueue",
            "message": "preempted by team-a/train (priority 5) in queue team-a/q: "
            "it has priority 0",
        }
    ]
    placed = [(a["claim"], a["time"], a.get("job")) for a in out["allocations"]]
    assert placed == [
        ("team-a/batch", 0.0, None),
        ("team-a/train-0", 10.0, "team-a/train"),
        ("team-a/train-1", 10.0, "team-a/train"),
        ("team-a/batch", 60.0, None),
    ]
    metrics = out["metrics"]
    assert metrics["preemptions"] == 1 and metrics["jobs"] == 1
    assert metrics["queues"]["team-a/q"]["preempted"] == 1
    assert metrics["queues"]["team-a/q"]["mean_usage"]["gpu.nvidia.com"] == 8.0


def test_simulation_shares_a_cohort_fairly_by_weight() -> None:
    # Given two queues with nothing of their own sharing a lender's 16 GPUs, weights 1 and 1,
    cluster = rack_cluster({"r0": 2})
    queues = [
        queue("a", [gpu_quota(0)], cohort="c"),
        queue("b", [gpu_quota(0)], cohort="c"),
        queue("lender", [gpu_quota(16)], cohort="c"),
    ]
    # when both keep the cluster saturated with one-GPU claims, a's arriving first,
    workload = [_claim(f"a{i}", 1, "a", 0, 0.0) for i in range(40)]
    workload += [_claim(f"b{i}", 1, "b", 0, 1.0) for i in range(40)]
    out = simulate(cluster, [*queues, *workload], "modelplane")
    # then when the first 16 finish, the freed GPUs are split evenly (b's share was lower),
    at_100 = [a["claim"][7] for a in out["allocations"] if a["time"] == 100.0]
    assert sorted(at_100) == ["a"] * 8 + ["b"] * 8
    # and over the run both queues used the cohort about as much.
    metrics = out["metrics"]
    assert metrics["unschedulable"] == 0
    assert metrics["fairness"] > 0.9
