"""``modelplane approvals list|approve|deny ID [--reason]``: tool calls waiting for a person.

A runtime Policy may answer a tool call with "needs approval" (a ``forbid`` annotated
``@decision("approval")``); the call waits, durably, until someone allowed to decide approves
or denies it here. The commands go through the REST API (``/approvals``).
"""

from __future__ import annotations

import time

import click

from modelplane.api import cell, human_duration
from modelplane.cli._context import settings
from modelplane.cli._output import (
    console,
    document_output_option,
    print_document,
    print_table,
)


@click.group()
def approvals() -> None:
    """Tool calls waiting for a person's decision: list, approve, deny."""


@approvals.command("list")
@click.option(
    "--state",
    type=click.Choice(["open", "decided", "all"]),
    default="open",
    show_default=True,
    help="Waiting ones, decided ones, or both.",
)
@click.option("-A", "--all-namespaces", is_flag=True, help="Every namespace, not only -n's.")
@document_output_option
def list_cmd(state: str, all_namespaces: bool, output: str | None) -> None:
    """Approvals you may decide (`approvals list`, `approvals list --state all -o json`)."""
    params = {"state": state}
    if not all_namespaces:
        params["namespace"] = settings().namespace
    with settings().client() as client:
        page = client.request("GET", "/approvals", params=params)
    if output:
        print_document(page, output)
        return
    now = time.time()
    rows = [
        (
            a["id"],
            f"{a['agent']}/{a['instance']}",
            f"{a['server']}.{a['tool']}",
            a["decision"],
            human_duration(max(0.0, now - float(a["requested"]))),
            cell(a["reason"] if a["decision"] == "pending" else a["decidedReason"]),
        )
        for a in page["items"]
    ]
    if not rows:
        click.echo("No approvals found.", err=True)
        return
    headers = ("ID", "INSTANCE", "TOOL", "DECISION", "AGE", "REASON")
    print_table(console(), headers, rows)


def _decide(approval: str, verb: str, reason: str, output: str | None) -> None:
    with settings().client() as client:
        decided = client.request("POST", f"/approvals/{approval}/{verb}", body={"reason": reason})
    if output:
        print_document(decided, output)
    else:
        click.echo(f"approval/{approval} {decided['decision']}")


def _decision(verb: str, summary: str, reason: str) -> None:
    @approvals.command(verb, help=summary)
    @click.argument("approval", metavar="ID")
    @click.option("--reason", default="", help=reason)
    @document_output_option
    def command(approval: str, reason: str, output: str | None) -> None:
        _decide(approval, verb, reason, output)


_decision("approve", "Let the waiting tool call ID run.", "Why (kept in the audit trail).")
_decision(
    "deny",
    "Refuse the waiting tool call ID: the agent's handler gets ToolDenied.",
    "Why (the agent's ToolDenied carries it).",
)
