"""The errors of the serving package, in one place: a request a worker's engine refuses, an
artifact that cannot be imported or loaded, a model source outside the operator's model roots, a
replica the node agent cannot start yet."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class EngineError(Exception):
    """A request the engine cannot serve; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param


class ArtifactError(Exception):
    """An artifact cannot be imported or loaded; the message says what to do."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SourceNotAllowed(Exception):
    """A local source outside every folder the operator lets the platform read models from."""

    def __init__(self, source: str, roots: Sequence[Path]) -> None:
        where = ", ".join(str(r) for r in roots) or "none"
        self.message = (
            f"source {source!r} is outside the folders this platform reads models from"
            f" (--model-root: {where}); import the artifact with `modelplane models import PATH`"
            " (it is then found by its digest), or ask an operator to add its folder with"
            " --model-root"
        )
        super().__init__(self.message)


class ReplicaProblem(Exception):
    """Why the node agent cannot start a replica yet: ``reason`` (CamelCase, for the Endpoint's
    ``Ready`` condition) and a message saying what to fix."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message
