"""``modelplane slo status [ENDPOINT]`` and ``modelplane slo rules``.

``status`` reads ``status.slo`` of one Endpoint, or of every Endpoint with ``spec.slo`` in the
namespace, as the SLO controller wrote it. ``rules`` prints the same burn-rate alerts as a
Prometheus rule file over the gateway's metrics, for the Endpoints on the server or in
manifests given with ``-f`` (then no server is needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from modelplane.cli._context import settings
from modelplane.cli._output import console, print_table, to_json, to_yaml

_OUTPUT = click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default=None)
_BURNS = ("1h", "5m", "6h", "30m", "3d")


def _endpoints(name: str | None) -> list[dict[str, Any]]:
    base = f"/apis/modelplane.dev/v1alpha1/namespaces/{settings().namespace}/endpoints"
    with settings().client() as client:
        if name:
            return [client.request("GET", f"{base}/{name}")]
        listed = client.request("GET", base)
    return [e for e in listed.get("items") or [] if (e.get("spec") or {}).get("slo")]


@click.group()
def slo() -> None:
    """Service-level objectives of Endpoints: burn rates, budgets, alerts and their rules."""


def _percent(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{float(value) * 100:.{digits}f}%"


def _burn(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def _rows(name: str, report: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    alerts = report.get("alerts") or []
    for objective in report.get("objectives") or []:
        burns = objective.get("burnRates") or {}
        firing = sorted(
            {
                f"{a.get('severity')}"
                + ("" if a.get("scope") == "endpoint" else f" ({a.get('scope')})")
                for a in alerts
                if a.get("objective") == objective.get("name")
            }
        )
        rows.append(
            [
                name,
                str(objective.get("name")),
                str(objective.get("objective")),
                _percent(objective.get("sli")),
                _percent(objective.get("budgetLeft"), 1),
                "/".join(_burn(burns.get(w)) for w in _BURNS),
                ", ".join(firing) or "-",
            ]
        )
    return rows


@slo.command()
@click.argument("endpoint", required=False)
@_OUTPUT
def status(endpoint: str | None, output: str | None) -> None:
    """SLI, budget left, burn rates and firing alerts of ENDPOINT (default: every one with SLOs)."""
    found = _endpoints(endpoint)
    reports = {str(e["metadata"]["name"]): (e.get("status") or {}).get("slo") or {} for e in found}
    if output:
        click.echo(to_json(reports) if output == "json" else to_yaml(reports).rstrip("\n"))
        return
    if endpoint and not (found[0].get("spec") or {}).get("slo"):
        click.echo(f"endpoint/{endpoint}: no spec.slo; set one to be alerted (see docs/slo.md)")
        return
    if not found:
        click.echo(f"no Endpoint in namespace {settings().namespace} sets spec.slo")
        return
    rows = [row for name, report in reports.items() for row in _rows(name, report)]
    header = ["ENDPOINT", "OBJECTIVE", "TARGET", "SLI", "BUDGET LEFT"]
    print_table(console(), [*header, f"BURN {'/'.join(_BURNS)}", "ALERT"], rows)
    for name, report in reports.items():
        if not report.get("objectives"):
            waiting = report.get("message") or "not evaluated yet (is `modelplane up` running?)"
            click.echo(f"{name}: {waiting}")
        for alert in report.get("alerts") or []:
            click.echo(
                f"{alert.get('severity')}: {alert.get('message')} since {alert.get('since')}"
            )


def _from_files(paths: tuple[str, ...]) -> list[dict[str, Any]]:
    from modelplane.api import Endpoint
    from modelplane.api.errors import Invalid

    endpoints: list[dict[str, Any]] = []
    for path in paths:
        try:
            docs = list(yaml.safe_load_all(Path(path).read_text()))
        except OSError as exc:
            raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise click.ClickException(f"{path} is not YAML: {exc}") from None
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") == "Endpoint":
                try:
                    Endpoint.model_validate(doc)
                except (ValueError, Invalid) as exc:
                    raise click.ClickException(f"{path}: {exc}") from None
                endpoints.append(doc)
    return endpoints


@slo.command()
@click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Manifests with Endpoints (no server needed); default: the Endpoints on the server.",
)
@click.argument("endpoint", required=False)
def rules(files: tuple[str, ...], endpoint: str | None) -> None:
    """The burn-rate alerts as Prometheus recording and alerting rules (YAML)."""
    from modelplane.sre import prometheus_rules

    found = _from_files(files) if files else _endpoints(endpoint)
    if endpoint:
        found = [e for e in found if (e.get("metadata") or {}).get("name") == endpoint]
    generated = prometheus_rules(found)
    if not generated["groups"]:
        raise click.ClickException("no Endpoint with spec.slo found: nothing to write rules for")
    click.echo(to_yaml(generated).rstrip("\n"))
