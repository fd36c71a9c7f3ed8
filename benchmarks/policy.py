"""Policy benchmark: Cedar decision latency beside the naive use, decisions/s, admission
overhead on the store write path, list filtering.

    python benchmarks/policy.py              # full run (a few minutes on a busy machine)
    python benchmarks/policy.py --quick      # small sizes, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.policy`` and docs/benchmarks.md.
"""

from modelplane.bench.policy import main

if __name__ == "__main__":
    raise SystemExit(main())
