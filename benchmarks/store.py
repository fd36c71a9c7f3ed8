"""Store benchmark: updates/s, list time and watch latency on SQLite and PostgreSQL.

    python benchmarks/store.py               # full run (about a minute), PostgreSQL if reachable
    python benchmarks/store.py --quick       # small sizes, a smoke test
    python benchmarks/store.py --no-postgres

The last stdout line is one JSON object; see ``modelplane.bench.store`` and docs/benchmarks.md.
"""

from modelplane.bench.store import main

if __name__ == "__main__":
    raise SystemExit(main())
