"""Sandbox benchmark: WASM tool calls (cached and pre-instantiated) beside a fresh compile and
``python -c`` per call, runaway-loop stops, idle instances per GB, process-sandbox starts beside a
bare subprocess, escape probes denied.

    python benchmarks/sandbox.py              # full run (under a minute)
    python benchmarks/sandbox.py --quick      # small sizes, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.sandbox`` and docs/benchmarks.md.
"""

from modelplane.bench.sandbox import main

if __name__ == "__main__":
    raise SystemExit(main())
