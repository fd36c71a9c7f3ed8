"""Queues: quotas in devices and in capacity/counters, cohorts, borrowing, lending, fair sharing."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.scheduling import Admission, Inventory, SchedulingInputError, workloads_from
from modelplane.sim import generate_cluster, split_objects

from ._admission import gpu_quota, inventory, queue, queued_claim, rack_cluster
from ._dra import claim, exactly


def _admission(queues: list[dict[str, Any]], nodes: int = 2) -> Admission:
    return Admission(inventory(rack_cluster({"r0": nodes})), queues)


def test_claims_are_admitted_up_to_the_nominal_quota_and_no_further() -> None:
    # Given a queue with 4 GPUs of nominal quota and a cluster of 16 GPUs,
    adm = _admission([queue("q", [gpu_quota(4)])])
    # when claims of 3 and then 2 GPUs arrive,
    first = adm.admit(queued_claim("a", 3, "q"))
    second = adm.admit(queued_claim("b", 2, "q"))
    # then the first runs and the second waits, saying which quota stops it.
    assert first and not second
    assert "queue team-a/q: gpu.nvidia.com: 3 in use + 2 requested exceeds nominal quota 4" in (
        second.reason  # type: ignore[union-attr]
    )
    assert adm.queues["team-a/q"].usage["gpu.nvidia.com"] == 3
    # When the first finishes, the second fits.
    adm.release("team-a/a")
    assert adm.admit(queued_claim("b", 2, "q"))


def test_borrowing_stops_at_the_borrowing_limit() -> None:
    # Given two queues in one cohort, 4 GPUs each, and q may borrow at most 2,
    adm = _admission(
        [
            queue("q", [gpu_quota(4, borrowing=2)], cohort="c"),
            queue("idle", [gpu_quota(4)], cohort="c"),
        ]
    )
    # when q asks for 6 GPUs, it borrows 2 of idle's unused quota;
    assert adm.admit(queued_claim("a", 6, "q"))
    # a seventh GPU would borrow beyond the limit although idle lends 2 more.
    more = adm.admit(queued_claim("b", 1, "q"))
    assert not more
    assert "plus borrowingLimit 2" in more.reason  # type: ignore[union-attr]
    assert adm.queues.share("team-a/q") == pytest.approx(2 / 8)


def test_lending_limit_keeps_part_of_the_nominal_quota_for_its_owner() -> None:
    # Given a lender that lends at most 1 of its 4 GPUs,
    adm = _admission(
        [
            queue("lender", [gpu_quota(4, lending=1)], cohort="c"),
            queue("borrower", [gpu_quota(2)], cohort="c"),
        ]
    )
    # the borrower gets its 2 plus the 1 lent, not more,
    assert adm.admit(queued_claim("a", 3, "borrower"))
    refused = adm.admit(queued_claim("b", 1, "borrower"))
    assert not refused and "cohort c" in refused.reason  # type: ignore[union-attr]
    # and the lender still gets the 3 it never lends.
    assert adm.admit(queued_claim("c", 3, "lender"))


def test_a_claim_in_a_queue_that_does_not_exist_says_so() -> None:
    adm = _admission([queue("q", [gpu_quota(4)])])
    result = adm.admit(queued_claim("a", 1, "nosuch"))
    assert not result and result.invalid  # type: ignore[union-attr]
    assert "queue team-a/nosuch does not exist" in result.reason  # type: ignore[union-attr]


def test_fair_sharing_admits_the_queue_with_the_lowest_share_first() -> None:
    # Given two equal queues in a cohort with a lender, and "greedy" borrowing 4 GPUs already,
    adm = _admission(
        [
            queue("greedy", [gpu_quota(2)], cohort="c"),
            queue("modest", [gpu_quota(2)], cohort="c"),
            queue("lender", [gpu_quota(12)], cohort="c"),
        ]
    )
    assert adm.admit(queued_claim("g0", 6, "greedy"))
    assert adm.admit(queued_claim("m0", 2, "modest"))
    assert adm.admit(queued_claim("filler", 7, "lender"))  # one GPU left in the cluster
    # when both wait for that GPU, greedy's claim having arrived first,
    waiting = [queued_claim("g1", 1, "greedy"), queued_claim("m1", 1, "modest")]
    waiting[0].arrival, waiting[1].arrival = 1.0, 2.0
    results = adm.admit_pending(waiting)
    # then modest (share 0) gets it and greedy (share 4/16) keeps waiting.
    assert [(r.workload.key, bool(r)) for r in results] == [
        ("team-a/m1", True),
        ("team-a/g1", False),
    ]


def test_weight_divides_the_share() -> None:
    adm = _admission(
        [
            queue("heavy", [gpu_quota(0)], cohort="c", weight=4),
            queue("light", [gpu_quota(0)], cohort="c", weight=1),
            queue("lender", [gpu_quota(16)], cohort="c"),
        ]
    )
    assert adm.admit(queued_claim("h", 4, "heavy")) and adm.admit(queued_claim("l", 2, "light"))
    # heavy borrows more but, with four times the weight, has the lower share.
    assert adm.queues.share("team-a/heavy") < adm.queues.share("team-a/light")


def test_mig_quotas_are_counted_in_memory_slices() -> None:
    # Given one H100 node with MIG partitions and a queue of 4 memory slices,
    objs = generate_cluster(1, mix={"h100": 1.0}, gpus_per_node=1)
    g = split_objects(objs)
    inv = Inventory.from_objects(g["ResourceSlice"], g["DeviceClass"], g["Node"])
    slices = {"resource": "gpu.nvidia.com/memorySlice", "nominal": 4}
    memory = {"resource": "gpu.nvidia.com/memory", "nominal": "80Gi"}
    # (a generous decision bound: a cold CEL match on a busy machine must not read as "gave up")
    adm = Admission(inv, [queue("q", [slices, memory])], deadline_ms=10_000)

    def mig(name: str, profile: str) -> Any:
        c = claim(
            name,
            [
                exactly(
                    cls="mig.nvidia.com",
                    selectors=[f"device.attributes['gpu.nvidia.com'].profile == '{profile}'"],
                )
            ],
        )
        c["metadata"]["annotations"] = {"modelplane.dev/queue": "q"}
        return workloads_from(c)[0]

    # when a 3g.40gb (4 slices) is admitted, a 1g.10gb (1 slice) no longer fits the quota
    assert adm.admit(mig("big", "3g.40gb"))
    assert adm.queues.usage_report("team-a/q") == {
        "gpu.nvidia.com/memorySlice": "4",
        "gpu.nvidia.com/memory": "40Gi",
    }
    small = adm.admit(mig("small", "1g.10gb"))
    assert not small
    assert "gpu.nvidia.com/memorySlice: 4 in use + 1 requested" in small.reason  # type: ignore[union-attr]
    # though the GPU itself still has three free slices.
    adm.release("team-a/big")
    assert adm.admit(mig("small", "1g.10gb"))


def test_a_bad_quota_names_the_field() -> None:
    with pytest.raises(SchedulingInputError, match=r"spec.quotas\[0\].nominal"):
        _admission([queue("q", [{"deviceClass": "gpu.nvidia.com", "nominal": "lots"}])])
