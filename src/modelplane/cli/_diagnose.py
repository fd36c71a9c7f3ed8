"""``modelplane diagnose [KIND/NAME]``: what is wrong, why, the evidence, and what to do.

Client-side: it reads Endpoints, Models, ResourceClaims and Agents of the namespace (and the
failed, corrupt and running instances of each Agent, from ``/agents``) through the API, with
the caller's own credentials (so it shows only what the caller may read, tenancy applying as to
``get``), and runs the analyzers of :mod:`modelplane.sre` over them. No server route is needed;
the analyzers are pure functions a server could run too.
"""

from __future__ import annotations

from typing import Any

import click

from modelplane.api.errors import ModelplaneError
from modelplane.cli._client import Client
from modelplane.cli._context import settings
from modelplane.cli._kinds import kind as lookup_kind
from modelplane.cli._output import console, print_table, to_json, to_yaml

_INSTANCE_STATUSES = ("failed", "corrupt", "running")
_INSTANCES_PER_STATUS = 100


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
            found = [client.get(info, ns, name)] if name else client.list_all(info, ns)[0]
            objects = {info.kind: found}
        else:
            objects = {k: client.list_all(lookup_kind(k), ns)[0] for k in ANALYZERS}
        objects["AgentInstance"] = _instances(client, ns, objects.get("Agent") or [])
        objects["AuditRecord"] = _denials(client, ns)
    return objects


def _denials(client: Client, ns: str) -> list[dict[str, Any]]:
    """The last hour's policy denials in ``ns``, where the caller may read the audit log."""
    params: dict[str, str | int] = {
        "namespace": ns,
        "decision": "deny",
        "since": "1h",
        "limit": 1000,
    }
    try:
        page = client.request("GET", "/audit/records", params=params)
    except ModelplaneError:  # not an administrator, or no audit log here
        return []
    return list(page.get("items") or []) if isinstance(page, dict) else []


def _instances(client: Client, ns: str, agents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The failed, corrupt and running instances of ``agents``, where the agents API answers."""
    found: list[dict[str, Any]] = []
    for agent in agents:
        name = agent["metadata"]["name"]
        for status in _INSTANCE_STATUSES:
            params: dict[str, str | int] = {"status": status, "limit": _INSTANCES_PER_STATUS}
            try:
                page = client.request("GET", f"/agents/{ns}/{name}/instances", params=params)
            except ModelplaneError:  # no agent runtime here, or not ours to read
                break
            found.extend(page.get("items") or [] if isinstance(page, dict) else [])
    return found


@click.command()
@click.argument("target", required=False, metavar="[KIND[/NAME]]")
@click.option("-o", "--output", type=click.Choice(["json", "yaml"]), default=None)
def diagnose(target: str | None, output: str | None) -> None:
    """Name what is wrong in the namespace (or with KIND/NAME): cause, evidence and fix.

    Analyzers: unschedulable ResourceClaims, crash-looping or not-ready replicas, failed or stuck
    rollouts, SLO burns (naming the version that burns), playbooks holding traffic, Models whose
    artifacts fail verification, Agents not ready and their failed or stuck instances, spikes of
    policy denials (for administrators, who may read the audit log). Exit status 0 either way;
    -o json|yaml for tools.
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
