"""Every exception class of the sandbox package: what a tool call through a sandbox may raise.

Each is a :class:`SandboxError` (a :class:`~modelplane.api.errors.ModelplaneError`, so a surface
renders it without a traceback). The agent runtime turns any of them into a tool error the
handler sees; the instance and the worker survive.
"""

from __future__ import annotations

from modelplane.api.errors import ModelplaneError


class SandboxError(ModelplaneError):
    """A tool could not run in its sandbox, or was stopped there; the message says why."""

    code = 500
    reason = "SandboxError"


class SandboxUnavailable(SandboxError):
    """The machine lacks what the sandbox needs (bubblewrap, user namespaces); never run bare."""

    code = 503
    reason = "SandboxUnavailable"


class ToolInvalid(SandboxError):
    """The tool itself is wrong: not WebAssembly, malformed, the wrong ABI, the wrong digest."""

    code = 422
    reason = "Invalid"


class ToolImportDenied(ToolInvalid):
    """A WebAssembly tool imports a function it was not granted (the message names it)."""

    code = 403
    reason = "Forbidden"


class ToolDeadlineExceeded(SandboxError):
    """The tool ran past its time limit (epoch deadline, wall clock or CPU seconds)."""

    code = 504
    reason = "Timeout"


class ToolOutOfMemory(SandboxError):
    """The tool reached its memory limit."""

    code = 507
    reason = "OutOfMemory"


class ToolOutputTooLarge(SandboxError):
    """The tool wrote more output than its limit allows; it was cut off."""

    code = 507
    reason = "OutputTooLarge"


class ToolTrapped(SandboxError):
    """A WebAssembly tool trapped (unreachable, out-of-bounds access, stack overflow...)."""

    reason = "Trapped"


class ToolFailed(SandboxError):
    """A sandboxed process exited with an error, or a tool's output was not JSON."""

    reason = "ToolFailed"
