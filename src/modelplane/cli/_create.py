"""``modelplane create secret generic NAME``: a Secret from literals and files, as kubectl does.

``--from-literal=KEY=VALUE`` and ``--from-file=[KEY=]PATH`` (the key defaults to the file's
name; a folder adds each regular file in it) are read **here, on the client**: the server gets
the values in the request body and never reads a path. The values are sent base64-encoded in
``data``, so any bytes (a certificate, a binary key) go through unchanged.

Prints ``secret/NAME created``, or the created object with ``-o json|yaml`` (its values redacted
unless the caller may read secrets).
"""

from __future__ import annotations

import base64
from pathlib import Path

import click

from modelplane.api import check_secret_key, lookup
from modelplane.cli._client import JSON
from modelplane.cli._context import connection_options, settings
from modelplane.cli._output import to_json, to_yaml


@click.group()
def create() -> None:
    """Create an object from command-line values (for manifests, use `apply -f`)."""


@create.group()
def secret() -> None:
    """Create a Secret."""


def _key(key: str, what: str) -> str:
    why = check_secret_key(key)
    if why:
        raise click.BadParameter(f"{why} (key {key!r})", param_hint=what)
    return key


def _literal(entry: str) -> tuple[str, bytes]:
    key, sep, value = entry.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{entry!r} must be KEY=VALUE", param_hint="--from-literal")
    return _key(key, "--from-literal"), value.encode()


def _files(entry: str) -> list[tuple[str, bytes]]:
    key, sep, path_text = entry.partition("=")
    if not sep:
        key, path_text = "", entry
    path = Path(path_text).expanduser()
    if path.is_dir():
        if key:
            raise click.BadParameter(
                f"{path_text!r} is a folder: a key cannot name a folder's files",
                param_hint="--from-file",
            )
        return [
            (_key(p.name, "--from-file"), _read(p)) for p in sorted(path.iterdir()) if p.is_file()
        ]
    return [(_key(key or path.name, "--from-file"), _read(path))]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {str(path)!r}: {exc.strerror or exc}", param_hint="--from-file"
        ) from None


@secret.command("generic")
@click.argument("name")
@click.option(
    "--from-literal",
    "literals",
    multiple=True,
    metavar="KEY=VALUE",
    help="A key and its value; repeatable.",
)
@click.option(
    "--from-file",
    "files",
    multiple=True,
    metavar="[KEY=]PATH",
    help="A file read here (key: its name unless given), or each file of a folder; repeatable.",
)
@click.option("--type", "type_", default="Opaque", show_default=True, help="The Secret's type.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["json", "yaml", "name"]),
    help="Print the created object (values redacted unless you may read secrets).",
)
@connection_options()
def generic(
    name: str,
    literals: tuple[str, ...],
    files: tuple[str, ...],
    type_: str,
    output: str | None,
) -> None:
    """Create the Secret NAME from --from-literal and --from-file values."""
    values: dict[str, bytes] = {}
    for key, value in [*(_literal(e) for e in literals), *(kv for e in files for kv in _files(e))]:
        if key in values:
            raise click.BadParameter(f"the key {key!r} is given twice", param_hint="NAME")
        values[key] = value
    s = settings()
    info = lookup("Secret")
    obj: JSON = {
        "apiVersion": info.api_version,
        "kind": info.kind,
        "metadata": {"name": name, "namespace": s.namespace},
        "type": type_,
        "data": {k: base64.b64encode(v).decode() for k, v in values.items()},
    }
    with s.client() as client:
        created = client.create(info, s.namespace, obj)
    if output == "json":
        click.echo(to_json(created))
    elif output == "yaml":
        click.echo(to_yaml(created).rstrip("\n"))
    elif output == "name":
        click.echo(f"secret/{name}")
    else:
        click.echo(f"secret/{name} created")
