"""``modelplane audit bom``: the AI-BOM of a namespace or an Endpoint, CycloneDX 1.6 JSON.

It reads the namespace's Models and Endpoints through the API (or one Endpoint and its Model)
and the serving code's Python dependencies from this installation's distribution metadata;
:mod:`modelplane.supplychain` builds and validates the document.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import click

from modelplane.cli._context import connection_options, settings

_GROUP, _VERSION = "modelplane.dev", "v1alpha1"


@dataclass(frozen=True)
class _Route:
    plural: str
    group: str = _GROUP
    version: str = _VERSION
    kind: str = ""
    namespaced: bool = True


@click.command()
@click.argument("endpoint", required=False)
@click.option("-o", "--output", "out", metavar="FILE", help="Write the BOM here (default: stdout).")
@click.option(
    "--osv",
    type=click.Path(dir_okay=False, exists=True),
    help="An OSV database zip (all.zip): add the advisories affecting the installed versions.",
)
@connection_options()
def bom(endpoint: str | None, out: str | None, osv: str | None) -> None:
    """The AI-BOM (CycloneDX 1.6 JSON) of the namespace (-n), or of ENDPOINT: machine-learning-model
    components for Model versions (digest, license, model card), Endpoints depending on the
    versions they serve, and the serving code's Python dependencies with their licenses."""
    from modelplane.supplychain import (
        BomError,
        OsvDatabase,
        OsvError,
        build_bom,
        python_dependencies,
    )

    try:
        database = OsvDatabase.load(Path(osv)) if osv else None
    except OsvError as exc:
        raise click.ClickException(str(exc)) from None
    given = settings()
    with given.client() as client:
        models, _ = client.list_all(_Route("models"), given.namespace)
        if endpoint is None:
            endpoints, _ = client.list_all(_Route("endpoints"), given.namespace)
        else:
            endpoints = [client.get(_Route("endpoints"), given.namespace, endpoint)]
            wanted = {str((e.get("spec") or {}).get("model")) for e in endpoints}
            models = [m for m in models if (m.get("metadata") or {}).get("name") in wanted]
    try:
        text = build_bom(
            models, endpoints, python_dependencies(), serving_version=_version(), osv=database
        )
    except BomError as exc:
        raise click.ClickException(str(exc)) from None
    if out is None:
        click.echo(text)
        return
    with open(out, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    click.echo(f"wrote {out}: {len(models)} models, {len(endpoints)} endpoints", err=True)


def _version() -> str:
    try:
        return metadata.version("modelplane")
    except metadata.PackageNotFoundError:
        return ""
