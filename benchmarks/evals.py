"""Evaluations benchmark: what scoring every answer of a rollout costs the clients' requests.

    python benchmarks/evals.py              # 20 rounds of 200 requests per endpoint
    python benchmarks/evals.py --quick      # 4 rounds of 100

The last stdout line is one JSON object; see ``modelplane.bench.evals`` and docs/benchmarks.md.
"""

from modelplane.bench.evals import main

if __name__ == "__main__":
    raise SystemExit(main())
