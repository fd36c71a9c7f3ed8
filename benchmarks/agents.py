"""Agent runtime benchmark: durable steps/s beside DBOS and LangGraph, residency, resume, storage.

    python benchmarks/agents.py                    # full run (about 1.5 minutes on 2 busy cores)
    python benchmarks/agents.py --quick            # small sizes, a smoke test
    python benchmarks/agents.py --no-competitors   # ours only

The last stdout line is one JSON object; see ``modelplane.bench.agents`` and docs/benchmarks.md.
"""

from modelplane.bench.agents import main

if __name__ == "__main__":
    raise SystemExit(main())
