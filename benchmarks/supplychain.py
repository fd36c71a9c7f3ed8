"""Dependency guard benchmark: precision and recall on real names, generated typosquats and
invented names; p99 per lookup, beside a naive scan.

    python benchmarks/supplychain.py NAMES.tsv            # a TSV of name, first release month, rank
    python benchmarks/supplychain.py NAMES.tsv --quick    # small sizes, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.supplychain`` and
docs/benchmarks.md.
"""

from modelplane.bench.supplychain import main

if __name__ == "__main__":
    raise SystemExit(main())
