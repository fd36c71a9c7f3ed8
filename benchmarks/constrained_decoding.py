"""Constrained decoding benchmark: the worker's decode tokens/s with and without a JSON Schema
(``response_format``), same prompt, same worker, same run.

    python benchmarks/constrained_decoding.py            # 6 alternating rounds of 48 tokens
    python benchmarks/constrained_decoding.py --quick    # one round of 12 tokens

The last stdout line is one JSON object; see ``modelplane.bench.constrained`` and
docs/benchmarks.md.
"""

from modelplane.bench.constrained import main

if __name__ == "__main__":
    raise SystemExit(main())
