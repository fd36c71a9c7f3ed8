"""QoS benchmark: flow control (priority classes, tenants' weights) beside FCFS (issue 19).

    python benchmarks/qos.py              # full run (seconds)
    python benchmarks/qos.py --quick      # shorter traces, a smoke test

The last stdout line is one JSON object; see ``modelplane.bench.qos`` and docs/benchmarks.md.
"""

from modelplane.bench.qos import main

if __name__ == "__main__":
    raise SystemExit(main())
