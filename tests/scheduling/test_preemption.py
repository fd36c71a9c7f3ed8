"""Preemption: the cheapest allowed victims, only when the preemptor then fits."""

from __future__ import annotations

from modelplane.scheduling import Admission, Admitted

from ._admission import gang, gpu_quota, inventory, job, queue, queued_claim, rack_cluster


def test_higher_priority_claim_preempts_the_cheapest_victims() -> None:
    # Given a queue of 8 GPUs (withinQueue LowerPriority) full with claims of priorities 5, 1, 1,
    adm = Admission(
        inventory(rack_cluster({"r0": 1})),
        [queue("q", [gpu_quota(8)], within_queue="LowerPriority")],
    )
    for t, (name, gpus, prio) in enumerate((("keep", 4, 5), ("old", 2, 1), ("new", 2, 1))):
        assert adm.admit(queued_claim(name, gpus, "q", prio), now=float(t))
    # when a priority-9 claim for 2 GPUs arrives,
    result = adm.admit(queued_claim("urgent", 2, "q", 9), now=10.0)
    # then exactly one victim goes: the lowest priority, most recently started one,
    assert isinstance(result, Admitted)
    assert [p.victim for p in result.preempted] == ["team-a/new"]
    victim = result.preempted[0]
    assert victim.by == "team-a/urgent" and victim.reason == "InClusterQueue"
    assert victim.condition()["reason"] == "Preempted"
    assert "preempted by team-a/urgent (priority 9)" in victim.message
    # and its devices and quota are given back before the preemptor takes them.
    assert set(adm.running) == {"team-a/keep", "team-a/old", "team-a/urgent"}
    assert adm.queues["team-a/q"].usage["gpu.nvidia.com"] == 8


def test_preemption_evicts_nobody_when_the_preemptor_still_would_not_fit() -> None:
    # Given the node full: 4 GPUs of priority 5, 4 GPUs of priority 0,
    adm = Admission(
        inventory(rack_cluster({"r0": 1})),
        [queue("q", [gpu_quota(16)], within_queue="LowerPriority")],
    )
    assert adm.admit(queued_claim("high", 4, "q", 5)) and adm.admit(queued_claim("low", 4, "q", 0))
    # when a priority-3 claim for 6 GPUs arrives (evicting "low" frees only 4),
    result = adm.admit(queued_claim("big", 6, "q", 3))
    # then nobody is evicted and it waits.
    assert not result
    assert set(adm.running) == {"team-a/high", "team-a/low"}
    assert len(adm.state.in_use) == 8


def test_equal_priority_is_never_preempted_with_lower_priority_rule() -> None:
    adm = Admission(
        inventory(rack_cluster({"r0": 1})),
        [queue("q", [gpu_quota(8)], within_queue="LowerPriority")],
    )
    assert adm.admit(queued_claim("a", 8, "q", 1))
    assert not adm.admit(queued_claim("b", 1, "q", 1))
    assert set(adm.running) == {"team-a/a"}


def test_reclaim_within_cohort_evicts_only_borrowers() -> None:
    # Given a cohort of "owner" (8 GPUs, reclaims) and two queues of 4 GPUs each,
    adm = Admission(
        inventory(rack_cluster({"r0": 2})),
        [
            queue("owner", [gpu_quota(8)], cohort="c", reclaim="Any"),
            queue("borrower", [gpu_quota(4)], cohort="c"),
            queue("modest", [gpu_quota(4)], cohort="c"),
        ],
    )
    # "modest" runs within its nominal, "borrower" uses 4 of its own and 8 borrowed ones,
    assert adm.admit(queued_claim("m", 4, "modest"), now=0.0)
    for i in range(3):
        assert adm.admit(queued_claim(f"b{i}", 4, "borrower"), now=1.0 + i)
    # when the owner wants 8 of its GPUs back,
    result = adm.admit(queued_claim("mine", 8, "owner"), now=10.0)
    # then only borrowed work goes, the most recent first, and the borrower keeps its nominal.
    assert isinstance(result, Admitted)
    assert sorted(p.victim for p in result.preempted) == ["team-a/b1", "team-a/b2"]
    assert {p.reason for p in result.preempted} == {"InCohortReclamation"}
    assert "team-a/m" in adm.running and "team-a/b0" in adm.running
    assert adm.queues["team-a/borrower"].usage["gpu.nvidia.com"] == 4


def test_reclaiming_never_turns_into_borrowing() -> None:
    # Given "owner" with 4 GPUs and a borrower using all 16,
    adm = Admission(
        inventory(rack_cluster({"r0": 2})),
        [
            queue("owner", [gpu_quota(4)], cohort="c", reclaim="Any"),
            queue("borrower", [gpu_quota(12)], cohort="c"),
        ],
    )
    assert adm.admit(queued_claim("b0", 8, "borrower"))
    assert adm.admit(queued_claim("b1", 8, "borrower"))
    # the owner cannot evict it for 8 GPUs: 4 of them would be borrowed.
    assert not adm.admit(queued_claim("mine", 8, "owner"))
    assert set(adm.running) == {"team-a/b0", "team-a/b1"}


def test_a_gang_preempts_lower_priority_work_to_start_whole() -> None:
    adm = Admission(
        inventory(rack_cluster({"r0": 2})),
        [queue("q", [gpu_quota(16)], within_queue="LowerPriority")],
    )
    for i in range(4):
        assert adm.admit(queued_claim(f"small{i}", 4, "q", 0), now=float(i))
    result = adm.admit(gang(job("train", 2, 8, queue_name="q", priority=5)), now=9.0)
    assert isinstance(result, Admitted)
    assert len(result.preempted) == 4
    assert all(p.by == "team-a/train" for p in result.preempted)
