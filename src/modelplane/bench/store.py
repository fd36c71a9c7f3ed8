"""Store benchmark: writes, lists and watch latency on SQLite and PostgreSQL, side by side.

Per backend it measures:

* ``updates_per_s`` — sequential updates of existing objects from one thread, each sent with its
  resourceVersion (the optimistic-concurrency path controllers use);
* ``list_ms`` — listing every object (10,000 by default);
* ``watch`` — delivery latency with 10 watchers while one writer updates at a paced 1,000 /s:
  the time from the start of the ``update`` call to the moment a watcher's ``next_batch`` returned
  the event, over every (watcher, event) pair, for thread watchers (``next_batch``) and for asyncio
  watchers (``next_batch_async``, all in one event loop). That figure includes the write itself
  (``write_p50_ms``/``write_p99_ms``, an fsync'd commit on PostgreSQL); ``after_ack_*`` is the
  part after the update call returned. It also checks that every watcher got every event exactly
  once, in order;
* a **baseline** in the same run: the same JSON rows written and read with the raw driver (an
  UPDATE of the row plus an INSERT of the event per transaction, serialised with orjson; a SELECT
  plus orjson parsing for the list) — no object rules, versions, locks or watch. ``ratio`` is ours
  divided by the baseline, so it reads as "the share of the raw speed we keep". Ours and the
  baseline run in alternating rounds (5 by default; medians reported), so load from other
  programs on the machine moves both alike;
* for SQLite, ``updates_per_s_synchronous_full``: the same updates with an fsync per commit
  (the durability trade-off documented in :mod:`modelplane.store._sqlite`).

Progress goes to stderr; the last stdout line is one JSON object with the figures, the goals and
whether each was met. PostgreSQL comes from ``MODELPLANE_BENCH_DATABASE_URL`` (default
``postgresql://127.0.0.1:5432/test``); the benchmark works in a fresh schema that it drops at the
end, and reports PostgreSQL as skipped (with the reason) when the server cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from modelplane.bench._figures import parse_sized, percentile, print_summary, progress
from modelplane.store import JSON, Store, Watch, open_store, redact_url

GOALS: dict[str, float] = {
    "sqlite_updates_per_s": 5000.0,
    "list_ms": 200.0,
    "watch_p99_ms": 10.0,
}
DEFAULT_POSTGRES_URL = "postgresql://127.0.0.1:5432/test"


_say = progress("store")


def model(i: int) -> JSON:
    """A Model of realistic size (about 600 bytes of JSON)."""
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {
            "name": f"model-{i:05d}",
            "namespace": f"team-{i % 10}",
            "labels": {"app": "bench", "tier": "gpu" if i % 2 else "cpu", "index": str(i)},
            "annotations": {"modelplane.dev/description": "an object of the store benchmark"},
        },
        "spec": {
            "task": "chat",
            "versions": [
                {
                    "name": "v1",
                    "source": f"hf://example/model-{i}",
                    "format": "safetensors",
                    "digest": "sha256:" + "ab" * 32,
                }
            ],
            "replicas": 0,
        },
    }


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- our store ----------------------------------------------------------------------------------


def _create(store: Store, count: int) -> tuple[list[JSON], float]:
    objs: list[JSON] = []
    start = time.perf_counter()
    for i in range(count):
        objs.append(store.create(model(i)))
    return objs, count / (time.perf_counter() - start)


def _update(store: Store, objs: list[JSON], count: int) -> float:
    """Sequential updates (each with its resourceVersion) cycling over ``objs``; updates/s."""
    start = time.perf_counter()
    for k in range(count):
        i = k % len(objs)
        obj = objs[i]
        obj["spec"]["replicas"] += 1
        objs[i] = store.update(obj)
    return count / (time.perf_counter() - start)


def _list_ms(store: Store, expected: int) -> float:
    start = time.perf_counter()
    items = store.list("Model").items
    elapsed = (time.perf_counter() - start) * 1000
    if len(items) != expected:
        raise RuntimeError(f"list returned {len(items)} objects, expected {expected}")
    return elapsed


Received = list[tuple[int, float]]


def _thread_readers(
    watches: list[Watch], received: list[Received], stop: threading.Event
) -> list[threading.Thread]:
    def read(watch: Watch, got: Received) -> None:
        while not stop.is_set():
            batch = watch.next_batch(0.2)
            now = time.perf_counter()
            got.extend((e.resource_version, now) for e in batch)

    return [
        threading.Thread(target=read, args=(w, got), daemon=True)
        for w, got in zip(watches, received, strict=True)
    ]


def _async_readers(
    watches: list[Watch], received: list[Received], stop: threading.Event
) -> list[threading.Thread]:
    async def read(watch: Watch, got: Received) -> None:
        while not stop.is_set():
            batch = await watch.next_batch_async(0.2)
            now = time.perf_counter()
            got.extend((e.resource_version, now) for e in batch)

    async def all_readers() -> None:
        await asyncio.gather(*(read(w, got) for w, got in zip(watches, received, strict=True)))

    return [threading.Thread(target=lambda: asyncio.run(all_readers()), daemon=True)]


def _watch(
    store: Store, objs: list[JSON], *, watchers: int, rate: float, seconds: float, mode: str
) -> dict[str, Any]:
    """Latency of delivery to ``watchers`` while updates are paced at ``rate`` per second."""
    watches = [store.watch("Model") for _ in range(watchers)]
    received: list[Received] = [[] for _ in range(watchers)]
    stop = threading.Event()
    make = _thread_readers if mode == "threads" else _async_readers
    readers = make(watches, received, stop)
    for t in readers:
        t.start()
    sent: dict[int, float] = {}
    acked: dict[int, float] = {}
    writes: list[float] = []
    total = int(rate * seconds)
    start = time.perf_counter()
    for k in range(total):
        delay = start + k / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the writer, not synchronising with the readers
        i = k % len(objs)
        objs[i]["spec"]["replicas"] += 1
        began = time.perf_counter()
        objs[i] = store.update(objs[i])
        returned = time.perf_counter()
        writes.append((returned - began) * 1000)
        rv = int(objs[i]["metadata"]["resourceVersion"])
        sent[rv], acked[rv] = began, returned
    elapsed = time.perf_counter() - start
    last = max(sent)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(got and got[-1][0] >= last for got in received):
        time.sleep(0.01)
    stop.set()
    for t in readers:
        t.join(5)
    for w in watches:
        w.close()
    expected = sorted(sent)
    latencies = sorted(
        (when - sent[rv]) * 1000 for got in received for rv, when in got if rv in sent
    )
    # from the moment the write was acknowledged (0 when the event beat the call's return)
    after_ack = [
        max(0.0, when - acked[rv]) * 1000 for got in received for rv, when in got if rv in acked
    ]
    return {
        "watchers": watchers,
        "updates": total,
        "rate_per_s": round(total / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50), 3),
        "p99_ms": round(percentile(latencies, 0.99), 3),
        "max_ms": round(latencies[-1], 3) if latencies else None,
        # the update call itself, which the delivery latency includes
        "write_p50_ms": round(percentile(writes, 0.50), 3),
        "write_p99_ms": round(percentile(writes, 0.99), 3),
        "after_ack_p50_ms": round(percentile(after_ack, 0.50), 3),
        "after_ack_p99_ms": round(percentile(after_ack, 0.99), 3),
        "exactly_once_in_order": all([rv for rv, _ in got] == expected for got in received),
    }


# -- baselines: the raw drivers -----------------------------------------------------------------


class _Raw:
    """The same rows written and read with the raw driver: the floor any layer stands on.

    Both drivers run the same SQL; they differ in the tables' names and the parameter mark."""

    def __init__(self, conn: Any, objects: str, events: str, mark: str) -> None:
        self.conn = conn
        self._update = (
            f"UPDATE {objects} SET data = {mark}"
            f" WHERE kind = 'Model' AND namespace = {mark} AND name = {mark}"
        )
        self._event = (
            f"INSERT INTO {events} (type, kind, namespace, name, object)"
            f" VALUES ('MODIFIED', 'Model', {mark}, {mark}, {mark})"
        )
        self._insert = f"INSERT INTO {objects} VALUES ('Model', {mark}, {mark}, {mark})"
        self._read = f"SELECT data FROM {objects} WHERE kind = 'Model' ORDER BY namespace, name"

    def load(self, objs: list[JSON]) -> None:
        raise NotImplementedError

    def write(self, obj: JSON, raw: str) -> None:
        """One transaction: UPDATE the object's row, INSERT its event."""
        meta = obj["metadata"]
        self.conn.execute("BEGIN")
        self.conn.execute(self._update, (raw, meta["namespace"], meta["name"]))
        self.conn.execute(self._event, (meta["namespace"], meta["name"], raw))
        self.conn.execute("COMMIT")

    def read_all(self) -> list[str]:
        return [row[0] for row in self.conn.execute(self._read).fetchall()]

    def close(self) -> None:
        self.conn.close()

    def update(self, objs: list[JSON], count: int) -> float:
        start = time.perf_counter()
        for k in range(count):
            obj = objs[k % len(objs)]
            obj["spec"]["replicas"] += 1
            self.write(obj, orjson.dumps(obj).decode())
        return count / (time.perf_counter() - start)

    def list_ms(self) -> float:
        start = time.perf_counter()
        [orjson.loads(raw) for raw in self.read_all()]
        return (time.perf_counter() - start) * 1000


def _rows(objs: list[JSON]) -> list[tuple[str, str, str]]:
    return [
        (o["metadata"]["namespace"], o["metadata"]["name"], orjson.dumps(o).decode()) for o in objs
    ]


class _RawSQLite(_Raw):
    def __init__(self, path: Path) -> None:
        super().__init__(sqlite3.connect(path, isolation_level=None), "objects", "events", "?")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute(
            "CREATE TABLE objects (kind TEXT, namespace TEXT, name TEXT, data TEXT,"
            " PRIMARY KEY (kind, namespace, name))"
        )
        self.conn.execute(
            "CREATE TABLE events (rv INTEGER PRIMARY KEY, type TEXT, kind TEXT, namespace TEXT,"
            " name TEXT, object TEXT)"
        )

    def load(self, objs: list[JSON]) -> None:
        self.conn.execute("BEGIN")
        self.conn.executemany(self._insert, _rows(objs))
        self.conn.execute("COMMIT")


class _RawPostgres(_Raw):
    def __init__(self, url: str) -> None:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        super().__init__(conn, "bench_objects", "bench_events", "%s")
        self.conn.execute(
            'CREATE TABLE bench_objects (kind text COLLATE "C", namespace text COLLATE "C",'
            ' name text COLLATE "C", data text, PRIMARY KEY (kind, namespace, name))'
        )
        self.conn.execute(
            "CREATE TABLE bench_events (rv bigserial PRIMARY KEY, type text, kind text,"
            " namespace text, name text, object text)"
        )

    def load(self, objs: list[JSON]) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany(self._insert, _rows(objs))

    def write(self, obj: JSON, raw: str) -> None:
        # the whole transaction in one round trip: the least any layer could do
        with self.conn.pipeline():
            super().write(obj, raw)


# -- one backend --------------------------------------------------------------------------------


def _measure(
    url: str,
    raw: _Raw,
    *,
    objects: int,
    updates: int,
    watchers: int,
    rate: float,
    seconds: float,
    rounds: int = 5,
) -> dict[str, Any]:
    """Our store and the raw baseline, measured in alternating rounds so that both see the same
    machine (other load on it moves both figures alike, and the ratio stays meaningful)."""
    out: dict[str, Any] = {}
    with closing(open_store(url)) as store:
        _say(f"creating {objects} objects (and loading the same rows raw)")
        objs, creates_per_s = _create(store, objects)
        out["creates_per_s"] = round(creates_per_s, 1)
        raw.load([model(i) for i in range(objects)])
        hot, raw_hot = objs[:1000], [model(i) for i in range(min(1000, objects))]
        _update(store, hot, min(200, updates))  # warm up (statement caches, page cache)
        raw.update(raw_hot, min(200, updates))
        _say(f"{updates} sequential updates and {rounds} lists, ours and raw in turn")
        ours_u, raw_u, ours_l, raw_l = [], [], [], []
        for _ in range(rounds):
            ours_u.append(_update(store, hot, max(1, updates // rounds)))
            raw_u.append(raw.update(raw_hot, max(1, updates // rounds)))
            ours_l.append(_list_ms(store, objects))
            raw_l.append(raw.list_ms())
        out["updates_per_s"] = round(statistics.median(ours_u), 1)
        out["list_ms"] = round(statistics.median(ours_l), 2)
        out["baseline"] = {
            "updates_per_s": round(statistics.median(raw_u), 1),
            "list_ms": round(statistics.median(raw_l), 2),
        }
        out["ratio"] = {
            "updates": round(out["updates_per_s"] / out["baseline"]["updates_per_s"], 3),
            # for lists, time: baseline/ours, so that again 1.0 means "as fast as raw"
            "list": round(out["baseline"]["list_ms"] / out["list_ms"], 3),
        }
        out["watch"] = {}
        for mode in ("threads", "asyncio"):
            _say(f"watch latency: {watchers} {mode} watchers, {rate:g} updates/s for {seconds:g} s")
            out["watch"][mode] = _watch(
                store, hot, watchers=watchers, rate=rate, seconds=seconds, mode=mode
            )
    return out


def _bench_sqlite(url: str | None, sizes: dict[str, Any], workdir: Path) -> dict[str, Any]:
    url = url or "sqlite://" + quote((workdir / "store.db").as_posix())
    _say(f"SQLite {sqlite3.sqlite_version}: {url}")
    raw = _RawSQLite(workdir / "baseline.db")
    try:
        out = _measure(url, raw, **sizes)
    finally:
        raw.close()
    full_url = "sqlite://" + quote((workdir / "store-full.db").as_posix()) + "?synchronous=full"
    full_updates = max(100, sizes["updates"] // 10)
    _say(f"SQLite synchronous=FULL: {full_updates} updates")
    with closing(open_store(full_url)) as store:
        objs, _ = _create(store, 100)
        out["updates_per_s_synchronous_full"] = round(_update(store, objs, full_updates), 1)
    return out


def _bench_postgres(url: str, sizes: dict[str, Any]) -> dict[str, Any]:
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _say(f"PostgreSQL skipped: {reason}")
        return {"skipped": f"PostgreSQL at {redact_url(url)} is unreachable: {reason}"}
    version = row[0] if row else None
    schema = f"mp_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in url else "?"
    schema_url = f"{url}{sep}options={quote(f'-csearch_path={schema}')}"
    try:
        _say(f"PostgreSQL {version}: {redact_url(url)}, schema {schema}")
        raw = _RawPostgres(schema_url)
        try:
            out = _measure(schema_url, raw, **sizes)
        finally:
            raw.close()
        out["server_version"] = version
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return out


def _verdicts(result: dict[str, Any]) -> dict[str, bool]:
    met: dict[str, bool] = {}
    for backend in ("sqlite", "postgres"):
        figures = result.get(backend) or {}
        if "skipped" in figures or not figures:
            continue
        if backend == "sqlite":
            met["sqlite_updates_per_s"] = figures["updates_per_s"] >= GOALS["sqlite_updates_per_s"]
        met[f"{backend}_list_ms"] = figures["list_ms"] < GOALS["list_ms"]
        for mode, watch in figures["watch"].items():
            met[f"{backend}_watch_{mode}_p99_ms"] = watch["p99_ms"] < GOALS["watch_p99_ms"]
            met[f"{backend}_watch_{mode}_exactly_once"] = bool(watch["exactly_once_in_order"])
    return met


def run(
    sqlite_url: str | None,
    postgres_url: str | None,
    *,
    objects: int = 10_000,
    updates: int = 5_000,
    watchers: int = 10,
    rate: float = 1000.0,
    seconds: float = 3.0,
) -> dict[str, Any]:
    """Run the benchmark; ``sqlite_url`` None means a fresh file in a temporary folder,
    ``postgres_url`` None skips PostgreSQL. Returns the figures (see the module docstring)."""
    sizes = {
        "objects": objects,
        "updates": updates,
        "watchers": watchers,
        "rate": rate,
        "seconds": seconds,
    }
    result: dict[str, Any] = {
        "benchmark": "store",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(terse=True),
        },
        "params": sizes,
        "goals": {
            "sqlite_updates_per_s": f">= {GOALS['sqlite_updates_per_s']:g}",
            "list_ms": f"< {GOALS['list_ms']:g} (for {objects} objects; the goal is set for 10000)",
            "watch_p99_ms": f"< {GOALS['watch_p99_ms']:g} ({watchers} watchers at {rate:g} updates/s)",
        },
    }
    with tempfile.TemporaryDirectory(prefix="modelplane-bench-") as tmp:
        result["sqlite"] = _bench_sqlite(sqlite_url, sizes, Path(tmp))
    if postgres_url:
        result["postgres"] = _bench_postgres(postgres_url, sizes)
    else:
        result["postgres"] = {"skipped": "no PostgreSQL URL given"}
    result["met"] = _verdicts(result)
    result["all_met"] = all(result["met"].values())
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python benchmarks/store.py [--quick] [--no-postgres] ...``."""
    parser = argparse.ArgumentParser(
        prog="modelplane bench store",
        description="Measure the object store on SQLite and PostgreSQL; prints one JSON line.",
    )
    parser.add_argument(
        "--sqlite-url", help="an empty SQLite database to use (default: a fresh temporary file)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("MODELPLANE_BENCH_DATABASE_URL", DEFAULT_POSTGRES_URL),
        help="PostgreSQL URL (default: $MODELPLANE_BENCH_DATABASE_URL or %(default)s)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="measure SQLite only")
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--updates", type=int, default=5_000)
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="updates/s during the watch test"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each watch test")
    args = parse_sized(parser, argv, {"objects": 500, "updates": 500, "seconds": 0.5})
    result = run(
        args.sqlite_url,
        None if args.no_postgres else args.postgres_url,
        objects=args.objects,
        updates=args.updates,
        watchers=args.watchers,
        rate=args.rate,
        seconds=args.seconds,
    )
    print_summary(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
