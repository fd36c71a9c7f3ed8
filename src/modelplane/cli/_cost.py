"""``modelplane cost``: money per hour and watts of what is allocated, by owner, namespace, node
and rack (:mod:`modelplane.sre`'s cost report over the API's claims, slices and nodes)."""

from __future__ import annotations

import click

from modelplane.cli._context import settings
from modelplane.cli._kinds import kind
from modelplane.cli._output import console, document_output_option, print_document, print_table


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
    with s.client() as client:
        # every page of each list, as `get` reads them (None: every namespace)
        claims, _ = client.list_all(kind("ResourceClaim"), None if all_namespaces else s.namespace)
        slices, _ = client.list_all(kind("ResourceSlice"), None)
        nodes, _ = client.list_all(kind("Node"), None)
    report = cost_report(claims, slices, nodes)
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
