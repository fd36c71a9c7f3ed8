"""Shared limits benchmark: overshoot of rate limits across 3 gateways on PostgreSQL, and the
per-request latency they cost beside per-process limits.

    python benchmarks/shared_limits.py            # full run (a few minutes)
    python benchmarks/shared_limits.py --quick    # small sizes, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.shared_limits`` and
docs/benchmarks.md.
"""

from modelplane.bench.shared_limits import main

if __name__ == "__main__":
    raise SystemExit(main())
