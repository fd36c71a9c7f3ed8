"""What every benchmark shares: percentiles of timings, progress on stderr, the JSON summary line,
and the ``--quick`` option that shrinks its sizes for a smoke test.

The summary is one JSON object on the last stdout line; tests and ``docs/benchmarks.md`` read its
keys, so a benchmark builds the dict and this module only prints it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0 to 1) of ``values``, nearest rank from below; NaN when empty.

    NaN is printed as ``null`` in the summary, so an empty run shows as missing, not as zero.
    """
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def progress(bench: str) -> Callable[[str], None]:
    """A function that prints ``[bench NAME] message`` lines to stderr (stdout is the summary's)."""

    def say(message: str) -> None:
        print(f"[bench {bench}] {message}", file=sys.stderr, flush=True)

    return say


def print_summary(figures: Mapping[str, Any]) -> None:
    """Print ``figures`` as the one JSON line a benchmark ends with."""
    print(orjson.dumps(figures).decode(), flush=True)


def parse_sized(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, quick: Mapping[str, object]
) -> argparse.Namespace:
    """Parse ``argv`` with a ``--quick`` option added to ``parser``: with it, the sizes in
    ``quick`` (option name as argparse stores it -> value) replace the ones given or defaulted."""
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in quick.items():
            setattr(args, name, value)
    return args
