"""SLO fault-injection suite: burn-rate alerts on simulated faults, in simulated time.

Runs :func:`modelplane.sre.suite`: a bad canary, TTFT +300 ms, a failing replica, a canary with
no traffic and healthy controls, each on a simulated Endpoint judged by the multi-window
multi-burn-rate rules; prints the time to detect and to page (simulated seconds) and the false
alarms over the healthy runs as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import time

from modelplane.bench._figures import print_summary
from modelplane.sre import suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench slo", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs: a smoke test")
    parser.add_argument("--runs", type=int, default=None, help="seeds per fault (default 20)")
    parser.add_argument(
        "--healthy-runs", type=int, default=None, help="healthy control runs (default 100)"
    )
    args = parser.parse_args(argv)
    runs = args.runs if args.runs is not None else (3 if args.quick else 20)
    healthy = args.healthy_runs if args.healthy_runs is not None else (5 if args.quick else 100)
    if runs < 1 or healthy < 1:
        parser.error("--runs and --healthy-runs must be at least 1")
    started = time.perf_counter()
    figures = {
        "benchmark": "slo",
        "quick": args.quick,
        **suite(runs=runs, healthy_runs=healthy, healthy_hours=3.0 if args.quick else 6.0),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print_summary(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
