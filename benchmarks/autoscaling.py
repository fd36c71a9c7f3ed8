"""Autoscaling benchmark: a load step on a simulated fleet (KPA with panic, stable-only, static).

    python benchmarks/autoscaling.py              # full run (a few seconds)
    python benchmarks/autoscaling.py --quick      # shorter, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.autoscaling`` and
docs/benchmarks.md.
"""

from modelplane.bench.autoscaling import main

if __name__ == "__main__":
    raise SystemExit(main())
