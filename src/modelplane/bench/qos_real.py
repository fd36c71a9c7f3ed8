"""The QoS benchmark's real case: SmolLM2 behind `modelplane up`, a low-priority flood and a
high-priority client, the high client's TTFT without and with flow control (issue 19).

`modelplane up` serves the quickstart's SmolLM2 Endpoint (one CPU replica, the transformers worker
with continuous batching). A high-priority client sends streamed chat requests one after another
and times the first content chunk; first alone (idle), then while ``flood`` low-priority clients
send requests back to back: once with the Endpoint as the quickstart has it (no classes: every
request straight to the worker), once after ``spec.qos`` is applied to the same Endpoint (same
replica: classes ``interactive`` 10 and ``batch`` -5, two requests in flight at the worker with
background work filling one, a queue of ``flood`` and a TTL). Flood clients wait a shed
request's ``Retry-After`` before sending again, as a polite client does.

The model comes as :func:`modelplane.bench.batching.find_model` finds it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from modelplane.bench._figures import percentile, progress
from modelplane.bench.batching import find_model
from modelplane.bench.gateway import _free_port, stop_processes

_say = progress("qos")
API = "/apis/modelplane.dev/v1alpha1/namespaces/default"
QOS = {
    "classes": [{"name": "interactive", "priority": 10}, {"name": "batch", "priority": -5}],
    "defaultClass": "batch",
    "saturation": {"maxInFlight": 2, "backgroundShare": 0.5},
}


def _quickstart() -> Path:
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        found = root / "examples" / "quickstart" / "smollm2.yaml"
        if found.exists():
            return found
    raise SystemExit("examples/quickstart/smollm2.yaml not found: run from the repository root")


def _start_up(home: Path, port: int, model_dir: str | None) -> subprocess.Popen[bytes]:
    from modelplane.serving import ArtifactStore

    folder = find_model(model_dir)
    store = ArtifactStore(home)
    gguf = store.import_path(next(folder.parent.glob("*.gguf")))
    store.adopt_conversion(gguf, folder)
    argv = [sys.executable, "-m", "modelplane.cli", "up", "--port", str(port), "--home", str(home)]
    env = {k: v for k, v in os.environ.items() if k != "MODELPLANE_DATABASE_URL"}
    log = open(home / "up.log", "ab")  # noqa: SIM115 (closed with the process)
    return subprocess.Popen([*argv, "-f", str(_quickstart())], stdout=log, stderr=log, env=env)


def _wait_served(url: str, proc: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"modelplane up exited with {proc.returncode}")
        try:
            if httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)  # polling the platform's readiness, not timing anything measured
    raise SystemExit(f"SmolLM2 not served after {timeout:.0f}s")


def _wait_classes(url: str, timeout: float = 30.0) -> None:
    """Until the gateway applies the classes: a class it does not know is then a 400."""
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1}
    headers = {"x-modelplane-priority": "no-such-class"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        if r.status_code == 400:
            return
        time.sleep(0.1)  # polling a condition with a deadline
    raise SystemExit("the gateway did not apply spec.qos")


def _ttft(client: httpx.Client, klass: str, max_tokens: int, text: str) -> float | None:
    """Seconds to the first content chunk of a streamed answer; None when it was refused."""
    body = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    start = time.perf_counter()
    headers = {"x-modelplane-priority": klass}
    with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
        if r.status_code != 200:
            r.read()
            return None
        for line in r.iter_lines():
            if line.startswith("data: {") and b'"content"' in line.encode():
                delta = orjson.loads(line[6:])["choices"][0]["delta"]
                if delta.get("content"):
                    return time.perf_counter() - start
    return None


class _Flood:
    """Low-priority clients sending requests back to back until stopped."""

    def __init__(self, url: str, clients: int, max_tokens: int) -> None:
        self.url, self.max_tokens = url, max_tokens
        self.stop = threading.Event()
        self.codes: list[int] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        body = {
            "model": "smollm2",
            "messages": [{"role": "user", "content": "Write a long story about a ship."}],
            "max_tokens": self.max_tokens,
            "temperature": 0,
        }
        with httpx.Client(base_url=self.url, timeout=600) as client:
            while not self.stop.is_set():
                r = client.post("/v1/chat/completions", json=body)
                self.codes.append(r.status_code)
                if r.status_code == 429:  # a polite client waits as told
                    self.stop.wait(float(r.headers.get("retry-after", "1")))

    def __enter__(self) -> _Flood:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(600)


def _high(url: str, requests: int, max_tokens: int) -> dict[str, Any]:
    questions = ["What is the capital of France?", "Name a primary colour.", "What is 2 + 2?"]
    ttfts: list[float] = []
    refused = 0
    with httpx.Client(base_url=url, timeout=600) as client:
        for i in range(requests):
            got = _ttft(client, "interactive", max_tokens, questions[i % len(questions)])
            if got is None:
                refused += 1
            else:
                ttfts.append(got)
    return {
        "requests": requests,
        "refused": refused,
        "ttft_p50_s": round(percentile(ttfts, 0.5), 3),
        "ttft_p99_s": round(percentile(ttfts, 0.99), 3),
    }


def _loaded(url: str, args: Any) -> dict[str, Any]:
    with _Flood(url, args.flood, args.flood_tokens) as flood:
        # let the flood fill the worker before the high client starts timing
        deadline = time.monotonic() + 120
        while len(flood.codes) < args.flood and time.monotonic() < deadline:
            time.sleep(0.2)  # waiting for the flood's first answers, not timing anything
        high = _high(url, args.high_requests, args.high_tokens)
    codes = flood.codes
    high["flood"] = {"answered": codes.count(200), "shed_429": codes.count(429)}
    return high


def run_real(args: Any) -> dict[str, Any]:
    """The real case's figures (see the module docstring)."""
    with tempfile.TemporaryDirectory() as work:
        home = Path(work) / "home"
        home.mkdir()
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = _start_up(home, port, args.model_dir)
        try:
            _wait_served(url, proc)
            _high(url, 3, args.high_tokens)  # warm-up, untimed: the first forward passes are slow
            _say("real: SmolLM2 served; high client alone")
            idle = _high(url, args.high_requests, args.high_tokens)
            _say("real: flood without flow control")
            without = _loaded(url, args)
            endpoint = httpx.get(f"{url}{API}/endpoints/smollm2").json()
            endpoint["spec"]["qos"] = {**QOS, "queue": {"maxSize": args.flood, "ttl": "60s"}}
            r = httpx.put(f"{url}{API}/endpoints/smollm2", json=endpoint)
            r.raise_for_status()
            _wait_classes(url)
            _say("real: flood with flow control")
            with_flow = _loaded(url, args)
        finally:
            stop_processes(proc)
    ratio = with_flow["ttft_p99_s"] / idle["ttft_p99_s"] if idle["ttft_p99_s"] else None
    plain = without["ttft_p99_s"] / idle["ttft_p99_s"] if idle["ttft_p99_s"] else None
    return {
        "flood_clients": args.flood,
        "idle_high": idle,
        "without_flow_control": without,
        "with_flow_control": with_flow,
        "high_ttft_p99_vs_idle": {
            "without_flow_control": round(plain, 3) if plain else None,
            "with_flow_control": round(ratio, 3) if ratio else None,
        },
    }
