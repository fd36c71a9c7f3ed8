"""WebAssembly tools: the JSON ABI, the digest cache, limits and capabilities (tools are WAT text)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import wasmtime

from modelplane.sandbox import (
    DirGrant,
    ToolDeadlineExceeded,
    ToolFailed,
    ToolImportDenied,
    ToolInvalid,
    ToolOutOfMemory,
    ToolOutputTooLarge,
    ToolTrapped,
    WasmGrants,
    WasmLimits,
    WasmRuntime,
    digest_of,
)
from modelplane.sandbox._tools import ECHO, ENVIRON, GREEDY, PREOPEN, RUNAWAY, SMUGGLER

TRAP = """(module (memory (export "memory") 1)
 (func (export "alloc") (param i32) (result i32) i32.const 8192)
 (func (export "run") (param i32 i32) (result i64) unreachable))"""

#: claims a 1 MiB result from a one-page memory... within its memory, but over a small limit
BIG = """(module (memory (export "memory") 1)
 (func (export "alloc") (param i32) (result i32) i32.const 8192)
 (func (export "run") (param i32 i32) (result i64) i64.const 65536))"""

NOT_JSON = """(module (memory (export "memory") 1) (data (i32.const 0) "hello")
 (func (export "alloc") (param i32) (result i32) i32.const 8192)
 (func (export "run") (param i32 i32) (result i64) i64.const 5))"""


@pytest.fixture
def runtime(tmp_path: Path) -> WasmRuntime:
    return WasmRuntime(tmp_path / "cache")


def test_echo_tool_returns_its_json_arguments(runtime: WasmRuntime) -> None:
    tool = runtime.load(ECHO.encode())
    args = {"city": "Zürich", "days": [1, 2, 3], "nested": {"ok": True}}
    assert tool.call(args) == args
    assert tool.digest.startswith("sha256:") and len(tool.digest) == 71


def test_a_tool_is_compiled_once_per_digest_and_cached_on_disk(tmp_path: Path) -> None:
    first = WasmRuntime(tmp_path / "cache")
    tool = first.load(ECHO.encode())
    cached = list((tmp_path / "cache").glob("*.cwasm"))
    assert [p.name.split("-")[0] for p in cached] == [tool.digest.removeprefix("sha256:")]
    # a second runtime (a restarted worker) deserializes instead of compiling
    again = WasmRuntime(tmp_path / "cache").load(ECHO.encode(), digest=tool.digest)
    assert again.call([1]) == [1]


def test_a_corrupt_cache_entry_is_compiled_again(tmp_path: Path) -> None:
    tool = WasmRuntime(tmp_path / "cache").load(ECHO.encode())
    for path in (tmp_path / "cache").glob("*.cwasm"):
        path.write_bytes(b"not a serialized module")
    assert WasmRuntime(tmp_path / "cache").load(ECHO.encode(), digest=tool.digest).call(2) == 2


def test_a_wrong_digest_is_refused(runtime: WasmRuntime) -> None:
    with pytest.raises(ToolInvalid, match="digest mismatch"):
        runtime.load(ECHO.encode(), digest="sha256:" + "0" * 64)


def test_runaway_loop_is_stopped_by_its_deadline(runtime: WasmRuntime) -> None:
    tool = runtime.load(RUNAWAY.encode())
    started = time.monotonic()
    with pytest.raises(ToolDeadlineExceeded, match="deadline"):
        tool.call({}, limits=WasmLimits(timeout_s=0.02))
    # stopped at all is the point; the figure (within 100 ms) is the benchmark's
    assert time.monotonic() - started < 5
    assert runtime.load(ECHO.encode()).call("still works") == "still works"


def test_memory_without_bound_is_out_of_memory(runtime: WasmRuntime) -> None:
    with pytest.raises(ToolOutOfMemory, match="memory limit of 4194304"):
        runtime.load(GREEDY.encode()).call({}, limits=WasmLimits(memory_bytes=4 << 20))


def test_a_module_needing_more_memory_than_allowed_does_not_start(runtime: WasmRuntime) -> None:
    with pytest.raises(ToolOutOfMemory, match="needs more memory"):
        runtime.load(ECHO.encode()).call({}, limits=WasmLimits(memory_bytes=1024))


def test_a_trap_is_a_tool_error(runtime: WasmRuntime) -> None:
    with pytest.raises(ToolTrapped, match="unreachable"):
        runtime.load(TRAP.encode()).call({})


def test_output_over_the_limit_is_refused(runtime: WasmRuntime) -> None:
    with pytest.raises(ToolOutputTooLarge, match="65536 bytes, over its output limit of 1000"):
        runtime.load(BIG.encode()).call({}, limits=WasmLimits(output_bytes=1000))


def test_output_that_is_not_json_is_a_tool_error(runtime: WasmRuntime) -> None:
    with pytest.raises(ToolFailed, match="not JSON"):
        runtime.load(NOT_JSON.encode()).call({})


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"print('hello')", "not WebAssembly"),
        (b"\0asm\x01\0\0\0garbage", "malformed WebAssembly"),
        (b"(module (func", "malformed WAT"),
        (b'(module (func (export "f")))', "lacks the export"),
    ],
)
def test_bad_modules_are_refused_with_the_reason(
    runtime: WasmRuntime, data: bytes, match: str
) -> None:
    with pytest.raises(ToolInvalid, match=match):
        runtime.load(data)


def test_a_module_importing_what_was_not_granted_is_refused(runtime: WasmRuntime) -> None:
    with pytest.raises(ToolImportDenied, match=r"env\.host_exec"):
        runtime.load(SMUGGLER.encode())


def test_directories_are_denied_unless_granted(runtime: WasmRuntime, tmp_path: Path) -> None:
    tool = runtime.load(PREOPEN.encode())
    assert tool.call({}) == {"granted": False}
    grant = WasmGrants(dirs=(DirGrant(tmp_path, "/data"),))
    assert tool.call({}, grants=grant) == {"granted": True}


def test_environment_is_empty_unless_granted(runtime: WasmRuntime) -> None:
    tool = runtime.load(ENVIRON.encode())
    assert tool.call({}) == {"env": ""}
    assert tool.call({}, grants=WasmGrants(env={"API_TOKEN": "t0k"})) == {"env": "API_TOKEN=t0k"}


def test_a_granted_directory_must_exist(runtime: WasmRuntime, tmp_path: Path) -> None:
    grant = WasmGrants(dirs=(DirGrant(tmp_path / "missing", "/data"),))
    with pytest.raises(ToolInvalid, match="does not exist"):
        runtime.load(PREOPEN.encode()).call({}, grants=grant)


def test_wat_text_and_its_binary_are_one_tool(runtime: WasmRuntime) -> None:
    binary = bytes(wasmtime.wat2wasm(ECHO))
    assert runtime.load(ECHO.encode()).digest == digest_of(binary)
    assert digest_of(binary) == "sha256:" + hashlib.sha256(binary).hexdigest()
    assert runtime.load(binary).call("x") == "x"
