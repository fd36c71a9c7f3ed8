"""Routing benchmark: the gateway's policies on simulated vLLM-like replicas (benchmark 3).

    python benchmarks/routing.py              # full run (about a minute and a half)
    python benchmarks/routing.py --quick      # shorter traces, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.routing`` and docs/benchmarks.md.
"""

from modelplane.bench.routing import main

if __name__ == "__main__":
    raise SystemExit(main())
