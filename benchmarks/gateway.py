"""Gateway benchmark: overhead over a direct call, throughput, routing decisions, memory.

    python benchmarks/gateway.py              # full run (a few minutes)
    python benchmarks/gateway.py --quick      # small sizes, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.gateway`` and docs/benchmarks.md.
"""

from modelplane.bench.gateway import main

if __name__ == "__main__":
    raise SystemExit(main())
