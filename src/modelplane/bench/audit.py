"""Audit log benchmark: what recording every decision costs an API write, and the log's speeds.

On one SQLite file (the store's, as ``modelplane up`` keeps both), in alternating rounds so that
other load on the machine moves both alike:

* **baseline**: sequential store updates (each with its resourceVersion), updates/s;
* **ours**: the same updates, each followed by one :meth:`AuditLog.append` of its decision (the
  log's writer commits in the background, in the same file); ``ratio`` = ours / baseline, goal
  at least 0.95 (appends cost an API write at most 5 %).

Then the log alone: the caller's cost of ``append`` (p50/p99, microseconds), records committed
per second (append N, then :meth:`AuditLog.flush`), and records verified per second.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelplane.bench._figures import parse_sized, percentile, print_summary, progress
from modelplane.bench.store import model
from modelplane.policy import AuditEvent, AuditLog
from modelplane.store import Store, open_store

JSON = dict[str, Any]


_say = progress("audit")


def _event(obj: JSON) -> AuditEvent:
    meta = obj["metadata"]
    return AuditEvent(
        "admission",
        "alice",
        "update",
        f"Model/{meta['namespace']}/{meta['name']}",
        "allow",
        namespace=meta["namespace"],
        policy_version="sha256:" + "cd" * 32,
    )


def _updates(store: Store, objs: list[JSON], count: int, log: AuditLog | None) -> float:
    """``count`` sequential updates cycling over ``objs``, each appended to ``log`` if given;
    updates/s (the log's backlog is committed before the clock stops)."""
    start = time.perf_counter()
    for k in range(count):
        i = k % len(objs)
        objs[i]["spec"]["replicas"] += 1
        objs[i] = store.update(objs[i])
        if log is not None:
            log.append(_event(objs[i]))
    if log is not None and not log.flush(60):
        raise RuntimeError("the audit log did not commit its backlog within 60 s")
    return count / (time.perf_counter() - start)


def _log_alone(log: AuditLog, count: int) -> JSON:
    event = _event(model(0))
    costs: list[float] = []
    start = time.perf_counter()
    for _ in range(count):
        t = time.perf_counter()
        log.append(event)
        costs.append(time.perf_counter() - t)
    if not log.flush(120):
        raise RuntimeError("the audit log did not commit its backlog within 120 s")
    committed = count / (time.perf_counter() - start)
    start = time.perf_counter()
    verification = log.verify()
    verify_s = time.perf_counter() - start
    if not verification.ok:
        raise RuntimeError(f"the benchmark's own log does not verify: {verification}")
    return {
        "append_p50_us": round(percentile(costs, 0.5) * 1e6, 2),
        "append_p99_us": round(percentile(costs, 0.99) * 1e6, 2),
        "committed_per_s": round(committed),
        "verified_per_s": round(verification.records / verify_s),
        "records": verification.records,
    }


def run(*, objects: int, updates: int, rounds: int, appends: int) -> JSON:
    """The figures; see the module docstring."""
    with tempfile.TemporaryDirectory(prefix="modelplane-bench-audit-") as tmp:
        url = "sqlite://" + (Path(tmp) / "modelplane.db").as_posix()
        store = open_store(url)
        log = AuditLog(url)
        try:
            objs = [store.create(model(i)) for i in range(objects)]
            baseline: list[float] = []
            ours: list[float] = []
            for r in range(rounds):
                baseline.append(_updates(store, objs, updates, None))
                ours.append(_updates(store, objs, updates, log))
                _say(f"round {r + 1}/{rounds}: {baseline[-1]:.0f} vs {ours[-1]:.0f} updates/s")
            alone = _log_alone(log, appends)
        finally:
            log.close()
            store.close()
    base, with_log = statistics.median(baseline), statistics.median(ours)
    ratio = with_log / base
    return {
        "benchmark": "audit",
        "backend": "sqlite",
        "updates_per_s_baseline": round(base),
        "updates_per_s_with_audit": round(with_log),
        "ratio": round(ratio, 3),
        "goal_ratio": 0.95,
        "goal_met": ratio >= 0.95,
        **alone,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python benchmarks/audit.py [--quick]``."""
    parser = argparse.ArgumentParser(
        prog="benchmarks/audit.py",
        description="Measure the audit log's cost on store writes; prints one JSON line.",
    )
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=3000, help="updates per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--appends", type=int, default=50_000)
    args = parse_sized(parser, argv, {"objects": 100, "updates": 300, "rounds": 2, "appends": 2000})
    result = run(
        objects=args.objects, updates=args.updates, rounds=args.rounds, appends=args.appends
    )
    print_summary(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
