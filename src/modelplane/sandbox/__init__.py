"""Sandboxes for agent tools: WebAssembly modules on wasmtime, native processes under bubblewrap.

Owns running one tool call isolated from the platform: :class:`WasmRuntime` (a tool is a module
named by its sha256 digest, compiled once and cached on disk, a fresh Store per call with an epoch
deadline, memory and output limits, WASI capabilities denied unless granted) and
:class:`ProcessSandbox` (namespaces, a read-only system, a private ``/tmp``, no network unless
granted, rlimits, a seccomp filter, a wall clock that kills the process group, capped output),
a :class:`HostForwarder` through which a process reaches only the hosts granted to it,
and the escape probes that check both (:mod:`modelplane.sandbox.probes`). Every failure is a
:class:`~modelplane.sandbox.errors.SandboxError`. It must not touch the store or other
subsystems (it reads the operator's egress rules, :mod:`modelplane.egress`): what a tool may be
granted comes from its caller (the Agent's spec today).
"""

from modelplane.sandbox._forward import PROXY_ENV, HostForwarder, NetworkEvent, granted
from modelplane.sandbox._process import (
    ProcessGrants,
    ProcessLimits,
    ProcessResult,
    ProcessSandbox,
)
from modelplane.sandbox._wasm import (
    ABI,
    DirGrant,
    WasmGrants,
    WasmLimits,
    WasmRuntime,
    WasmTool,
    digest_of,
)
from modelplane.sandbox.errors import (
    SandboxError,
    SandboxUnavailable,
    ToolDeadlineExceeded,
    ToolFailed,
    ToolImportDenied,
    ToolInvalid,
    ToolOutOfMemory,
    ToolOutputTooLarge,
    ToolTrapped,
)

__all__ = [
    "ABI",
    "PROXY_ENV",
    "DirGrant",
    "HostForwarder",
    "NetworkEvent",
    "ProcessGrants",
    "ProcessLimits",
    "ProcessResult",
    "ProcessSandbox",
    "SandboxError",
    "SandboxUnavailable",
    "ToolDeadlineExceeded",
    "ToolFailed",
    "ToolImportDenied",
    "ToolInvalid",
    "ToolOutOfMemory",
    "ToolOutputTooLarge",
    "ToolTrapped",
    "WasmGrants",
    "WasmLimits",
    "WasmRuntime",
    "WasmTool",
    "digest_of",
    "granted",
]
