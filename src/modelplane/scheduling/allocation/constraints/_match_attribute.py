"""``matchAttribute``: every device of the covered requests has the same value of an attribute.

A list-valued attribute (a tuple) matches by the values all chosen devices share, as Kubernetes
compares them.
"""

from __future__ import annotations

from typing import Any

from ._base import Constraint, Tracker

__all__ = ["MatchAttribute"]


class _Shared(Tracker):
    """The values all chosen devices share, one entry per chosen device (a stack)."""

    __slots__ = ("_stack",)

    def __init__(self) -> None:
        self._stack: list[frozenset[Any]] = []

    def allowed(self) -> frozenset[Any] | None:
        return self._stack[-1] if self._stack else None

    def admits(self, values: frozenset[Any]) -> bool:
        return bool(values) and (not self._stack or bool(self._stack[-1] & values))

    def add(self, values: frozenset[Any]) -> None:
        self._stack.append(self._stack[-1] & values if self._stack else values)

    def remove(self, values: frozenset[Any]) -> None:
        self._stack.pop()


class MatchAttribute(Constraint):
    """``matchAttribute: <attribute>``: one value for all devices of the covered requests."""

    __slots__ = ()
    field = "matchAttribute"
    same_value = True
    wording = "the same"

    def tracker(self) -> Tracker:
        return _Shared()
