"""The SLO controller on a real store: status.slo, Events, the webhook and its egress rules."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from modelplane.control import Request
from modelplane.egress import EgressRules
from modelplane.rollout import RecordedSamples, Sample
from modelplane.sre import SLOController
from modelplane.store import Store

NS = "default"
REQ = Request(NS, "chat")


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _create(store: Store, slo: dict[str, Any], *, traffic: bool = True) -> None:
    split = {"traffic": [{"version": "v1", "weight": 100}]} if traffic else {}
    store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Endpoint",
            "metadata": {"name": "chat", "namespace": NS},
            "spec": {"model": "m", **split, "slo": slo},
        }
    )


def _serve(
    samples: RecordedSamples, clock: _Clock, count: int, *, ttft: float, error: bool = False
) -> None:
    """``count`` requests over the next 60 s of the clock."""
    for _ in range(count):
        clock.now += 60 / count
        samples.add(NS, "chat", "v1", Sample(t=clock.now, ttft_s=ttft, error=error))


def _slo(store: Store) -> dict[str, Any]:
    return dict((store.get("Endpoint", NS, "chat").get("status") or {}).get("slo") or {})


def _events(store: Store, reason: str) -> list[dict[str, Any]]:
    return [e for e in store.list("Event", NS).items if e["reason"] == reason]


class _Receiver:
    """An alert webhook on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(orjson.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    yield r
    r.close()


def _controller(
    store: Store, samples: RecordedSamples, clock: _Clock, egress: EgressRules
) -> SLOController:
    # one simulated hour lasts a minute of the test's clock
    return SLOController(store, samples=samples, clock=clock, egress=egress, scale=1 / 60)


def test_a_slow_endpoint_raises_an_alert_with_an_event_and_a_webhook_then_resolves(
    store: Store, receiver: _Receiver
) -> None:
    # given an Endpoint whose TTFT objective is 200 ms, a webhook on loopback allowed explicitly
    _create(store, {"ttftP99": "200ms", "minEvents": 50, "alertWebhook": receiver.url})
    samples, clock = RecordedSamples(), _Clock()
    controller = _controller(store, samples, clock, EgressRules.parse([], allow_loopback=True))
    # when its requests take 500 ms to their first token
    _serve(samples, clock, 300, ttft=0.5)
    controller.reconcile(REQ)
    # then status.slo says so: the SLI, the budget spent, the burn rates and a page
    report = _slo(store)
    (objective,) = report["objectives"]
    assert objective["name"] == "ttftP99" and objective["sli"] == 0
    assert objective["burnRates"]["1h"] == pytest.approx(100)
    assert any(a["rule"] == "14.4x over 1h and 5m" for a in report["alerts"])
    # and the version's own figures over the last (scaled) hour, which diagnose quotes
    assert report["versions"]["v1"] == {
        "window": "1h",
        "requests": 300,
        "errorRate": 0,
        "ttftP99": 0.5,
    }
    # and a Warning Event and a webhook call announce each alert that started
    assert _events(store, "SLOBurnRate") and _events(store, "SLOBurnRate")[0]["type"] == "Warning"
    assert {r["status"] for r in receiver.received} == {"firing"}
    assert receiver.received[0]["endpoint"] == "chat"
    # when the requests are fast again for a simulated hour (a minute of this clock)
    _serve(samples, clock, 600, ttft=0.05)
    controller.reconcile(REQ)
    # then the fast page resolves, with a Normal Event and a webhook call
    report = _slo(store)
    assert report["objectives"][0]["burnRates"]["1h"] < 1
    assert not any(a["rule"].startswith("14.4x") for a in report["alerts"])
    assert _events(store, "SLOBurnRateResolved")
    assert "resolved" in {r["status"] for r in receiver.received}


def test_a_webhook_on_a_refused_host_is_not_called_and_says_why(
    store: Store, receiver: _Receiver
) -> None:
    # given the default egress rules (no loopback) and a webhook on loopback
    _create(store, {"availability": 0.99, "minEvents": 10, "alertWebhook": receiver.url})
    samples, clock = RecordedSamples(), _Clock()
    controller = _controller(store, samples, clock, EgressRules())
    # when an alert starts
    _serve(samples, clock, 100, ttft=0.1, error=True)
    controller.reconcile(REQ)
    # then the alert is in the status, the receiver got nothing, and an Event names the rule
    assert _slo(store)["alerts"]
    assert receiver.received == []
    (failed,) = _events(store, "SLOWebhookFailed")
    assert "loopback" in failed["message"]


def test_few_requests_raise_nothing_and_an_endpoint_without_slo_gets_no_report(
    store: Store,
) -> None:
    # given an Endpoint with an objective and only a handful of failing requests
    _create(store, {"availability": 0.999})
    samples, clock = RecordedSamples(), _Clock()
    controller = _controller(store, samples, clock, EgressRules())
    _serve(samples, clock, 5, ttft=0.1, error=True)
    controller.reconcile(REQ)
    # then the burn is reported, but no alert fires (fewer than minEvents, 100)
    report = _slo(store)
    assert report["objectives"][0]["events"] == 5 and report["alerts"] == []
    # when the objectives are removed, then so is the report
    ep = store.get("Endpoint", NS, "chat")
    store.update({**ep, "spec": {k: v for k, v in ep["spec"].items() if k != "slo"}})
    controller.reconcile(REQ)
    assert "slo" not in (store.get("Endpoint", NS, "chat").get("status") or {})


def test_an_endpoint_without_a_split_is_judged_on_its_models_last_version(store: Store) -> None:
    # given an Endpoint that names no split (its Model's last version takes everything) and
    # allows no error at all
    store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "m", "namespace": NS},
            "spec": {
                "versions": [
                    {"name": "v1", "format": "upstream", "source": "https://api.example.com/v1"}
                ]
            },
        }
    )
    _create(store, {"errorRate": 0, "minEvents": 10}, traffic=False)
    samples, clock = RecordedSamples(), _Clock()
    controller = _controller(store, samples, clock, EgressRules())
    # when one request of 100 fails
    _serve(samples, clock, 99, ttft=0.1)
    _serve(samples, clock, 1, ttft=0.1, error=True)
    controller.reconcile(REQ)
    # then v1's requests are counted, and the budget of zero is broken
    (objective,) = _slo(store)["objectives"]
    assert objective["events"] == 100 and objective["sli"] == 0.99
    assert _slo(store)["alerts"]
