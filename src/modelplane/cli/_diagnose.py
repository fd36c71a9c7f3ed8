"""``modelplane diagnose [KIND/NAME]``: what is wrong, why, the evidence, and what to do.

Client-side: it reads Endpoints, Models and ResourceClaims of the namespace through the API, with
the caller's own credentials (so it shows only what the caller may read, tenancy applying as to
``get``), and runs the analyzers of :mod:`modelplane.sre` over them. No server route is needed;
the analyzers are pure functions a server could run too.
"""

from __future__ import annotations

from typing import Any

import click

from modelplane.cli._context import settings
from modelplane.cli._kinds import kind as lookup_kind
from modelplane.cli._output import console, print_table, to_json, to_yaml


def _objects(target: str | None) -> dict[str, list[dict[str, Any]]]:
    from modelplane.sre import ANALYZERS

    ns = settings().namespace
    with settings().client() as client:
        if target:
            kind_name, _, name = target.partition("/")
            info = lookup_kind(kind_name)
            if info.kind not in ANALYZERS:
                known = ", ".join(sorted(ANALYZERS))
                raise click.ClickException(f"no analyzer reads {info.kind}; diagnose reads {known}")
            if not name:
                return {info.kind: client.list_all(info, ns)[0]}
            return {info.kind: [client.get(info, ns, name)]}
        return {k: client.list_all(lookup_kind(k), ns)[0] for k in ANALYZERS}


@click.command()
@click.argument("target", required=False, metavar="[KIND[/NAME]]")
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default=None)
def diagnose(target: str | None, output: str | None) -> None:
    """Name what is wrong in the namespace (or with KIND/NAME): cause, evidence and fix.

    Analyzers: unschedulable ResourceClaims, crash-looping or not-ready replicas, failed or stuck
    rollouts, SLO burns (naming the version that burns), playbooks holding traffic, Models whose
    artifacts fail verification. Exit status 0 either way; -o json|yaml for tools.
    """
    from modelplane.sre import diagnose as run

    findings = run(_objects(target))
    if output:
        data = [f.to_json() for f in findings]
        click.echo(to_json(data) if output == "json" else to_yaml(data).rstrip("\n"))
        return
    if not findings:
        click.echo(f"no problem found in namespace {settings().namespace}")
        return
    rows = [[f.severity, f.object, f.cause] for f in findings]
    print_table(console(), ["SEVERITY", "OBJECT", "CAUSE"], rows)
    for f in findings:
        click.echo(f"\n{f.object}: {f.cause}\n  evidence: {f.evidence}\n  fix: {f.fix}")
