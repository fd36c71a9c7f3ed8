"""Soak of the scaled-out shape: traffic, applies and agent steps at once, RSS and latency over time.

``modelplane up --scale-out`` (two servers, a node agent, two gateways, two agent workers) runs on
a PostgreSQL schema of its own for ``--minutes``, while, at the same time:

* **traffic** — four clients send chat completions through the two gateways in turn to an
  Endpoint served by two simulated replicas (the node agent's worker processes);
* **applies** — a Queue is created every half second through the servers in turn, and every
  tenth one deleted again;
* **agent steps** — an instance of a 50-step Agent is started every two seconds.

Every ``--interval`` seconds it samples each component's resident memory (the node agent with its
replica processes) and the interval's request latencies. At the end it checks that nothing was
lost — every request answered (200), every Queue created and not deleted still there, every agent
instance completed with the sum of its steps — and compares the last interval with the first
(the baseline of the same run): latency p50/p99 and RSS ratios. With ``--out DIR`` it writes the
samples (``soak.csv``) and a plot (``soak.png``, matplotlib).

Progress goes to stderr; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from modelplane.bench._figures import percentile, print_summary, progress
from modelplane.bench.shared_limits import postgres_schema

_say = progress("soak")
API = "/apis/modelplane.dev/v1alpha1/namespaces/default"
AGENT_STEPS = 50

_AGENT = """
async def _one(i):
    return i


async def counter(ctx, input):
    total = 0
    for i in range(int(input["steps"])):
        total += await ctx.step(f"s{i}", _one, i)
    return {"total": total}
"""


@dataclass
class Sample:
    at: float
    rss_mb: dict[str, float]
    latencies_ms: list[float]
    errors: int


@dataclass
class _Counts:
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    queues_kept: set[str] = field(default_factory=set)
    instances: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _read_table(
    proc: subprocess.Popen[str], timeout: float, home: Path
) -> dict[str, tuple[str, int]]:
    rows: dict[str, tuple[str, int]] = {}
    said: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        said.append(line)
        m = re.match(r"^  (\S+)\s+(\S+).*\(pid (\d+)\)$", line)
        if m:
            rows[m.group(1)] = (m.group(2), int(m.group(3)))
        if line.startswith("Press Ctrl-C") or time.monotonic() > deadline:
            break
    if "gateway-2" not in rows:
        logs = "".join(
            f"--- {log.name}\n{log.read_text()[-2000:]}" for log in sorted(home.glob("logs/*.log"))
        )
        raise RuntimeError(f"up --scale-out did not start:\n{''.join(said[-30:])}{logs}")
    return rows


def _rss_mb(pid: int) -> float:
    import psutil

    try:
        proc = psutil.Process(pid)
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return float(total) / 2**20
    except psutil.Error:
        return 0.0


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    version = {"name": "v1", "source": "x", "format": "safetensors", "digest": "sha256:" + "a" * 64}
    return [
        ("models", {"kind": "Model", "metadata": {"name": "m"}, "spec": {"versions": [version]}}),
        (
            "endpoints",
            {
                "kind": "Endpoint",
                "metadata": {
                    "name": "chat",
                    "annotations": {
                        "modelplane.dev/simulated": "true",
                        "modelplane.dev/simulated-ttft": "20ms",
                        "modelplane.dev/simulated-tpot": "5ms",
                    },
                },
                "spec": {"model": "m", "replicas": {"min": 2, "max": 2}},
            },
        ),
        (
            "agents",
            {
                "kind": "Agent",
                "metadata": {"name": "counter"},
                "spec": {"entrypoint": "soak_agent:counter"},
            },
        ),
    ]


class _Soak:
    def __init__(self, rows: dict[str, tuple[str, int]], counts: _Counts) -> None:
        self.servers = [rows[n][0] for n in rows if n.startswith("server-")]
        self.gateways = [rows[n][0] for n in rows if n.startswith("gateway-")]
        self.pids = {n: pid for n, (_, pid) in rows.items()}
        self.counts = counts
        self.stop = threading.Event()

    def traffic(self, client_no: int) -> None:
        body = {"model": "chat", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
        with httpx.Client(timeout=30) as http:
            n = client_no
            while not self.stop.is_set():
                url = self.gateways[n % len(self.gateways)]
                n += 1
                began = time.perf_counter()
                try:
                    r = http.post(f"{url}/chat/completions", json=body)
                    ok, why = r.status_code == 200, f"{r.status_code} {r.text[:120]}"
                except httpx.HTTPError as exc:
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                with self.counts.lock:
                    self.counts.requests += 1
                    if ok:
                        self.counts.latencies.append(1000 * (time.perf_counter() - began))
                    else:
                        self.counts.errors.append(why)

    def applies(self) -> None:
        with httpx.Client(timeout=30) as http:
            n = 0
            while not self.stop.wait(0.5):
                server = self.servers[n % len(self.servers)]
                name = f"soak-{n:05d}"
                queue = {
                    "apiVersion": "modelplane.dev/v1alpha1",
                    "kind": "Queue",
                    "metadata": {"name": name},
                    "spec": {"quotas": [{"resource": "cpu", "nominal": "1"}]},
                }
                r = http.post(f"{server}{API}/queues", json=queue)
                if r.status_code != 201:
                    self.counts.errors.append(f"apply {name}: {r.status_code} {r.text[:120]}")
                elif n % 10 == 9:
                    d = http.delete(f"{server}{API}/queues/{name}")
                    if d.status_code != 200:
                        self.counts.errors.append(f"delete {name}: {d.status_code}")
                        self.counts.queues_kept.add(name)
                else:
                    self.counts.queues_kept.add(name)
                n += 1

    def agents(self) -> None:
        with httpx.Client(timeout=30) as http:
            n = 0
            while not self.stop.wait(2.0):
                name = f"run-{n:05d}"
                r = http.post(
                    f"{self.servers[0]}/agents/default/counter/instances",
                    json={"id": name, "input": {"steps": AGENT_STEPS}},
                )
                if r.status_code != 201:
                    self.counts.errors.append(f"agent {name}: {r.status_code} {r.text[:120]}")
                else:
                    self.counts.instances.append(name)
                n += 1

    def sample(self, began: float) -> Sample:
        with self.counts.lock:
            latencies, self.counts.latencies = self.counts.latencies, []
            errors = len(self.counts.errors)
        rss = {name: _rss_mb(pid) for name, pid in self.pids.items()}
        return Sample(time.monotonic() - began, rss, latencies, errors)


def _wait_ready(server: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{server}{API}/endpoints/chat", timeout=10)
        status = r.json().get("status") or {}
        if status.get("readyReplicas", 0) >= 2:
            return
        time.sleep(0.5)  # polling a condition with a deadline
    raise RuntimeError("the soak Endpoint did not get two ready replicas in time")


def _check(soak: _Soak, counts: _Counts, timeout: float) -> dict[str, Any]:
    """What was lost: Queues missing, agent instances not completed with the right total."""
    server = soak.servers[-1]
    with httpx.Client(timeout=30) as http:
        names = {q["metadata"]["name"] for q in http.get(f"{server}{API}/queues").json()["items"]}
        missing = sorted(counts.queues_kept - names)
        extra = sorted(n for n in names - counts.queues_kept if n.startswith("soak-"))
        deadline = time.monotonic() + timeout
        pending = list(counts.instances)
        wrong: list[str] = []
        expected = sum(range(AGENT_STEPS))
        while pending and time.monotonic() < deadline:
            still = []
            for name in pending:
                info = http.get(f"{server}/agents/default/counter/instances/{name}").json()
                if info.get("status") == "completed":
                    if (info.get("result") or {}).get("total") != expected:
                        wrong.append(name)
                else:
                    still.append(name)
            pending = still
            if pending:
                time.sleep(1.0)  # polling a condition with a deadline
    return {
        "queues_missing": len(missing),
        "queues_not_deleted": len(extra),
        "agents_unfinished": len(pending),
        "agents_wrong_result": len(wrong),
    }


def _figures(samples: list[Sample], counts: _Counts, lost: dict[str, Any]) -> dict[str, Any]:
    timed = [s for s in samples if s.latencies_ms]
    first, last = timed[0], timed[-1]
    rss_first, rss_last = samples[0].rss_mb, samples[-1].rss_mb
    return {
        "minutes": round(samples[-1].at / 60, 2),
        "requests": counts.requests,
        "errors": len(counts.errors),
        "queues_applied": len(counts.queues_kept),
        "agent_instances": len(counts.instances),
        **lost,
        "p50_ms": {
            "first": round(percentile(first.latencies_ms, 0.5), 1),
            "last": round(percentile(last.latencies_ms, 0.5), 1),
        },
        "p99_ms": {
            "first": round(percentile(first.latencies_ms, 0.99), 1),
            "last": round(percentile(last.latencies_ms, 0.99), 1),
        },
        "p99_ratio_last_to_first": round(
            percentile(last.latencies_ms, 0.99) / max(percentile(first.latencies_ms, 0.99), 1e-9), 2
        ),
        "rss_mb": {
            name: {"first": round(rss_first[name]), "last": round(rss_last[name])}
            for name in rss_first
        },
        "rss_ratio_last_to_first": {
            name: round(rss_last[name] / max(rss_first[name], 1e-9), 2) for name in rss_first
        },
    }


def _write(out: Path, samples: list[Sample]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(samples[0].rss_mb)
    with (out / "soak.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["seconds", "p50_ms", "p99_ms", "errors", *[f"rss_mb_{n}" for n in names]])
        for s in samples:
            p50 = percentile(s.latencies_ms, 0.5) if s.latencies_ms else ""
            p99 = percentile(s.latencies_ms, 0.99) if s.latencies_ms else ""
            writer.writerow([round(s.at, 1), p50, p99, s.errors, *[s.rss_mb[n] for n in names]])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    minutes = [s.at / 60 for s in samples]
    for name in names:
        top.plot(minutes, [s.rss_mb[name] for s in samples], label=name)
    top.set_ylabel("resident memory (MiB)")
    top.legend(fontsize=7, ncol=2)
    timed = [s for s in samples if s.latencies_ms]
    for q in (50, 99):
        bottom.plot(
            [s.at / 60 for s in timed],
            [percentile(s.latencies_ms, q / 100) for s in timed],
            label=f"p{q}",
        )
    bottom.set_ylabel("request latency (ms)")
    bottom.set_xlabel("minutes")
    bottom.legend()
    fig.suptitle("Modelplane scaled out: soak")
    fig.savefig(out / "soak.png", dpi=100)
    plt.close(fig)


def run(database_url: str, minutes: float, interval: float, out: Path | None) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="mp-soak-") as tmp,
        postgres_schema(database_url) as url,
    ):
        pkgs = Path(tmp) / "pkgs"
        pkgs.mkdir()
        (pkgs / "soak_agent.py").write_text(_AGENT)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(pkgs), os.environ.get("PYTHONPATH", "")]),
        }
        env.pop("MODELPLANE_DATABASE_URL", None)
        args = [sys.executable, "-m", "modelplane.cli", "up", "--scale-out", "--port", "0",
                "--home", str(Path(tmp) / "home"), "--database-url", url, "--servers", "2",
                "--gateways", "2", "--agent-workers", "2", "--agent-packages", "soak_agent"]  # fmt: skip
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        rows: dict[str, tuple[str, int]] = {}
        try:
            rows = _read_table(proc, timeout=180, home=Path(tmp) / "home")
            threading.Thread(target=lambda: proc.stdout and proc.stdout.read(), daemon=True).start()
            counts = _Counts()
            soak = _Soak(rows, counts)
            with httpx.Client(timeout=30) as http:
                for plural, obj in _manifests():
                    obj = {"apiVersion": "modelplane.dev/v1alpha1", **obj}
                    r = http.post(f"{soak.servers[0]}{API}/{plural}", json=obj)
                    r.raise_for_status()
            _wait_ready(soak.servers[0], timeout=180)
            _say(f"up with {len(rows)} processes; soaking for {minutes:g} min")
            samples = _soak_for(soak, minutes, interval)
            lost = _check(soak, counts, timeout=120)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _kill_left((pid for _, pid in rows.values()), mark=str(Path(tmp) / "home"))
    if out is not None:
        _write(out, samples)
    return _figures(samples, counts, lost)


def _kill_left(pids: Iterable[int], mark: str) -> None:
    """SIGKILL the components still running after ``up`` stopped (or was killed: its children
    run in sessions of their own and would outlive it); only processes whose command line names
    ``mark`` (this soak's home), never a process that took a freed pid."""
    for pid in pids:
        try:
            if mark.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def _soak_for(soak: _Soak, minutes: float, interval: float) -> list[Sample]:
    workers = [threading.Thread(target=soak.traffic, args=(i,), daemon=True) for i in range(4)]
    workers += [threading.Thread(target=f, daemon=True) for f in (soak.applies, soak.agents)]
    began = time.monotonic()
    samples = [soak.sample(began)]
    for w in workers:
        w.start()
    end = began + 60 * minutes
    while time.monotonic() < end:
        time.sleep(max(0.0, min(interval, end - time.monotonic())))  # the sampling period
        samples.append(soak.sample(began))
        last = samples[-1]
        _say(
            f"{last.at / 60:5.1f} min: {len(last.latencies_ms)} requests,"
            f" {last.errors} errors so far, RSS {sum(last.rss_mb.values()):.0f} MiB"
        )
    soak.stop.set()
    for w in workers:
        w.join(60)
    return samples


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--quick", action="store_true", help="one minute, samples every 10 s")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MODELPLANE_TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test"),
    )
    parser.add_argument("--out", type=Path, help="a folder for soak.csv and soak.png")
    args = parser.parse_args(argv)
    minutes, interval = (1.0, 10.0) if args.quick else (args.minutes, args.interval)
    figures = run(args.database_url, minutes, interval, args.out)
    print_summary(figures)


if __name__ == "__main__":
    main()
