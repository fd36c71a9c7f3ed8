"""`modelplane slo status`: the table, JSON and YAML of what the SLO controller wrote."""

from __future__ import annotations

import orjson
from tests.cli._platform import run_cli

from modelplane.control import Request
from modelplane.rollout import RecordedSamples, Sample
from modelplane.sre import SLOController
from modelplane.store import Store

NS = "default"


def _endpoint(store: Store, name: str, slo: dict[str, object] | None) -> None:
    spec: dict[str, object] = {"model": "m", "traffic": [{"version": "v1", "weight": 100}]}
    if slo:
        spec["slo"] = slo
    store.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Endpoint",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
    )


def test_slo_status_shows_each_objective_and_the_firing_alert(
    platform: tuple[str, Store],
) -> None:
    url, store = platform
    # given an Endpoint whose requests all fail, evaluated by the SLO controller, and one without
    _endpoint(store, "chat", {"availability": 0.999, "minEvents": 10})
    _endpoint(store, "plain", None)
    samples = RecordedSamples()
    for i in range(100):
        samples.add(NS, "chat", "v1", Sample(t=1000.0 + i / 10, ttft_s=0.1, error=True))
    SLOController(store, samples=samples, clock=lambda: 1010.0, scale=1 / 720).reconcile(
        Request(NS, "chat")
    )
    # when `modelplane slo status` runs
    table = run_cli("--server", url, "slo", "status")
    # then one row names the objective, its SLI, its budget and the firing page
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split()[:5] == ["ENDPOINT", "OBJECTIVE", "TARGET", "SLI", "BUDGET"]
    row = lines[1].split()
    assert row[:4] == ["chat", "availability", "99.9%", "0.000%"] and "page" in lines[1]
    assert not any(line.startswith("plain") for line in lines)
    assert any(line.startswith("page: chat: availability burns") for line in lines)
    # and -o json prints status.slo as it is
    as_json = orjson.loads(run_cli("--server", url, "slo", "status", "chat", "-o", "json").stdout)
    assert as_json["chat"]["objectives"][0]["sli"] == 0
    # and an Endpoint without objectives says how to set them
    plain = run_cli("--server", url, "slo", "status", "plain")
    assert plain.exit_code == 0 and "no spec.slo" in plain.stdout
