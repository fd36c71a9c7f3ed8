"""``modelplane sandbox call|digest|run|probes``: run one tool in a sandbox, locally, without a server.

``call`` runs a WebAssembly tool (a ``.wasm`` binary or ``.wat`` text following the
``modelplane-json-v1`` ABI) on JSON arguments and prints its JSON result; ``run`` runs a command
under the process sandbox and passes its output and exit status through; ``digest`` prints a module's digest; ``probes`` runs the
escape probes and exits 1 if any got out. Grants are given on the command line; nothing is
granted by default. Compiled modules are cached under ``$MODELPLANE_HOME/sandbox/wasm``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from modelplane.cli._options import home_option
from modelplane.cli._output import console, print_table, to_json


def _pairs(values: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r}: expected NAME=VALUE", param_hint=what)
        out[key] = rest
    return out


@click.group()
def sandbox() -> None:
    """Run tools in the WebAssembly or the process sandbox (docs/sandbox.md)."""


@sandbox.command("call")
@click.argument("tool", type=click.Path(exists=True, dir_okay=False))
@click.argument("arguments", default="{}")
@click.option("--digest", help="Refuse the tool unless its binary has this sha256:<hex> digest.")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="Grant a variable.")
@click.option(
    "--dir",
    "dirs",
    multiple=True,
    metavar="HOST:GUEST[:rw]",
    help="Grant a host folder at GUEST, read-only unless :rw.",
)
@click.option("--timeout", type=float, default=0.05, show_default=True, help="Seconds.")
@click.option("--memory", type=int, default=16 << 20, show_default=True, help="Bytes.")
@home_option()
def call(
    tool: str,
    arguments: str,
    digest: str | None,
    env: tuple[str, ...],
    dirs: tuple[str, ...],
    timeout: float,
    memory: int,
    home: str,
) -> None:
    """Call the WebAssembly TOOL with ARGUMENTS (JSON) and print its JSON result."""
    from modelplane.sandbox import DirGrant, WasmGrants, WasmLimits, WasmRuntime

    try:
        args = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="ARGUMENTS") from None
    grants = []
    for spec in dirs:
        host, _, rest = spec.partition(":")
        guest, _, mode = rest.partition(":")
        if not host or not guest or mode not in ("", "ro", "rw"):
            raise click.BadParameter(f"{spec!r}: expected HOST:GUEST[:rw]", param_hint="--dir")
        grants.append(DirGrant(Path(host).resolve(), guest, writable=mode == "rw"))
    runtime = WasmRuntime(Path(home) / "sandbox" / "wasm")
    loaded = runtime.load(Path(tool).read_bytes(), digest=digest)
    result = loaded.call(
        args,
        limits=WasmLimits(timeout_s=timeout, memory_bytes=memory),
        grants=WasmGrants(dirs=tuple(grants), env=_pairs(env, "--env")),
    )
    click.echo(json.dumps(result))


@sandbox.command("digest")
@click.argument("tool", type=click.Path(exists=True, dir_okay=False))
def digest(tool: str) -> None:
    """Print the sha256 digest of TOOL's binary (what an Agent's wasm tool pins)."""
    from modelplane.sandbox import digest_of
    from modelplane.sandbox.probes import to_wasm

    click.echo(digest_of(to_wasm(Path(tool).read_bytes())))


@sandbox.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--network", is_flag=True, help="Grant the host's network.")
@click.option("--ro", "ro_dirs", multiple=True, metavar="DIR", help="Grant a folder read-only.")
@click.option("--rw", "rw_dirs", multiple=True, metavar="DIR", help="Grant a folder read-write.")
@click.option("--env", "env", multiple=True, metavar="NAME=VALUE", help="Grant a variable.")
@click.option("--wall", type=float, default=30.0, show_default=True, help="Wall-clock seconds.")
def run(
    command: tuple[str, ...],
    network: bool,
    ro_dirs: tuple[str, ...],
    rw_dirs: tuple[str, ...],
    env: tuple[str, ...],
    wall: float,
) -> None:
    """Run COMMAND (after --) in the process sandbox; its stdin, output and status pass through."""
    from modelplane.sandbox import ProcessGrants, ProcessLimits, ProcessSandbox

    grants = ProcessGrants(
        network=network,
        ro_dirs=tuple(Path(d).resolve() for d in ro_dirs),
        rw_dirs=tuple(Path(d).resolve() for d in rw_dirs),
        env=_pairs(env, "--env"),
    )
    stdin = b"" if sys.stdin.isatty() else sys.stdin.buffer.read()
    result = ProcessSandbox().run(
        list(command), stdin=stdin, limits=ProcessLimits(wall_s=wall), grants=grants
    )
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    sys.exit(result.returncode)


@sandbox.command("probes")
@click.option("-o", "--output", type=click.Choice(["json"]), help="Print the results as JSON.")
def probes(output: str | None) -> None:
    """Run the escape probes against both sandboxes; exit 1 if any was not denied."""
    from modelplane.sandbox.probes import run_escape_probes

    results = run_escape_probes()
    if output == "json":
        click.echo(
            to_json([{"name": r.name, "denied": r.denied, "detail": r.detail} for r in results])
        )
    else:
        rows = [(r.name, "denied" if r.denied else "ESCAPED", r.detail[:80]) for r in results]
        print_table(console(), ("PROBE", "RESULT", "DETAIL"), rows)
    if not all(r.denied for r in results):
        sys.exit(1)
