"""The scheduler's exceptions: what a caller catches, in one place."""

from __future__ import annotations

__all__ = ["CelCompileError", "CelRuntimeError", "MatchingTimeout", "SchedulingInputError"]


class CelCompileError(ValueError):
    """A selector expression does not parse."""


class CelRuntimeError(ValueError):
    """A selector expression failed while evaluating against a device."""


class MatchingTimeout(Exception):
    """Matching selectors against the inventory ran past the decision's deadline."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"matched {done} of {total} devices")
        self.done, self.total = done, total


class SchedulingInputError(ValueError):
    """An object handed to the scheduler is malformed; the message names the field and the fix."""
