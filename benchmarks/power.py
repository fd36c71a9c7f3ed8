"""Power benchmark: tokens per joule and TPOT p99 under a 25% power cut, against uncapped.

    python benchmarks/power.py              # full run (32 GPUs, 10 simulated minutes)
    python benchmarks/power.py --quick      # 8 GPUs, 2 simulated minutes: a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.power`` and docs/benchmarks.md.
"""

from modelplane.bench.power import main

if __name__ == "__main__":
    raise SystemExit(main())
