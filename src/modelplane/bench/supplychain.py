"""Dependency guard benchmark: how well and how fast ``modelplane audit deps`` tells real
packages from typosquats and invented names, on a labelled set built from a name list.

The list (an argument: a TSV or CSV of name, first release month, download rank) is the index.
The labelled set:

* ``real`` — every name of the top 1,000 by rank, and samples of the other ranked names and of
  the unranked ones: all exist, none should be flagged;
* ``typosquat`` — generated from the top names (omitted, repeated, swapped, keyboard-neighbour
  and bit-flipped characters, separators removed, a prefix or suffix added, a deceptive word
  added), kept only when absent from the list, then *registered*: added to the snapshot as
  unranked packages, as a squatter would, so only the typosquat check can catch them;
* ``invented`` — plausible names made of words of real names (``fastapi-vector-client``),
  confirmed absent from the list: each must be blocked.

Each name goes through :meth:`DependencyGuard.check`, timed one by one (p50/p99 per lookup).
The baseline in the same run is the obvious first implementation: a scan of the popular names
for a Levenshtein distance of 1, with no folding, affixes or popularity gap; ``speedup`` is its
p99 over ours, and its recall and false positives are given beside ours.

Progress goes to stderr; the last stdout line is one JSON object with the figures, the goals and
whether each was met.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modelplane.bench._figures import parse_sized, print_summary
from modelplane.supplychain import (
    BLOCK,
    Dependency,
    DependencyGuard,
    IndexSnapshot,
    Package,
    Release,
    TyposquatDetector,
    build,
    fold,
    normalize,
    osa_distance,
    read_name_list,
)

GOALS = {"nonexistent_blocked": 1.0, "typosquat_recall": 0.90, "fp_rate": 0.01, "p99_ms": 1.0}
_KEYS = "qwertyuiopasdfghjklzxcvbnm"
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_DECEPTIVE = ("secure", "official", "patched", "update", "latest", "fixed", "safe")
_AFFIXES = (("py", ""), ("python-", ""), ("", "-python"), ("", "-dev"), ("", "2"), ("", "-py"))


def _log(message: str) -> None:
    print(f"[bench supplychain] {message}", file=sys.stderr, flush=True)


def _omit(n: str, r: random.Random) -> str:
    i = r.randrange(len(n))
    return n[:i] + n[i + 1 :]


def _repeat(n: str, r: random.Random) -> str:
    i = r.randrange(len(n))
    return n[: i + 1] + n[i:]


def _swap(n: str, r: random.Random) -> str:
    i = r.randrange(len(n) - 1)
    return n[:i] + n[i + 1] + n[i] + n[i + 2 :]


def _keyboard(n: str, r: random.Random) -> str:
    i = r.randrange(len(n))
    for row in _ROWS:
        if n[i] in row:
            j = row.index(n[i])
            near = row[max(0, j - 1) : j] + row[j + 1 : j + 2]
            return n[:i] + r.choice(near) + n[i + 1 :]
    return n


def _bitflip(n: str, r: random.Random) -> str:
    i = r.randrange(len(n))
    flipped = chr(ord(n[i]) ^ (1 << r.randrange(7)))
    return n[:i] + flipped + n[i + 1 :] if flipped.isalnum() and flipped.isascii() else n


def _separators(n: str, r: random.Random) -> str:
    return fold(n)


def _affix(n: str, r: random.Random) -> str:
    before, after = r.choice(_AFFIXES)
    return before + n + after


def _combo(n: str, r: random.Random) -> str:
    word = r.choice(_DECEPTIVE)
    return f"{n}-{word}" if r.random() < 0.7 else f"{word}-{n}"


GENERATORS: dict[str, Callable[[str, random.Random], str]] = {
    "omitted": _omit,
    "repeated": _repeat,
    "swapped": _swap,
    "keyboard": _keyboard,
    "bitflip": _bitflip,
    "separators": _separators,
    "affix": _affix,
    "combosquat": _combo,
}


def typosquats(
    top: list[str], known: set[str], count: int, r: random.Random
) -> list[tuple[str, str, str]]:
    """(squat, target, generator) of ``count`` generated names absent from ``known``."""
    found: dict[str, tuple[str, str, str]] = {}
    kinds = list(GENERATORS)
    attempts = 0
    while len(found) < count and attempts < count * 50:
        attempts += 1
        target, kind = r.choice(top), kinds[attempts % len(kinds)]
        if len(fold(target)) < 4:
            continue  # too short to imitate without colliding with honest names
        squat = normalize(GENERATORS[kind](target, r))
        if squat != normalize(target) and squat not in known and squat not in found:
            found[squat] = (squat, target, kind)
    return list(found.values())


def invented(packages: list[Package], known: set[str], count: int, r: random.Random) -> list[str]:
    """Plausible names, made of words of popular names, confirmed absent from ``known``."""
    ranked = [p.name for p in packages if p.rank]
    words = sorted({w for n in ranked for w in n.split("-") if len(w) >= 3 and w.isalpha()})
    extra = ["gpt", "llm", "agent", "helper", "client", "vector", "utils", "async", "toolkit"]
    vocabulary = words[:3000] + extra
    found: set[str] = set()
    while len(found) < count:
        name = "-".join(r.sample(vocabulary, r.choice((2, 2, 3))))
        if name not in known:
            found.add(name)
    return sorted(found)


def real_names(packages: list[Package], count: int, r: random.Random) -> list[tuple[str, str]]:
    """(name, stratum): the top 1,000, and samples of the other ranked and of the unranked."""
    ranked = sorted((p for p in packages if p.rank), key=lambda p: p.rank or 0)
    top = [(p.name, "top1000") for p in ranked[:1000]]
    rest = [p.name for p in ranked[1000:]]
    unranked = [p.name for p in packages if not p.rank]
    out = top + [(n, "ranked") for n in r.sample(rest, min(count, len(rest)))]
    return out + [(n, "unranked") for n in r.sample(unranked, min(count, len(unranked)))]


def _labelled_set(
    packages: list[Package], args: argparse.Namespace, r: random.Random
) -> tuple[list[tuple[str, str, str]], list[Package]]:
    known = {p.name for p in packages}
    top = [p.name for p in sorted((p for p in packages if p.rank), key=lambda p: p.rank or 0)]
    squats = typosquats(top[: args.top], known, args.squats, r)
    made_up = invented(packages, known | {s for s, _, _ in squats}, args.invented, r)
    labelled = [(n, "real", stratum) for n, stratum in real_names(packages, args.real, r)]
    labelled += [(s, "typosquat", kind) for s, _, kind in squats]
    labelled += [(n, "invented", "invented") for n in made_up]
    registered = [Package(s, Release(2026, 1), None, None) for s, _, _ in squats]
    return labelled, registered


def _predict(guard: DependencyGuard, name: str) -> tuple[str, str, int]:
    """(predicted class, verdict, nanoseconds) of one name."""
    started = time.perf_counter_ns()
    finding = guard.check(Dependency(name, "PyPI"))
    elapsed = time.perf_counter_ns() - started
    rules = {reason.rule for reason in finding.reasons}
    if "not-found" in rules or (finding.package is None and finding.verdict == BLOCK):
        return "invented", finding.verdict, elapsed
    return ("typosquat" if "typosquat" in rules else "real"), finding.verdict, elapsed


def _naive(top: list[tuple[str, int]], name: str) -> bool:
    """The baseline: Levenshtein distance 1 to any popular name, by a scan."""
    return any(osa_distance(name, t, 1) == 1 for t, _ in top if t != name)


def _scores(labelled: list[tuple[str, str, str]], predicted: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label in ("real", "typosquat", "invented"):
        tp = sum(
            1
            for (_, want, _), got in zip(labelled, predicted, strict=True)
            if want == label and got == label
        )
        said = sum(1 for got in predicted if got == label)
        truth = sum(1 for _, want, _ in labelled if want == label)
        out[label] = {
            "n": truth,
            "precision": round(tp / said, 4) if said else None,
            "recall": round(tp / truth, 4) if truth else None,
        }
    return out


def _per_stratum(
    labelled: list[tuple[str, str, str]], predicted: list[str], label: str, hit: str
) -> dict[str, Any]:
    strata: dict[str, list[int]] = {}
    for (_, want, stratum), got in zip(labelled, predicted, strict=True):
        if want == label:
            counts = strata.setdefault(stratum, [0, 0])
            counts[0] += got == hit
            counts[1] += 1
    return {k: {"n": n, hit: c, "rate": round(c / n, 4)} for k, (c, n) in sorted(strata.items())}


def _share(strata: dict[str, Any], hit: str) -> float | None:
    total = sum(v["n"] for v in strata.values())
    return round(sum(v[hit] for v in strata.values()) / total, 4) if total else None


def _percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def run(names: Path, args: argparse.Namespace) -> dict[str, Any]:
    r = random.Random(args.seed)
    started = time.perf_counter()
    packages = read_name_list(names)
    _log(f"read {len(packages)} names in {time.perf_counter() - started:.1f} s")
    labelled, registered = _labelled_set(packages, args, r)
    snapshot = build(
        packages + registered, ecosystem="PyPI", source=names.name, built=dt.date.today()
    )
    index = _reload(snapshot, args)
    started = time.perf_counter()
    guard = DependencyGuard(
        index, detector=TyposquatDetector(index, popular=args.popular), min_age_days=0
    )
    build_s = time.perf_counter() - started
    _log(f"{len(labelled)} labelled names; detector built in {build_s:.2f} s")
    # the snapshot's million objects never change: keep the cyclic collector off them, as a
    # long-running guard (an agent's) would
    gc.collect()
    gc.freeze()
    for name, _, _ in labelled[:200]:
        _predict(guard, name)  # warm-up: first touches of the dicts
    timed = [_predict(guard, name) for name, _, _ in labelled]
    args.verdicts = [v for _, v, _ in timed]
    predicted = [p for p, _, _ in timed]
    return _figures(labelled, predicted, [t for _, _, t in timed], index, build_s, args, r)


def _reload(snapshot: IndexSnapshot, args: argparse.Namespace) -> IndexSnapshot:
    """The snapshot written and read back, as ``audit deps`` loads it (its load time timed)."""
    path = Path(args.snapshot_file)
    snapshot.dump(path)
    started = time.perf_counter()
    index = IndexSnapshot.load(path)
    args.load_s = time.perf_counter() - started
    args.snapshot_bytes = path.stat().st_size
    return index


def _figures(
    labelled: list[tuple[str, str, str]],
    predicted: list[str],
    times: list[int],
    index: IndexSnapshot,
    build_s: float,
    args: argparse.Namespace,
    r: random.Random,
) -> dict[str, Any]:
    scores = _scores(labelled, predicted)
    real_flags = _per_stratum(labelled, predicted, "real", "typosquat")
    real_blocked = _per_stratum(labelled, args.verdicts, "real", BLOCK)
    squats_blocked = _per_stratum(labelled, args.verdicts, "typosquat", BLOCK)
    squat_kinds = _per_stratum(labelled, predicted, "typosquat", "typosquat")
    invented_blocked = _per_stratum(labelled, predicted, "invented", "invented")
    fp_top = real_flags.get("top1000", {}).get("typosquat", 0)
    # beyond the top 1,000 (which the popularity gap protects), real names of every rank
    beyond = [
        g != "real"
        for (_, w, stratum), g in zip(labelled, predicted, strict=True)
        if w == "real" and stratum != "top1000"
    ]
    baseline = _baseline(labelled, index, args, r)
    p99 = _percentile(times, 0.99)
    result = {
        "names": len(index),
        "labelled": {k: v["n"] for k, v in scores.items()},
        "classes": scores,
        "typosquat_recall_by_kind": squat_kinds,
        "real_flagged_by_stratum": real_flags,
        "real_blocked_by_stratum": real_blocked,
        "typosquats_blocked": _share(squats_blocked, BLOCK),
        "false_positives_top1000": fp_top,
        "fp_rate_beyond_top1000": round(sum(beyond) / len(beyond), 4) if beyond else None,
        "nonexistent_blocked": invented_blocked["invented"]["rate"],
        "lookup_us": {"p50": _percentile(times, 0.5), "p99": p99, "max": max(times) / 1000},
        "snapshot": {
            "bytes": args.snapshot_bytes,
            "load_s": round(args.load_s, 3),
            "detector_build_s": round(build_s, 3),
            "popular": args.popular,
        },
        "baseline": baseline,
        "speedup_p99": round(baseline["lookup_us"]["p99"] / p99, 1) if p99 else None,
    }
    result["goals"] = _goals(result)
    return result


def _baseline(
    labelled: list[tuple[str, str, str]],
    index: IndexSnapshot,
    args: argparse.Namespace,
    r: random.Random,
) -> dict[str, Any]:
    top = index.top(args.popular)
    sample = r.sample(labelled, min(args.baseline_sample, len(labelled)))
    times, hits = [], []
    for name, want, _ in sample:
        started = time.perf_counter_ns()
        flagged = _naive(top, name)
        times.append(time.perf_counter_ns() - started)
        hits.append((want, flagged))
    squats = [f for w, f in hits if w == "typosquat"]
    reals = [f for w, f in hits if w == "real"]
    return {
        "what": "scan of the popular names for Levenshtein distance 1",
        "sample": len(sample),
        "typosquat_recall": round(sum(squats) / len(squats), 4) if squats else None,
        "fp_rate_real": round(sum(reals) / len(reals), 4) if reals else None,
        "lookup_us": {"p50": _percentile(times, 0.5), "p99": _percentile(times, 0.99)},
    }


def _goals(result: dict[str, Any]) -> dict[str, Any]:
    recall = result["classes"]["typosquat"]["recall"] or 0.0
    fp_top = result["false_positives_top1000"] / 1000
    p99_ms = result["lookup_us"]["p99"] / 1000
    return {
        "nonexistent_blocked": {"goal": 1.0, "met": result["nonexistent_blocked"] >= 1.0},
        "typosquat_recall": {"goal": 0.90, "value": recall, "met": recall >= 0.90},
        "fp_rate_top1000": {"goal": 0.01, "value": fp_top, "met": fp_top <= 0.01},
        "p99_ms": {"goal": 1.0, "value": p99_ms, "met": p99_ms <= 1.0},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python benchmarks/supplychain.py NAMES [--quick] ...``."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/supplychain.py",
        description="Measure the dependency guard on a labelled set built from NAMES (a TSV or"
        " CSV of name, first release month, download rank); prints one JSON line.",
    )
    parser.add_argument("names", type=Path, help="the name list, which stands for the index")
    parser.add_argument("--real", type=int, default=2000, help="real names sampled per stratum")
    parser.add_argument("--squats", type=int, default=2000, help="generated typosquats")
    parser.add_argument("--invented", type=int, default=2000, help="invented names")
    parser.add_argument("--top", type=int, default=1000, help="squats imitate these top names")
    parser.add_argument("--popular", type=int, default=5000, help="the detector's popular names")
    parser.add_argument("--baseline-sample", type=int, default=300, help="names the scan checks")
    parser.add_argument(
        "--snapshot-file", help="where the snapshot is written (default: a temp file)"
    )
    parser.add_argument("--seed", type=int, default=7)
    quick = {"real": 100, "squats": 100, "invented": 100, "baseline_sample": 30}
    args = parse_sized(parser, argv, quick)
    if not args.names.is_file():
        parser.error(f"{args.names}: no such name list")
    with tempfile.TemporaryDirectory() as scratch:
        args.snapshot_file = args.snapshot_file or f"{scratch}/index-snapshot.json.gz"
        result = run(args.names, args)
    print_summary(result)
    return 0
