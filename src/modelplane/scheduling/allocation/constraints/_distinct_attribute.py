"""``distinctAttribute``: no two devices of the covered requests share a value of an attribute."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ._base import Constraint, Tracker

__all__ = ["DistinctAttribute"]


class _Taken(Tracker):
    """How many chosen devices hold each value."""

    __slots__ = ("_taken",)

    def __init__(self) -> None:
        self._taken: Counter[Any] = Counter()

    def admits(self, values: frozenset[Any]) -> bool:
        return bool(values) and not any(self._taken[v] for v in values)

    def add(self, values: frozenset[Any]) -> None:
        for v in values:
            self._taken[v] += 1

    def remove(self, values: frozenset[Any]) -> None:
        for v in values:
            self._taken[v] -= 1


class DistinctAttribute(Constraint):
    """``distinctAttribute: <attribute>``: a different value for each device."""

    __slots__ = ()
    field = "distinctAttribute"
    wording = "distinct"

    def tracker(self) -> Tracker:
        return _Taken()
