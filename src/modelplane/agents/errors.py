"""The errors of the agents package, in one place: what a handler may catch, what the runtime,
the tools and the bundle store raise.

A handler sees :class:`StepFailed`, :class:`NotSerializable`, :class:`ToolDenied` and
:class:`NonDeterminism` (each a :class:`~modelplane.api.errors.ModelplaneError`, so a surface
renders it); :class:`Superseded` is a ``BaseException`` a handler cannot swallow. The others are
the runtime's and the bundle store's own.
"""

from __future__ import annotations

from modelplane.api.errors import ModelplaneError


class StepFailed(ModelplaneError):
    """A step failed on every attempt of the Agent's retry policy; ``message`` keeps its error.

    Journaled: a replay raises it again at the same place without running the step.
    """

    code = 500
    reason = "StepFailed"


class NotSerializable(ModelplaneError):
    """A step result, input or state value that cannot be stored as JSON; the message names it."""

    code = 422
    reason = "Invalid"


class ToolDenied(ModelplaneError):
    """The authorization hook denied a tool call; the message carries its reason."""

    code = 403
    reason = "Forbidden"


class NonDeterminism(ModelplaneError):
    """Replay found a different call than the journal holds at that position."""

    code = 500
    reason = "NonDeterminism"


class Superseded(BaseException):
    """The instance's shard moved to another runtime while a commit was pending: the commit was
    refused and the turn unwinds here without failing the instance (the new owner resumes it
    from the journal). A BaseException, like cancellation, so that a handler's ``except
    Exception`` cannot swallow it and go on writing."""


class Fenced(Exception):
    """A commit refused: the shard's fencing token is no longer the one the writer holds."""

    def __init__(self, shard: int, token: int, current: int | None) -> None:
        super().__init__(
            f"shard {shard} moved to another worker (its fencing token is now {current}, this"
            f" worker holds {token}): the commit was refused and the instance stops here"
        )
        self.shard = shard
        self.token = token
        self.current = current


class ToolRefused(RuntimeError):
    """A streamable-http tool's URL names a host the egress rules refuse."""


class ToolServerMissing(RuntimeError):
    """A stdio tool names a ToolServer that does not exist (yet)."""


class BundleError(Exception):
    """A bundle cannot be packed, stored or found; ``reason`` is a CamelCase word for status."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
