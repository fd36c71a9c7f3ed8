"""DRA constraints as a typed registry: one class per constraint type, parsed once per claim."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from modelplane.api._dra import DeviceConstraint
from modelplane.scheduling import AllocationResult, Inventory, Unschedulable, plan_claim
from modelplane.scheduling import allocate as _allocate
from modelplane.scheduling.allocation.constraints._base import Constraint, Tracker
from modelplane.scheduling.allocation.constraints._distinct_attribute import DistinctAttribute
from modelplane.scheduling.allocation.constraints._match_attribute import MatchAttribute
from modelplane.scheduling.allocation.constraints._registry import CONSTRAINT_TYPES

from ._dra import PCIE, claim, device_class, exactly, gpu, node_slice

FAST = "gpu.nvidia.com/fast"

#: placement is checked here, not speed (a busy machine must not run out the 50 ms bound)
allocate = partial(_allocate, deadline_ms=10_000)


def _two_nodes() -> Inventory:
    # node-a has two plain GPUs, node-b two GPUs with the attribute ``fast``
    slow = node_slice("node-a", [gpu("gpu-0"), gpu("gpu-1")])
    fast = node_slice(
        "node-b", [gpu("gpu-0", fast={"bool": True}), gpu("gpu-1", fast={"bool": True})]
    )
    return Inventory.from_objects([slow, fast], [device_class()])


def test_each_constraint_of_a_claim_is_parsed_once_into_its_type() -> None:
    # given a claim with one constraint of each type, over different requests
    c = claim(
        "c",
        [exactly("a", count=2), exactly("b")],
        [
            {"matchAttribute": PCIE, "requests": ["a"]},
            {"distinctAttribute": PCIE},
        ],
    )
    # when it is resolved, then each constraint is an object of its type, knowing what it covers
    plan = plan_claim(c, _two_nodes())
    same, distinct = plan.constraints
    assert isinstance(same, MatchAttribute) and isinstance(distinct, DistinctAttribute)
    assert (same.attribute, same.requests, same.needed) == (PCIE, frozenset({"a"}), 2)
    assert (distinct.requests, distinct.needed) == (frozenset(), 3)
    a, b = plan.requests[0][0], plan.requests[1][0]
    assert (a.constraints, b.constraints) == ([0, 1], [1])


def test_a_constraint_without_a_known_type_names_the_known_ones() -> None:
    # given a claim whose constraint names no known type
    c = claim("c", [exactly()], [{"sameRack": PCIE}])
    # then the claim is invalid, and the message says which fields there are
    result = allocate(c, _two_nodes())
    assert isinstance(result, Unschedulable) and result.invalid
    assert "needs matchAttribute or distinctAttribute" in result.reason
    assert "spec.devices.constraints[0]" in result.reason


def test_every_constraint_type_is_a_field_of_the_api() -> None:
    # the registry and the API's DeviceConstraint name the same fields
    fields = {f.alias for f in DeviceConstraint.model_fields.values()} - {"requests"}
    assert set(CONSTRAINT_TYPES) == fields


class _Present(Tracker):
    def admits(self, values: frozenset[Any]) -> bool:
        return bool(values)

    def add(self, values: frozenset[Any]) -> None:
        pass

    def remove(self, values: frozenset[Any]) -> None:
        pass


class _RequireAttribute(Constraint):
    """A made-up type: every device of the covered requests has the attribute."""

    __slots__ = ()
    field = "requireAttribute"
    wording = "the attribute"

    def tracker(self) -> Tracker:
        return _Present()


def test_a_new_constraint_type_is_one_class_in_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a claim for two GPUs that all have the attribute ``fast``
    c = claim("c", [exactly(count=2)], [{"requireAttribute": FAST}])
    # when the type is registered (and nothing else changes)
    monkeypatch.setitem(CONSTRAINT_TYPES, "requireAttribute", _RequireAttribute)
    # then the allocator honours it: only node-b can serve the claim
    result = allocate(c, _two_nodes())
    assert isinstance(result, AllocationResult), result
    assert result.node == "node-b"
    # and a node without such devices is explained in the type's own words
    only_a = allocate(c, _two_nodes(), node="node-a")
    assert isinstance(only_a, Unschedulable)
    assert f"had no 2 devices with the attribute {FAST}" in only_a.reason
