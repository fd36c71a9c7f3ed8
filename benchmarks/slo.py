"""SLO fault-injection suite: burn-rate alerts on simulated faults, in simulated time.

    python benchmarks/slo.py              # 20 runs per fault, 100 healthy runs
    python benchmarks/slo.py --quick      # a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.slo`` and docs/slo.md.
"""

from modelplane.bench.slo import main

if __name__ == "__main__":
    raise SystemExit(main())
