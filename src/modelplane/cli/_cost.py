"""``modelplane cost``: money per hour and watts of what is allocated, by owner, namespace, node
and rack (:mod:`modelplane.sre`'s cost report over the API's claims, slices and nodes)."""

from __future__ import annotations

from typing import Any

import click

from modelplane.cli._context import settings
from modelplane.cli._output import console, document_output_option, print_document, print_table

_CLAIMS = "/apis/resource.k8s.io/v1"
_OURS = "/apis/modelplane.dev/v1alpha1"


def _items(client: Any, path: str) -> list[dict[str, Any]]:
    return list(client.request("GET", path).get("items") or [])


def _money(value: float) -> str:
    return f"{value:.2f}"


@click.command("cost")
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace, not only -n's.")
@click.option("--power", is_flag=True, help="Also watts published and allocated per node and rack.")
@document_output_option
def cost(all_namespaces: bool, power: bool, output: str | None) -> None:
    """Money per hour and watts of the devices allocated, by owner (an Endpoint's replicas, a Job,
    an Agent) and namespace, from the devices' modelplane.dev/pricePerHour and
    modelplane.dev/powerWatts attributes. Devices without them count 0 and are shown as UNPRICED."""
    from modelplane.sre import cost_report

    s = settings()
    claims_path = (
        f"{_CLAIMS}/resourceclaims"
        if all_namespaces
        else f"{_CLAIMS}/namespaces/{s.namespace}/resourceclaims"
    )
    with s.client() as client:
        report = cost_report(
            _items(client, claims_path),
            _items(client, f"{_CLAIMS}/resourceslices"),
            _items(client, f"{_OURS}/nodes"),
        )
    if output:
        print_document(report.to_json(), output)
        return
    out = console()
    headers = ["NAMESPACE", "OWNER", "DEVICES", "PER HOUR", "WATTS", "UNPRICED"]
    rows = [
        [
            o.namespace,
            o.owner,
            f"{o.devices:g}",
            _money(o.per_hour),
            f"{o.watts:g}",
            str(o.unpriced),
        ]
        for o in report.owners
    ]
    total = sum(report.namespaces().values())
    rows.append(["", "TOTAL", "", _money(total), f"{sum(o.watts for o in report.owners):g}", ""])
    print_table(out, headers, rows)
    if power:
        for title, uses in (("NODE", report.nodes), ("RACK", report.racks)):
            out.print()
            print_table(
                out,
                [title, "PUBLISHED WATTS", "ALLOCATED WATTS"],
                [[u.name, f"{u.published:g}", f"{u.allocated:g}"] for u in uses],
            )
