"""Audit log benchmark: the cost of recording every decision on store writes, and its speeds.

    python benchmarks/audit.py            # full run (about a minute)
    python benchmarks/audit.py --quick    # small sizes, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.audit`` and docs/benchmarks.md.
"""

from modelplane.bench.audit import main

if __name__ == "__main__":
    raise SystemExit(main())
