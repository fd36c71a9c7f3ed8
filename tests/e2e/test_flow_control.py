"""Through a real `modelplane up`: a low-priority flood is shed (429 with Retry-After) while a
high-priority client is served, by the gateway's flow control in front of a simulated replica
(a worker process with a latency model, started by the embedded node agent)."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess, simulated_model

pytestmark = pytest.mark.slow

API = "/apis/modelplane.dev/v1alpha1/namespaces/default"


def _apply(client: httpx.Client) -> None:
    model = simulated_model("m")
    endpoint = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Endpoint",
        "metadata": {
            "name": "chat",
            # each answer takes about 16 x 100 ms: long enough for a queue to form
            "annotations": {
                "modelplane.dev/simulated": "true",
                "modelplane.dev/simulated-ttft": "50ms",
                "modelplane.dev/simulated-tpot": "100ms",
            },
        },
        "spec": {
            "model": "m",
            "qos": {
                "classes": [
                    {"name": "interactive", "priority": 10},
                    {"name": "batch", "priority": -5},
                ],
                "defaultClass": "batch",
                "queue": {"maxSize": 2, "ttl": "60s"},
                "saturation": {"maxInFlight": 1},
            },
        },
    }
    assert client.post(f"{API}/models", json=model).status_code == 201
    r = client.post(f"{API}/endpoints", json=endpoint)
    assert r.status_code == 201, r.text


class _Clients:
    """Requests sent from threads, each answer kept with the time it finished."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pool = ThreadPoolExecutor(12)
        self.lock = threading.Lock()

    def send(self, klass: str | None, text: str) -> Future[tuple[httpx.Response, float]]:
        return self.pool.submit(self._send, klass, text)

    def _send(self, klass: str | None, text: str) -> tuple[httpx.Response, float]:
        headers = {"x-modelplane-priority": klass} if klass else {}
        body = {"model": "chat", "messages": [{"role": "user", "content": text}]}
        with httpx.Client(base_url=self.url, timeout=120) as client:
            r = client.post("/v1/chat/completions", json=body, headers=headers)
        return r, time.monotonic()


def _held(client: httpx.Client) -> float:
    text = client.get("/v1/_modelplane/metrics").text
    found = re.findall(r"^modelplane_gateway_flow_queue_depth\{[^}]*\} (\S+)$", text, re.M)
    return sum(float(v) for v in found)


def test_a_low_priority_flood_is_shed_while_a_high_priority_client_is_served(
    up: UpProcess,
) -> None:
    clients = _Clients(up.url)
    with httpx.Client(base_url=up.url, timeout=30) as client:
        # given an Endpoint with classes, one request at a time on its one simulated replica
        _apply(client)
        wait_until(
            lambda: clients.send("interactive", "ready?").result(timeout=120)[0].status_code == 200,
            timeout=90,
            what="the simulated replica to answer",
        )
        # when a flood of low-priority requests arrives: one runs, two wait, the rest are shed
        lows = [clients.send(None, f"low {i}") for i in range(6)]
        wait_until(lambda: _held(client) == 2, timeout=30, what="two low requests held")
        # and a high-priority client asks
        high = clients.send("interactive", "high")
        answers = [f.result(timeout=120) for f in lows]
        served_high, high_done = high.result(timeout=120)
        metrics = client.get("/v1/_modelplane/metrics").text
    clients.pool.shutdown()
    # then the high-priority client is served
    assert served_high.status_code == 200, served_high.text
    # and the flood is shed with 429 and Retry-After: the overflow at once, one held request to
    # make room for the high one; two low requests are served
    codes = sorted(r.status_code for r, _ in answers)
    assert codes == [200, 200, 429, 429, 429, 429], codes
    for r, _ in answers:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["code"] == "flow_control_shed"
    # the high one went before the low one still held when it came (only the running one was
    # done earlier)
    low_done = sorted(t for r, t in answers if r.status_code == 200)
    assert low_done[0] < high_done < low_done[1]
    assert re.search(
        r'modelplane_gateway_flow_shed_requests_total\{endpoint="default/chat",class="batch",'
        r'reason="queue_full"\} 4',
        metrics,
    )
