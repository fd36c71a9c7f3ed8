"""WebAssembly tools on wasmtime: compiled once per digest, pre-instantiated, a fresh Store per call.

The ABI (``modelplane-json-v1``): a tool is a core WebAssembly module identified by the sha256 of
its binary. It exports ``memory``, ``alloc(len: i32) -> i32`` (where the host writes the JSON
arguments) and ``run(ptr: i32, len: i32) -> i64``, which returns ``(out_ptr << 32) | out_len``:
the JSON result in its memory. It may import WASI preview 1 (``wasi_snapshot_preview1``) and
nothing else; WASI capabilities (preopened directories, environment variables) are denied unless
the call's :class:`WasmGrants` grants them. Every call gets a fresh ``Store`` with an epoch
deadline, a memory limit and an output limit; a trap, a deadline, an exhausted memory, a
malformed module or an import not granted is a :class:`~modelplane.sandbox.errors.SandboxError`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import wasmtime

from modelplane.sandbox.errors import (
    SandboxError,
    ToolDeadlineExceeded,
    ToolFailed,
    ToolImportDenied,
    ToolInvalid,
    ToolOutOfMemory,
    ToolOutputTooLarge,
    ToolTrapped,
)

ABI = "modelplane-json-v1"
#: the only import module a tool may use: its functions see only what the call grants
WASI_MODULE = "wasi_snapshot_preview1"
#: the epoch ticker's period: a deadline is met to within about one tick
TICK_S = 0.002
#: a trap with more than this share of the memory limit in use is reported as out of memory
#: (an allocator that doubles its heap is refused once it holds just over half the limit)
OOM_SHARE = 0.5
#: part of a cache file's name: a compiled module fits only the wasmtime and settings it was made by
_ENGINE_TAG = hashlib.sha256(f"{ABI}:{version('wasmtime')}:epoch".encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class WasmLimits:
    """What one call may use: wall time to its epoch deadline, linear memory, output bytes."""

    timeout_s: float = 0.05
    memory_bytes: int = 16 * 1024 * 1024
    output_bytes: int = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DirGrant:
    """A host directory a tool may see at ``guest`` (read-only unless ``writable``)."""

    host: Path
    guest: str
    writable: bool = False


@dataclass(frozen=True, slots=True)
class WasmGrants:
    """WASI capabilities of one call; the default grants nothing."""

    dirs: tuple[DirGrant, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)

    def wasi(self) -> wasmtime.WasiConfig:
        config = wasmtime.WasiConfig()
        if self.env:
            config.env = list(self.env.items())
        for grant in self.dirs:
            if not grant.host.is_dir():
                raise ToolInvalid(f"granted directory {grant.host} does not exist")
            config.preopen_dir(str(grant.host), grant.guest, grant.writable)
        return config


def digest_of(wasm: bytes) -> str:
    """``sha256:<hex>`` of a module's binary: the name a tool is known by."""
    return "sha256:" + hashlib.sha256(wasm).hexdigest()


def to_wasm(data: bytes) -> bytes:
    """The binary of ``data``: a WebAssembly binary as it is, WAT text compiled to one."""
    if data.startswith(b"\0asm"):
        return data
    text = _LEADING_COMMENTS.sub(b"", data)
    if not text.startswith(b"(module"):
        raise ToolInvalid(
            "not WebAssembly: a tool is a binary module (starting with \\0asm) or WAT text"
            f" (starting with '(module', after any ;; comments); got {data[:16]!r}"
        )
    try:
        return bytes(wasmtime.wat2wasm(text.decode("utf-8", errors="replace")))
    except wasmtime.WasmtimeError as exc:
        raise ToolInvalid(f"malformed WAT: {_first_line(exc)}") from None


#: blank lines and ``;;`` comment lines before a WAT module's ``(module``
_LEADING_COMMENTS = re.compile(rb"\A(?:\s+|;;[^\n]*(?:\n|\Z))*")


def _first_line(exc: BaseException) -> str:
    """The line of a wasmtime error that says what happened (its cause, not the backtrace)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if "Caused by:" in lines and lines[-1] != "Caused by:":
        return lines[-1]
    return lines[0] if lines else type(exc).__name__


class _EpochTicker:
    """Advances the engine's epoch every :data:`TICK_S` while any call runs (idle otherwise)."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self._engine = engine
        self._active = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> None:
        with self._cond:
            self._active += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wasm-epoch", daemon=True)
                self._thread.start()
            self._cond.notify()

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._active -= 1

    def _run(self) -> None:
        # an epoch stands for TICK_S of wall time: a late wake-up catches up on the ticks it
        # missed, so a deadline of N ticks is N * TICK_S however busy the machine is
        epochs = 0
        origin = time.monotonic()
        while True:
            with self._cond:
                if self._active == 0:
                    self._cond.wait_for(lambda: self._active > 0)
                    origin, epochs = time.monotonic(), 0
                self._cond.wait(TICK_S)
            due = int((time.monotonic() - origin) / TICK_S)
            while epochs < due:
                self._engine.increment_epoch()
                epochs += 1


@dataclass(frozen=True, slots=True)
class _Compiled:
    module: wasmtime.Module
    pre: wasmtime.InstancePre


class WasmRuntime:
    """Compiles tools once per digest (cached on disk under ``cache_dir``) and runs their calls.

    Thread-safe: calls on different threads each get their own Store.
    """

    def __init__(self, cache_dir: Path | None = None) -> None:
        config = wasmtime.Config()
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self._linker = wasmtime.Linker(self.engine)
        self._linker.define_wasi()
        self._cache_dir = cache_dir
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()
        self._ticker = _EpochTicker(self.engine)

    def load(self, data: bytes, digest: str | None = None) -> WasmTool:
        """The tool made of ``data`` (binary or WAT), checked against ``digest`` when given."""
        wasm = to_wasm(data)
        actual = digest_of(wasm)
        if digest is not None and digest != actual:
            raise ToolInvalid(f"tool digest mismatch: expected {digest}, the module is {actual}")
        with self._lock:
            compiled = self._compiled.get(actual)
            if compiled is None:
                compiled = self._compile(actual, wasm)
                self._compiled[actual] = compiled
        return WasmTool(self, actual, compiled)

    def compile_uncached(self, data: bytes) -> WasmTool:
        """A tool compiled afresh, bypassing both caches (the benchmark's baseline)."""
        wasm = to_wasm(data)
        digest = digest_of(wasm)
        return WasmTool(self, digest, self._link(self._module(wasm)))

    def _compile(self, digest: str, wasm: bytes) -> _Compiled:
        path = self._cache_path(digest)
        if path is not None and path.exists():
            with contextlib.suppress(wasmtime.WasmtimeError):
                return self._link(wasmtime.Module.deserialize_file(self.engine, str(path)))
        module = self._module(wasm)
        compiled = self._link(module)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            part = path.with_suffix(f".{os.getpid()}.part")
            part.write_bytes(bytes(module.serialize()))
            part.replace(path)
        return compiled

    def _cache_path(self, digest: str) -> Path | None:
        if self._cache_dir is None:
            return None
        return self._cache_dir / f"{digest.removeprefix('sha256:')}-{_ENGINE_TAG}.cwasm"

    def _module(self, wasm: bytes) -> wasmtime.Module:
        try:
            return wasmtime.Module(self.engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise ToolInvalid(f"malformed WebAssembly module: {_first_line(exc)}") from None

    def _link(self, module: wasmtime.Module) -> _Compiled:
        _check_abi(module)
        try:
            return _Compiled(module, self._linker.instantiate_pre(module))
        except wasmtime.WasmtimeError as exc:
            raise ToolImportDenied(f"the tool cannot be linked: {_first_line(exc)}") from None


def _check_abi(module: wasmtime.Module) -> None:
    denied = [f"{i.module}.{i.name}" for i in module.imports if i.module != WASI_MODULE]
    if denied:
        raise ToolImportDenied(
            f"the tool imports {', '.join(denied)}, which is not granted: a tool may import"
            f" only {WASI_MODULE} (its capabilities are granted per call)"
        )
    exports = {e.name: e.type for e in module.exports}
    wanted = {"memory": wasmtime.MemoryType, "alloc": wasmtime.FuncType, "run": wasmtime.FuncType}
    missing = [name for name, kind in wanted.items() if not isinstance(exports.get(name), kind)]
    if missing:
        raise ToolInvalid(
            f"the module does not follow the {ABI} ABI: it lacks the export(s)"
            f" {', '.join(missing)} (memory; alloc(i32) -> i32; run(i32, i32) -> i64)"
        )


class WasmTool:
    """One compiled tool; :meth:`call` runs it with JSON arguments in a fresh Store."""

    def __init__(self, runtime: WasmRuntime, digest: str, compiled: _Compiled) -> None:
        self.runtime = runtime
        self.digest = digest
        self._pre = compiled.pre

    def call(
        self, args: Any, *, limits: WasmLimits | None = None, grants: WasmGrants | None = None
    ) -> Any:
        """Run the tool on ``args`` (JSON-serialisable); its JSON result, or a SandboxError."""
        limits = limits or WasmLimits()
        payload = json.dumps(args, separators=(",", ":")).encode()
        store = wasmtime.Store(self.runtime.engine)
        store.set_limits(memory_size=limits.memory_bytes)
        store.set_wasi((grants or _NO_GRANTS).wasi())
        store.set_epoch_deadline(max(1, round(limits.timeout_s / TICK_S)))
        with self.runtime._ticker:
            raw = self._run(store, payload, limits)
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ToolFailed(
                f"tool {self.digest[:19]} returned output that is not JSON: {exc}"
            ) from None

    def _run(self, store: wasmtime.Store, payload: bytes, limits: WasmLimits) -> bytes:
        memory: wasmtime.Memory | None = None
        try:
            instance = self._pre.instantiate(store)
            exports = instance.exports(store)
            exported, alloc, run = exports["memory"], exports["alloc"], exports["run"]
            assert isinstance(exported, wasmtime.Memory)
            memory = exported
            assert isinstance(alloc, wasmtime.Func) and isinstance(run, wasmtime.Func)
            ptr = alloc(store, len(payload))
            memory.write(store, payload, ptr)
            packed = run(store, ptr, len(payload))
            out_ptr, out_len = (packed >> 32) & 0xFFFFFFFF, packed & 0xFFFFFFFF
            if out_len > limits.output_bytes:
                raise ToolOutputTooLarge(
                    f"tool {self.digest[:19]} returned {out_len} bytes, over its output limit"
                    f" of {limits.output_bytes} bytes"
                )
            if out_ptr + out_len > memory.data_len(store):
                raise ToolTrapped(f"tool {self.digest[:19]} returned a result outside its memory")
            return bytes(memory.read(store, out_ptr, out_ptr + out_len))
        except SandboxError:
            raise
        except (wasmtime.Trap, wasmtime.WasmtimeError, IndexError, TypeError) as exc:
            raise self._explain(exc, store, memory, limits) from None

    def _explain(
        self,
        exc: Exception,
        store: wasmtime.Store,
        memory: wasmtime.Memory | None,
        limits: WasmLimits,
    ) -> SandboxError:
        name = f"tool {self.digest[:19]}"
        if isinstance(exc, wasmtime.Trap) and exc.trap_code == wasmtime.TrapCode.INTERRUPT:
            return ToolDeadlineExceeded(f"{name} ran past its deadline of {limits.timeout_s}s")
        # wasmtime-py cannot make a refused memory.grow trap: the tool sees -1 and usually traps
        # soon after, so a trap with much of the limit in use is reported as out of memory
        if memory is not None and memory.data_len(store) > OOM_SHARE * limits.memory_bytes:
            return ToolOutOfMemory(
                f"{name} trapped at its memory limit of {limits.memory_bytes} bytes"
                f" ({memory.data_len(store)} in use; {_first_line(exc)})"
            )
        if memory is None and "memory" in str(exc):
            return ToolOutOfMemory(
                f"{name} needs more memory than its limit of {limits.memory_bytes} bytes"
                f" ({_first_line(exc)})"
            )
        return ToolTrapped(f"{name} trapped: {_first_line(exc)}")


_NO_GRANTS = WasmGrants()
