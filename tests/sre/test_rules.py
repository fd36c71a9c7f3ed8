"""`modelplane slo rules`: Prometheus rules that name only metrics the gateway exports."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from click.testing import CliRunner

from modelplane.cli import cli
from modelplane.gateway._telemetry import _BUCKETS, Telemetry
from modelplane.sre import BUCKETS, METRICS, prometheus_rules

EXAMPLE = "examples/slo/endpoint.yaml"


def _exported() -> set[str]:
    telemetry = Telemetry()
    telemetry.record(
        "default", "chat", "v1", code=200, ttft=0.1, tpot=0.01, duration=0.2, output_tokens=3
    )
    names = set()
    for line in telemetry.prometheus().splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_the_rules_read_only_metrics_the_gateway_exports_with_its_buckets() -> None:
    exported = _exported()
    assert set(METRICS) <= exported
    assert BUCKETS == _BUCKETS
    rules = prometheus_rules([yaml.safe_load(Path(EXAMPLE).read_text())])
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in re.findall(r"\bmodelplane_gateway_\w+", rule["expr"]):
                assert name in exported, (name, rule["expr"])


def test_slo_rules_prints_recording_and_alerting_rules_for_a_manifest() -> None:
    result = CliRunner().invoke(cli, ["slo", "rules", "-f", EXAMPLE])
    assert result.exit_code == 0, result.output
    rules = yaml.safe_load(result.output)
    flat = [r for g in rules["groups"] for r in g["rules"]]
    records = {r["record"] for r in flat if "record" in r}
    alerts = [r for r in flat if "alert" in r]
    # five windows per objective recorded, three rules per objective alerting
    assert len(records) == 10 and len(alerts) == 6
    page = next(
        a
        for a in alerts
        if a["labels"]["window"] == "1h" and a["labels"]["objective"] == "availability"
    )
    assert page["labels"]["severity"] == "page"
    assert "> 14.4 * 0.001" in page["expr"] and ">= 100" in page["expr"]
    assert 'code=~"5.."' in " ".join(r["expr"] for r in flat if "record" in r)
    assert 'le="0.5"' in " ".join(r["expr"] for r in flat if "record" in r)


def test_slo_rules_says_what_is_wrong_with_a_bad_manifest(tmp_path: object) -> None:
    result = CliRunner().invoke(cli, ["slo", "rules", "-f", "no/such/file.yaml"])
    assert result.exit_code != 0 and "cannot read" in result.output
