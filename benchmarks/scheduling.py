"""Scheduling benchmark: ours vs first-fit (upstream DRA) vs binpack (Volcano) on one workload.

    python benchmarks/scheduling.py              # 500 nodes x 8 GPUs, 2,500 claims
    python benchmarks/scheduling.py --quick      # 64 nodes, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.scheduling`` and docs/scheduling.md.
"""

from modelplane.bench.scheduling import main

if __name__ == "__main__":
    raise SystemExit(main())
