"""``modelplane audit log`` and ``modelplane audit verify``: reading and checking the audit log.

Both ask the server (``/audit/records``, ``/audit/verify``; administrators only), which reads the
log in its database: every decision (admission, model and tool calls, approvals), hash-chained.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from modelplane.cli._bom import bom
from modelplane.cli._context import connection_options, settings
from modelplane.cli._deps import deps, snapshot
from modelplane.cli._output import (
    console,
    document_output_option,
    echo_error,
    print_document,
    print_table,
)

_HEADERS = ("SEQ", "TIME", "PRINCIPAL", "CATEGORY", "ACTION", "RESOURCE", "DECISION", "POLICIES")


@click.group()
def audit() -> None:
    """The audit log of every decision (read it, verify its hash chain), and the dependency
    guard (deps, snapshot)."""


audit.add_command(deps)
audit.add_command(snapshot)
audit.add_command(bom)


@audit.command("log")
@click.option("--principal", help="Only decisions about this user or service account.")
@click.option("--category", help="admission, model, tool, message, approval or remediation.")
@click.option("--decision", type=click.Choice(["allow", "deny", "approval"]), help="Only these.")
@click.option("--since", help="From this time (RFC 3339) or this long ago (30m, 2h, 7d).")
@click.option("--until", help="Before this time (RFC 3339) or this long ago.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many records.")
@document_output_option
@connection_options()
def log(
    principal: str | None,
    category: str | None,
    decision: str | None,
    since: str | None,
    until: str | None,
    limit: int | None,
    output: str | None,
) -> None:
    """Print audit records, oldest first (a table, or every field with -o json|yaml); with
    -n, only the decisions in that namespace."""
    from modelplane.policy import RECORDS_PATH

    given = settings()
    namespace = given.namespace if given.namespace_given else None

    filters = {
        "principal": principal,
        "namespace": namespace,
        "category": category,
        "decision": decision,
        "since": since,
        "until": until,
    }
    params: dict[str, str | int] = {k: v for k, v in filters.items() if v is not None}
    items: list[dict[str, Any]] = []
    with given.client() as client:
        while limit is None or len(items) < limit:
            page_size = 1000 if limit is None else min(1000, limit - len(items))
            page = client.request("GET", RECORDS_PATH, params={**params, "limit": page_size})
            items += page.get("items") or []
            if not page.get("continue"):
                break
            params["continue"] = page["continue"]
    if output is not None:
        print_document({"items": items}, output)
    elif not items:
        click.echo("No audit records found.", err=True)
    else:
        print_table(console(), _HEADERS, [_row(r) for r in items])


def _row(record: dict[str, Any]) -> list[str]:
    return [
        str(record.get("sequence", "")),
        str(record.get("time", "")),
        str(record.get("principal", "")),
        str(record.get("category", "")),
        str(record.get("action", "")),
        str(record.get("resource", "")),
        str(record.get("decision", "")),
        ",".join(record.get("policies") or []) or "<none>",
    ]


@audit.command()
@connection_options()
def verify() -> None:
    """Check the hash chain: exit 0 and "verified N records", or exit 1 naming the first record
    whose hash or link does not hold."""
    from modelplane.policy import VERIFY_PATH

    with settings().client() as client:
        result = client.request("GET", VERIFY_PATH)
    if result.get("verified"):
        click.echo(f"verified {result.get('records', 0)} records")
        return
    bad = result.get("firstBad") or {}
    echo_error(
        f"audit log tampered: record {bad.get('sequence')} does not hold ({bad.get('problem')});"
        f" {result.get('records', 0)} records before it verified"
    )
    sys.exit(1)
