"""Adapter benchmark: adapter-aware routing against adapter-blind routing (cold loads, TTFT),
simulated for many adapters, with the cost of a cold load measured on SmolLM2 with peft adapters.

    python benchmarks/adapters.py            # 6 real samples each; 64 adapters, 600 simulated s
    python benchmarks/adapters.py --quick    # 2 real samples; 32 adapters, 60 simulated s

The last stdout line is one JSON object; see ``modelplane.bench.adapters`` and docs/benchmarks.md.
"""

from modelplane.bench.adapters import main

if __name__ == "__main__":
    raise SystemExit(main())
