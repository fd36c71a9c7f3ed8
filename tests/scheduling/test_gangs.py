"""Jobs as gangs: all replicas or none, inside one host, rack or block when asked."""

from __future__ import annotations

import pytest

from modelplane.scheduling import Admission, SchedulingInputError, workloads_from

from ._admission import gang, inventory, job, queued_claim, rack_cluster, racks_of


def test_gang_is_placed_all_or_nothing() -> None:
    # Given 2 nodes x 8 GPUs with 12 GPUs taken,
    adm = Admission(inventory(rack_cluster({"r0": 2})))
    assert adm.admit(queued_claim("big", 8, None)) and adm.admit(queued_claim("some", 4, None))
    # when a gang of 3 replicas x 2 GPUs arrives (6 GPUs, only 4 free),
    result = adm.admit(gang(job("train", 3, 2)))
    # then no replica is placed and the reason counts what fitted,
    assert not result
    assert result.reason.startswith("gang of 3 replicas: placed 2, then 0/2 nodes")  # type: ignore[union-attr]
    assert len(adm.state.in_use) == 12
    # and a gang of 2 fits, every replica on its own devices.
    ok = adm.admit(gang(job("small", 2, 2)))
    assert ok and [r.claim for r in ok.results] == ["team-a/small-0", "team-a/small-1"]  # type: ignore[union-attr]
    assert len(adm.state.in_use) == 16


def test_required_rack_topology_keeps_replicas_in_one_rack() -> None:
    # Given two racks of two nodes, r0 half used so only r1 can hold the gang in one rack,
    adm = Admission(inventory(rack_cluster({"r0": 2, "r1": 2})))
    assert adm.admit(queued_claim("half", 8, None))
    # when a gang of 4 x 4 GPUs must stay within one rack,
    result = adm.admit(gang(job("train", 4, 4, required="rack")))
    # then all four replicas are in one rack and the placement names it.
    assert result
    assert racks_of(adm, "team-a/train") == {"r1"}
    assert result.placement.domain == "rack r1"  # type: ignore[union-attr]


def test_required_rack_says_which_rack_came_closest() -> None:
    # Given three racks with 2, 5 and 3 free whole nodes,
    adm = Admission(inventory(rack_cluster({"r1": 2, "r3": 5, "r4": 3})))
    # when a gang of 8 replicas x 8 GPUs must be in one rack,
    result = adm.admit(gang(job("train", 8, 8, required="rack")))
    # then it waits, and the reason names the best rack.
    assert not result
    assert result.reason == (  # type: ignore[union-attr]
        "gang of 8 replicas: no rack has room for 8 replicas of 8 devices each "
        "(best rack r3 has room for 5)"
    )


def test_tightest_fitting_rack_is_used_first_to_keep_empty_racks_whole() -> None:
    # Given an empty rack of 4 nodes and a rack of 4 nodes with 2 whole nodes free,
    adm = Admission(inventory(rack_cluster({"r0": 4, "r1": 4})))
    assert adm.admit(queued_claim("x", 8, None)) and adm.admit(queued_claim("y", 8, None))
    assert {
        adm.inventory.nodes[r.node].rack
        for k in ("team-a/x", "team-a/y")
        for r in adm.running[k].placement.results
    } == {"r0"}
    # a gang of 2 x 8 GPUs goes to the used rack, leaving r1 whole.
    assert adm.admit(gang(job("small", 2, 8, required="rack")))
    assert racks_of(adm, "team-a/small") == {"r0"}


def test_preferred_topology_relaxes_to_a_wider_domain() -> None:
    # Given two racks of one node with 8 GPUs each,
    adm = Admission(inventory(rack_cluster({"r0": 1, "r1": 1})))
    # a gang of 2 x 8 GPUs that prefers one rack still runs, across racks in one block.
    result = adm.admit(gang(job("train", 2, 8, preferred="rack")))
    assert result and result.placement.domain == "block b0"  # type: ignore[union-attr]
    assert racks_of(adm, "team-a/train") == {"r0", "r1"}


def test_preferred_topology_uses_one_rack_when_one_fits() -> None:
    adm = Admission(inventory(rack_cluster({"r0": 2, "r1": 2})))
    assert adm.admit(queued_claim("a", 8, None))
    result = adm.admit(gang(job("train", 2, 4, preferred="rack")))
    assert result and result.placement.domain is not None  # type: ignore[union-attr]
    assert len(racks_of(adm, "team-a/train")) == 1


def test_host_topology_puts_every_replica_on_one_node() -> None:
    adm = Admission(inventory(rack_cluster({"r0": 3})))
    assert adm.admit(queued_claim("a", 6, None))
    result = adm.admit(gang(job("pair", 2, 4, required="host")))
    assert result
    assert len({r.node for r in result.results}) == 1  # type: ignore[union-attr]


def test_a_job_without_gang_is_one_workload_per_replica() -> None:
    workloads = workloads_from(job("batch", 3, 1, gang=False))
    assert [w.key for w in workloads] == ["team-a/batch-0", "team-a/batch-1", "team-a/batch-2"]
    assert {w.job for w in workloads} == {"team-a/batch"}


def test_a_job_without_a_claim_is_refused_with_the_field() -> None:
    bad = job("x", 2, 1)
    del bad["spec"]["claim"]
    with pytest.raises(
        SchedulingInputError, match=r"Job team-a/x: spec.claim.requests is required"
    ):
        workloads_from(bad)
