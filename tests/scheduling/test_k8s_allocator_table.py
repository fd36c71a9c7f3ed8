"""Kubernetes' own allocator test table, run against ``modelplane.scheduling``.

The cases (``_k8s_cases.py``) are upstream's, translated case by case; each test id is the
upstream case name. A case asks one node (``node-1`` unless upstream says otherwise) to take
all its claims at once (:func:`allocate_many`, the devices in slice order as upstream's
first-fit search finds them) and compares the claims' ``status.allocation`` with upstream's
expectation: devices, admin access, tolerations, share IDs, consumed capacity, binding
conditions, the node selector and the copied configuration.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from modelplane.scheduling import (
    AllocatedState,
    AllocationResult,
    Inventory,
    SchedulingInputError,
    Unschedulable,
    allocate_many,
)

from . import _k8s_cases as k8s

CASES = k8s.cases()

NODES = [
    {"metadata": {"name": k8s.N1, "labels": {"region": "region-1", "planet": "earth"}}},
    {"metadata": {"name": k8s.N2, "labels": {"region": "region-2", "planet": "earth"}}},
]


def _held(case: k8s.Case) -> list[dict[str, Any]]:
    """Claims holding upstream's ``allocatedDevices`` and ``allocatedCapacityDevices``."""
    results: list[dict[str, Any]] = [
        {"request": "r", "driver": d, "pool": p, "device": n} for d, p, n in case.allocated
    ]
    for (d, p, n), consumed in case.allocated_capacity.items():
        results.append(
            {
                "request": "r",
                "driver": d,
                "pool": p,
                "device": n,
                "shareID": "held",
                "consumedCapacity": consumed,
            }
        )
    return [
        {
            "metadata": {"name": f"held-{i}", "namespace": "default"},
            "status": {"allocation": {"devices": {"results": [r]}}},
        }
        for i, r in enumerate(results)
    ]


def _run(case: k8s.Case, slices: list[dict[str, Any]] | None = None) -> Any:
    try:
        inv = Inventory.from_objects(case.slices if slices is None else slices, case.classes, NODES)
    except SchedulingInputError as exc:
        return exc
    state = AllocatedState.from_claims(inv, _held(case))
    return allocate_many(
        case.claims,
        inv,
        allocated_state=state,
        node=case.node,
        deadline_ms=10_000,
        policy="first-fit",
    )


def _normal(result: AllocationResult) -> dict[str, Any]:
    status = result.to_status()["allocation"]
    results = []
    for r in status["devices"]["results"]:
        r = dict(r)
        if "shareID" in r:
            r["shareID"] = "<share>"  # upstream replaces every share ID with a fixed one
        results.append(r)
    selector = status.get("nodeSelector")
    if selector == k8s.local(result.node):
        selector = k8s.LOCAL
    return {
        "selector": selector,
        "results": sorted(results, key=repr),
        "config": status["devices"].get("config", []),
    }


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_upstream_allocator_case(case: k8s.Case) -> None:
    out = _run(case)
    if case.expect is None:
        assert isinstance(out, Unschedulable), f"allocated, upstream allocates nothing: {out}"
        return
    if isinstance(case.expect, str):
        text = case.expect.removeprefix("error:")
        assert isinstance(out, Unschedulable | SchedulingInputError), out
        reason = out.reason if isinstance(out, Unschedulable) else str(out)
        assert text.lower() in reason.lower()
        return
    assert isinstance(out, list), getattr(out, "reason", out)
    got = [_normal(r) for r in out]
    want = [{**e, "results": sorted(e["results"], key=repr)} for e in case.expect]
    assert got == want


PERMUTED = [c for c in CASES if 1 < len(c.slices) <= 4 and not isinstance(c.expect, str)]


@pytest.mark.parametrize("case", PERMUTED, ids=[c.name for c in PERMUTED])
def test_the_answer_does_not_depend_on_the_order_of_slices(case: k8s.Case) -> None:
    # Given every order of the case's ResourceSlices (counter sets before or after the
    # devices that consume them, pools split over slices in any order),
    outcomes = set()
    for order in itertools.permutations(case.slices):
        out = _run(case, list(order))
        # then whether the claims fit, and how many devices each gets, never changes.
        outcomes.add(None if not isinstance(out, list) else tuple(len(r.devices) for r in out))
    assert len(outcomes) == 1, outcomes


def test_a_selector_failing_on_another_nodes_device_does_not_fail_the_claim() -> None:
    # Given a device on node-2 whose attributes make the selector fail at run time,
    a = k8s.cls(k8s.CA, k8s.DA)
    expr = f'device.attributes["{k8s.DA}"].size > 1'
    slices = [
        k8s.slc("s1", k8s.N1, k8s.P1, k8s.DA, k8s.dev("device-1", None, {"size": 2})),
        k8s.slc("s2", k8s.N2, k8s.P2, k8s.DA, k8s.dev("device-1", None, {"size": "big"})),
    ]
    inv = Inventory.from_objects(slices, [a], NODES)
    claim = k8s.claim("claim-0", k8s.req("req-0", k8s.CA, 1, k8s.cel(expr)))
    # when the claim is allocated on node-1 (or anywhere),
    on_node = allocate_many([claim], inv, node=k8s.N1, policy="first-fit")
    anywhere = allocate_many([claim], inv, policy="first-fit")
    # then node-1's device serves it; the error on node-2 stays node-2's.
    assert isinstance(on_node, list) and on_node[0].results[0]["pool"] == k8s.P1
    assert isinstance(anywhere, list) and anywhere[0].node == k8s.N1
    on_two = allocate_many([claim], inv, node=k8s.N2, policy="first-fit")
    assert isinstance(on_two, Unschedulable) and "CEL runtime error" in on_two.reason


EFFORT = [c for c in CASES if c.name in k8s.UPSTREAM_STEPS]


@pytest.mark.parametrize("case", EFFORT, ids=[c.name for c in EFFORT])
def test_the_search_takes_no_more_steps_than_upstreams(case: k8s.Case) -> None:
    # Given a case where upstream's table pins its search effort,
    out = _run(case)
    steps = out.steps if isinstance(out, Unschedulable) else sum(r.steps for r in out[:1])
    # then Modelplane's search tries no more devices than upstream's does.
    assert steps <= k8s.UPSTREAM_STEPS[case.name], steps


def test_the_claim_limit_is_checked_before_the_search_fills_it() -> None:
    # Given two firstAvailable requests of 128 or 64 devices each, 256 devices on the node,
    (case,) = [c for c in CASES if c.name in k8s.UPSTREAM_STEPS_COARSER]
    out = _run(case)
    assert isinstance(out, list)
    # then the 128-device alternatives, which leave the other request no room under the
    # claim's limit of 128 results, are never searched: at most one try per device.
    assert out[0].steps <= len(case.slices[0]["spec"]["devices"]), out[0].steps


def test_every_case_upstream_counts_steps_for_is_translated() -> None:
    names = {c.name for c in CASES}
    assert set(k8s.UPSTREAM_STEPS) | set(k8s.UPSTREAM_STEPS_COARSER) <= names
    assert len(EFFORT) == len(k8s.UPSTREAM_STEPS)


def test_every_upstream_case_but_the_gate_off_ones_is_translated_once() -> None:
    # upstream's table: 212 cases, 14 of them about a feature gate being off
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) == 212 - 14
