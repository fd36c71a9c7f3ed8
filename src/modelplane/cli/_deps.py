"""``modelplane audit deps`` and ``modelplane audit snapshot``: the dependency guard, offline.

``deps`` checks every dependency that requirements files, ``pyproject.toml``, ``package.json``
or stdin (``-``) name, against an index snapshot (and optionally the live index, an OSV database
and a license allow-list), and prints a verdict per dependency: a table, ``-o json`` or
``-o sarif``. Exit code 0 when nothing is blocked, 1 when something is (or warned, with
``--fail-on warn``), 2 when the command could not check (a usage error, an unreadable file).
``snapshot`` builds the snapshot file from a list of names (or asks the index for them).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from modelplane import __version__
from modelplane.cli._output import console, echo_warning, print_table, to_json

if TYPE_CHECKING:
    from modelplane.supplychain import Dependency, Finding, IndexSnapshot, Lookup, Package

#: the file names ``deps`` looks for beside the first dependency file, then in the current folder
SNAPSHOT_NAMES = ("index-snapshot.json", "index-snapshot.json.gz")
_HEADERS = ("PACKAGE", "VERSION", "VERDICT", "WHERE", "REASONS")


@click.command("deps")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--snapshot",
    type=click.Path(dir_okay=False),
    help="The index snapshot (modelplane audit snapshot). Default: $MODELPLANE_INDEX_SNAPSHOT,"
    " else index-snapshot.json beside the first file, else in the current folder.",
)
@click.option("--online", is_flag=True, help="Ask the index pip is configured with (cached).")
@click.option("--osv", type=click.Path(dir_okay=False), help="An OSV database zip (all.zip).")
@click.option(
    "--allow-license",
    "licenses",
    multiple=True,
    metavar="SPDX",
    help="An allowed SPDX license identifier (repeat it). Without one, licenses are not checked.",
)
@click.option(
    "--min-age-days",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Warn about a package first released fewer days ago than this.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["block", "warn"]),
    default="block",
    show_default=True,
    help="The verdict that makes the exit code 1.",
)
@click.option("--npm", is_flag=True, help="Names on stdin are npm packages (default PyPI).")
@click.option("-o", "--output", type=click.Choice(["json", "sarif"]), help="json or sarif.")
@click.pass_context
def deps(
    ctx: click.Context,
    files: tuple[str, ...],
    snapshot: str | None,
    online: bool,
    osv: str | None,
    licenses: tuple[str, ...],
    min_age_days: int,
    fail_on: str,
    npm: bool,
    output: str | None,
) -> None:
    """Check the dependencies FILES name (requirements files, pyproject.toml, package.json, or
    - for names on stdin): does each exist, imitate a popular name, is it new, vulnerable, or
    under a license not allowed. Verdicts allow, warn or block, each with its reasons.

    Exit code 0 when nothing is blocked, 1 when something is (or is warned about, with
    --fail-on warn), 2 when the dependencies could not be checked."""
    from modelplane import supplychain as sc

    if not files:
        raise click.UsageError("name at least one file (or - for names on stdin)")
    dependencies = _read_all(files, npm)
    index = _snapshot(snapshot, files, online)
    try:
        guard = sc.DependencyGuard(
            index,
            osv=sc.OsvDatabase.load(Path(osv)) if osv else None,
            allow_licenses=frozenset(x.lower() for x in licenses) if licenses else None,
            min_age_days=min_age_days,
            lookup=_online_lookup() if online else None,
        )
        findings = [guard.check(d) for d in dependencies]
    except (sc.OsvError, sc.PackageIndexError) as exc:
        raise click.UsageError(str(exc)) from None
    _print(findings, index, output)
    worst = sc.worst(findings)
    if worst == sc.BLOCK or (fail_on == "warn" and worst == sc.WARN):
        ctx.exit(1)


def _read_all(files: tuple[str, ...], npm: bool) -> list[Dependency]:
    from modelplane import supplychain as sc

    found: list[Dependency] = []
    for name in files:
        try:
            if name == "-":
                found += sc.read_names(sys.stdin, ecosystem="npm" if npm else "PyPI")
            else:
                found += sc.read(Path(name))
        except sc.ManifestError as exc:
            raise click.UsageError(str(exc)) from None
    return found


def _snapshot(given: str | None, files: tuple[str, ...], online: bool) -> IndexSnapshot:
    from modelplane import supplychain as sc

    path = given or os.environ.get("MODELPLANE_INDEX_SNAPSHOT") or _beside(files)
    if path is None:
        if online:
            echo_warning("no index snapshot: typosquats are not looked for (no download ranks)")
            return sc.build([], ecosystem="PyPI", source="none", built=dt.date.today())
        raise click.UsageError(
            "no index snapshot: give --snapshot PATH (build one with `modelplane audit snapshot`),"
            " put index-snapshot.json beside the file, or use --online"
        )
    try:
        return sc.IndexSnapshot.load(Path(path))
    except sc.SnapshotError as exc:
        raise click.UsageError(str(exc)) from None


def _beside(files: tuple[str, ...]) -> str | None:
    folders = [*[Path(f).parent for f in files if f != "-"][:1], Path(".")]
    for folder in folders:
        for name in SNAPSHOT_NAMES:
            if (folder / name).is_file():
                return str(folder / name)
    return None


def _online_lookup() -> Lookup:
    from modelplane import supplychain as sc

    home = Path(os.environ.get("MODELPLANE_HOME", ".modelplane"))
    return sc.OnlineIndex(sc.configured_index_url(), home / "cache" / "simple-index")


def _print(findings: list[Finding], index: IndexSnapshot, output: str | None) -> None:
    from modelplane import supplychain as sc

    if output == "json":
        click.echo(to_json(sc.to_document(findings, snapshot_built=index.built)))
        return
    if output == "sarif":
        click.echo(to_json(sc.to_sarif(findings, version=__version__)))
        return
    rows = [
        [
            f.dependency.name,
            f.dependency.specifier or "*",
            f.verdict,
            f"{f.dependency.file}:{f.dependency.line}",
            "; ".join(r.message for r in f.reasons) or "-",
        ]
        for f in findings
    ]
    if rows:
        print_table(console(), _HEADERS, rows)
    counts = {v: sum(f.verdict == v for f in findings) for v in (sc.ALLOW, sc.WARN, sc.BLOCK)}
    click.echo(
        f"{len(findings)} dependencies: {counts[sc.ALLOW]} allowed, {counts[sc.WARN]} warned,"
        f" {counts[sc.BLOCK]} blocked (index snapshot built {index.built or 'unknown'})"
    )


@click.command("snapshot")
@click.argument("names", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(dir_okay=False),
    required=True,
    help="The snapshot file to write (.json, or .json.gz compressed).",
)
@click.option(
    "--from-index",
    is_flag=True,
    help="Ask the index pip is configured with whether each name exists and when it"
    " was first uploaded (for a short list).",
)
@click.option(
    "--built",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The date the list was taken (YYYY-MM-DD), shown in every finding. Default: today.",
)
@click.option("--npm", is_flag=True, help="The names are npm packages (default PyPI).")
def snapshot(names: str, out: str, from_index: bool, built: dt.datetime | None, npm: bool) -> None:
    """Build an index snapshot from NAMES, a TSV or CSV of name, first release (YYYY-MM or
    YYYY-MM-DD) and download rank (1 = most downloaded), optionally an SPDX license; a header
    row may name the columns instead."""
    from modelplane import supplychain as sc

    try:
        packages = sc.read_name_list(Path(names), "npm" if npm else "PyPI")
        if from_index:
            packages = _ask_index(packages)
    except (sc.SnapshotError, sc.PackageIndexError) as exc:
        raise click.UsageError(str(exc)) from None
    source = "the package index" if from_index else Path(names).name
    index = sc.build(
        packages,
        ecosystem="npm" if npm else "PyPI",
        source=source,
        built=built.date() if built else dt.date.today(),
    )
    index.dump(Path(out))
    ranked = sum(1 for r in index.ranks if r)
    click.echo(f"wrote {out}: {len(index)} names, {ranked} ranked, built {index.built}")


def _ask_index(packages: list[Package]) -> list[Package]:
    from modelplane import supplychain as sc

    lookup = _online_lookup()
    found = []
    for pkg in packages:
        live = lookup(pkg.name)
        if live is None:
            echo_warning(f"{pkg.name} does not exist in the package index; left out")
            continue
        found.append(sc.Package(pkg.name, pkg.released or live.released, pkg.rank, pkg.license))
    return found
