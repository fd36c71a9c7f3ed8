"""Sandbox benchmark: WASM tool calls beside a fresh compile and ``python -c`` per call, the
runaway-loop stop time, idle sandboxes per GB, process-sandbox start beside a bare subprocess, and
the escape probes.

* ``wasm.call`` — p50/p99 of one JSON-in/JSON-out call of the echo tool, compiled once per digest
  and pre-instantiated (a fresh Store and instance per call); ``wasm.fresh_compile``, the same
  call on a Module compiled afresh each time (the baseline); ``wasm.python_c``, spawning
  ``python -c`` per call with JSON on stdin (the other baseline);
* ``wasm.first_call`` — a new digest's first call (compile, serialize to the disk cache) and the
  first call of that digest in a restarted runtime (deserialized from the cache);
* ``wasm.runaway`` — how long after its start a call of an endless loop is stopped, with a 50 ms
  deadline;
* ``wasm.idle_per_gb`` — instances held idle (each its own Store), per GB of RSS they add;
* ``process`` — start-to-exit of ``/bin/true`` under the process sandbox, beside a bare
  ``subprocess.run`` of the same (the baseline);
* ``probes`` — the escape probes of :mod:`modelplane.sandbox.probes`, and how many were denied.

Progress goes to stderr; the last stdout line is one JSON object with the figures, the goals and
whether each was met (``null`` where the machine lacks the process sandbox, with the reason).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import wasmtime

from modelplane.bench._figures import parse_sized, percentile, print_summary, progress
from modelplane.sandbox import (
    ProcessSandbox,
    SandboxUnavailable,
    ToolDeadlineExceeded,
    WasmLimits,
    WasmRuntime,
)
from modelplane.sandbox.probes import ECHO_WAT, RUNAWAY_WAT, run_escape_probes

GOALS = {
    "wasm_call_p99_us": 250.0,
    "idle_per_gb": 1000.0,
    "runaway_stop_ms": 100.0,
    "process_start_p99_ms": 50.0,
    "probes_denied_share": 1.0,
}
_ARGS = {"query": "weather in Zürich", "days": [1, 2, 3]}
_say = progress("sandbox")


def _timed(fn: Callable[[], object], n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"p50_us": percentile(times, 0.5) * 1e6, "p99_us": percentile(times, 0.99) * 1e6}


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _wasm_calls(runtime: WasmRuntime, calls: int, compiles: int, spawns: int) -> dict[str, Any]:
    tool = runtime.load(ECHO_WAT.encode())
    for _ in range(50):
        tool.call(_ARGS)  # warm-up
    _say(f"wasm: {calls} calls of the cached, pre-instantiated tool")
    cached = _timed(lambda: tool.call(_ARGS), calls)
    _say(f"wasm: {compiles} calls each on a fresh compile")
    fresh = _timed(lambda: runtime.compile_uncached(ECHO_WAT.encode()).call(_ARGS), compiles)
    payload = json.dumps(_ARGS).encode()
    script = "import json,sys; print(json.dumps(json.load(sys.stdin)))"
    _say(f"wasm: {spawns} spawns of python -c")
    spawn = _timed(
        lambda: subprocess.run(
            [sys.executable, "-c", script], input=payload, capture_output=True, check=True
        ),
        spawns,
    )
    return {
        "call": cached,
        "fresh_compile": fresh,
        "python_c": spawn,
        "speedup_p50_over_fresh_compile": fresh["p50_us"] / cached["p50_us"],
        "speedup_p50_over_python_c": spawn["p50_us"] / cached["p50_us"],
    }


def _first_calls(digests: int) -> dict[str, Any]:
    """A new digest each time (a unique export name), through an empty disk cache, then again."""
    with tempfile.TemporaryDirectory() as tmp:
        sources = [
            ECHO_WAT.replace("(module", f'(module (global (export "v{i}") i32 (i32.const {i}))', 1)
            for i in range(digests)
        ]
        runtime = WasmRuntime(Path(tmp))
        new = _timed_each(lambda s: runtime.load(s.encode()).call(_ARGS), sources)
        restarted = WasmRuntime(Path(tmp))
        cached = _timed_each(lambda s: restarted.load(s.encode()).call(_ARGS), sources)
    return {"new_digest": new, "after_restart_from_disk": cached}


def _timed_each(fn: Callable[[str], object], items: Sequence[str]) -> dict[str, float]:
    it = iter(items)
    return _timed(lambda: fn(next(it)), len(items))


def _runaway(runtime: WasmRuntime, runs: int) -> dict[str, Any]:
    tool = runtime.load(RUNAWAY_WAT.encode())
    limits = WasmLimits(timeout_s=0.05)
    stops = []
    for _ in range(runs):
        start = time.perf_counter()
        try:
            tool.call({}, limits=limits)
        except ToolDeadlineExceeded:
            stops.append(time.perf_counter() - start)
    return {
        "deadline_ms": limits.timeout_s * 1000,
        "stopped": len(stops),
        "runs": runs,
        "stop_p50_ms": percentile(stops, 0.5) * 1000,
        "stop_max_ms": max(stops, default=float("nan")) * 1000,
    }


def _idle(runtime: WasmRuntime, count: int) -> dict[str, Any]:
    tool = runtime.load(ECHO_WAT.encode())
    pre = tool._pre  # the benchmark holds instances the way a resident agent would
    before = _rss_bytes()
    held = []
    for _ in range(count):  # each instance called once, as a resident agent's tool would be
        store = wasmtime.Store(runtime.engine)
        instance = pre.instantiate(store)
        store.set_epoch_deadline(1 << 30)
        run = instance.exports(store)["run"]
        assert isinstance(run, wasmtime.Func)
        run(store, 8192, 0)
        held.append((store, instance))
    added = max(_rss_bytes() - before, 1)
    return {"instances": count, "rss_added_bytes": added, "per_gb": count / (added / 1e9)}


def _process(starts: int) -> dict[str, Any]:
    box = ProcessSandbox()
    try:
        box.run(["/bin/true"])
    except SandboxUnavailable as exc:
        return {"unavailable": str(exc)}
    _say(f"process: {starts} sandboxed and {starts} bare starts of /bin/true")
    sandboxed = _timed(lambda: box.run(["/bin/true"]), starts)
    bare = _timed(lambda: subprocess.run(["/bin/true"], check=True), starts)
    ms = {k.replace("_us", "_ms"): v / 1000 for k, v in sandboxed.items()}
    bare_ms = {k.replace("_us", "_ms"): v / 1000 for k, v in bare.items()}
    return {"sandboxed": ms, "bare": bare_ms, "ratio_p50": ms["p50_ms"] / bare_ms["p50_ms"]}


def _probes(runtime: WasmRuntime) -> dict[str, Any]:
    try:
        results = run_escape_probes(ProcessSandbox(), runtime)
    except SandboxUnavailable as exc:
        return {"unavailable": str(exc)}
    escaped = [r.name for r in results if not r.denied]
    return {"total": len(results), "denied": len(results) - len(escaped), "escaped": escaped}


def run(*, calls: int, compiles: int, spawns: int, starts: int, idle: int) -> dict[str, Any]:
    runtime = WasmRuntime()
    wasm = _wasm_calls(runtime, calls, compiles, spawns)
    wasm["first_call"] = _first_calls(max(3, compiles // 4))
    _say("wasm: runaway loops and idle instances")
    wasm["runaway"] = _runaway(runtime, max(5, compiles // 4))
    wasm["idle"] = _idle(runtime, idle)
    process = _process(starts)
    _say("escape probes")
    probes = _probes(runtime)
    result: dict[str, Any] = {
        "benchmark": "sandbox",
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "wasm": wasm,
        "process": process,
        "probes": probes,
        "goals": {k: (">= " if k in ("idle_per_gb", "probes_denied_share") else "<= ") + f"{v:g}"
                  for k, v in GOALS.items()},
    }  # fmt: skip
    result["met"] = _met(wasm, process, probes)
    return result


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _met(wasm: dict[str, Any], process: dict[str, Any], probes: dict[str, Any]) -> dict[str, Any]:
    start = process.get("sandboxed")
    return {
        "wasm_call_p99_us": wasm["call"]["p99_us"] <= GOALS["wasm_call_p99_us"],
        "idle_per_gb": wasm["idle"]["per_gb"] >= GOALS["idle_per_gb"],
        "runaway_stop_ms": wasm["runaway"]["stopped"] == wasm["runaway"]["runs"]
        and wasm["runaway"]["stop_max_ms"] <= GOALS["runaway_stop_ms"],
        "process_start_p99_ms": None
        if start is None
        else start["p99_ms"] <= GOALS["process_start_p99_ms"],
        "probes_denied_share": None if "total" not in probes else not probes["escaped"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python benchmarks/sandbox.py [--quick]``."""
    parser = argparse.ArgumentParser(
        prog="modelplane bench sandbox",
        description="Measure WASM tool calls, runaway stops, process-sandbox starts and escape"
        " probes; prints one JSON line.",
    )
    parser.add_argument("--calls", type=int, default=5000, help="cached WASM calls timed")
    parser.add_argument("--compiles", type=int, default=100, help="fresh compiles timed")
    parser.add_argument("--spawns", type=int, default=50, help="python -c spawns timed")
    parser.add_argument("--starts", type=int, default=100, help="process-sandbox starts timed")
    parser.add_argument("--idle", type=int, default=2000, help="idle WASM instances held")
    quick = {"calls": 200, "compiles": 8, "spawns": 3, "starts": 5, "idle": 1000}
    args = parse_sized(parser, argv, quick)
    print_summary(
        run(
            calls=args.calls,
            compiles=args.compiles,
            spawns=args.spawns,
            starts=args.starts,
            idle=args.idle,
        )
    )
    return 0
