"""``modelplane explain KIND[.field.path]``: the documentation of a kind or field (no server)."""

from __future__ import annotations

import click

from modelplane.api import explain as explain_path


@click.command()
@click.argument("path", metavar="KIND[.FIELD.PATH]")
def explain(path: str) -> None:
    """Describe a kind or one of its fields, e.g. `endpoint` or `endpoint.spec.traffic`.

    Works offline: the text comes from the schemas this CLI was built with.
    """
    click.echo(explain_path(path).rstrip("\n"))
