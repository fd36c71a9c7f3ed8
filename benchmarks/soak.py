"""Soak of the scaled-out shape: 30 minutes of gateway traffic, applies and agent steps at once on
PostgreSQL, with each process's memory and the request latency sampled over time.

    python benchmarks/soak.py --out soak/        # 30 minutes; soak/soak.csv and soak/soak.png
    python benchmarks/soak.py --quick            # one minute, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.soak`` and docs/benchmarks.md.
"""

from modelplane.bench.soak import main

if __name__ == "__main__":
    raise SystemExit(main())
