"""Batching benchmark: round vs continuous batching of the transformers worker on SmolLM2 (CPU),
throughput and TTFT p99 at 1, 4 and 16 concurrent clients, side by side in one run.

    python benchmarks/batching.py            # 1, 4, 16 clients, 2 requests each, the documented figure
    python benchmarks/batching.py --quick    # 1 and 4 clients, short answers, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.batching`` and docs/benchmarks.md.
"""

from modelplane.bench.batching import main

if __name__ == "__main__":
    raise SystemExit(main())
