"""``modelplane apply -f PATH...``: create or update objects from manifests, by server-side apply.

Each object is one request: a server-side apply (``PATCH``, ``application/apply-patch+yaml``) as
the field manager ``modelplane``. The server creates the object or merges the manifest into it,
validates the result, and answers whether anything changed (``created``, ``configured`` or
``unchanged``). As in ``kubectl apply --server-side``, the manifest's fields belong to
``modelplane``: a field applied before and left out of the manifest now is removed; a field that
another manager (a controller, ``kubectl edit``) set to another value is a conflict naming it,
taken over with ``--force-conflicts``.

What the client still checks before sending, because it can say more than the server or must know
it to build the request: the YAML itself, ``apiVersion`` and ``kind`` (the URL is the kind's),
``metadata.name`` (the URL names it) and ``--namespace`` against the manifest's namespace. When the
name or namespace cannot be put in a URL, the object is validated here to report every problem
with its line. The server's errors that name fields are shown with the ``file:line:column`` of
each field in the manifest. ``--dry-run`` validates here without a server; ``--dry-run=server``
sends each object with ``?dryRun=All`` (checked as a write is, stored nowhere).

An Agent (or a Job) whose code sits beside its manifest is packed, and the bundle uploaded (when
the server lacks it) before the object is applied. A failure of one file or object is reported and the others
are still applied; the exit code is 1 if anything failed.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from modelplane.agents import BundleError, digest_of, pack
from modelplane.api import (
    SERVER_OWNED,
    KindInfo,
    Manifest,
    check_dns_label,
    check_dns_subdomain,
    kind_info,
    load_paths,
    lookup,
    validate,
)
from modelplane.api.errors import BadRequest, Cause, Conflict, ModelplaneError
from modelplane.cli._client import JSON, Client
from modelplane.cli._context import Settings, connection_options, settings
from modelplane.cli._kinds import qualified
from modelplane.cli._options import manifests_option
from modelplane.cli._output import console, echo_error

_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: one step of a field path: ``.name`` / ``name``, or ``[...]``
_FIELD_PART = re.compile(r"\.?([^.\[\]]+)|\[([^\]]*)\]")
#: server-side apply's list item by key: ``name="v1"``
_KEYED_ITEM = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=(".*")')
_MANAGER_CONFLICT = "FieldManagerConflict"
#: from this many objects on, a progress bar shows on a terminal
_PROGRESS_FROM = 10


@dataclass
class Outcome:
    """What became of one object (or of a file that could not be read)."""

    #: ``model.modelplane.dev/foo``, or the manifest's location when it names no usable object
    target: str
    #: ``created``, ``configured``, ``unchanged``, ``validated (dry run)``; None on failure
    action: str | None = None
    error: ModelplaneError | None = None
    #: ``file:line:column`` of the object in its manifest
    where: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Prepared:
    """An object ready to send: its kind known, server-owned fields removed; with the bundle its
    Agent names, when apply packed it."""

    info: KindInfo
    body: JSON
    bundle: bytes | None = None

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"].get("namespace") or "")

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])


# -- reading ------------------------------------------------------------------------------------


def _manifest_files(paths: Iterable[str]) -> list[str]:
    """Each path as the files ``load_paths`` would read from it, one by one, so that a bad file
    does not hide the others; a folder without manifests stays as it is (and fails there)."""
    files: list[str] = []
    for raw in paths:
        path = Path(raw)
        if raw != "-" and path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _MANIFEST_SUFFIXES
            )
            if found:
                files.extend(str(p) for p in found)
                continue
        files.append(raw)
    return files


def read_manifests(paths: Sequence[str]) -> tuple[list[Manifest], list[Outcome]]:
    """The objects in ``paths`` (files, folders recursively, ``-`` for stdin), and the files
    that could not be read."""
    manifests: list[Manifest] = []
    failures: list[Outcome] = []
    for file in _manifest_files(paths):
        try:
            manifests.extend(load_paths([file]))
        except ModelplaneError as exc:
            failures.append(Outcome(target="<stdin>" if file == "-" else file, error=exc))
    return manifests, failures


# -- preparing ----------------------------------------------------------------------------------


def _code_folder(obj: JSON, manifest: Manifest) -> Path | None:
    """The folder of an Agent or Job manifest that holds its code, or None.

    An Agent is "local" when the module its entrypoint names is a file or package beside its
    manifest and the manifest sets no ``spec.bundle``; a Job when its ``spec.template.command``
    names a file beside its manifest (``train.sh``, or ``python3 train.py``) and sets no
    ``spec.template.bundle`` (an explicit bundle wins).
    """
    if obj.get("kind") not in ("Agent", "Job") or manifest.source.startswith("<"):
        return None
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return None
    folder = Path(manifest.source).parent.absolute()
    if obj["kind"] == "Job":
        template = spec.get("template")
        if not isinstance(template, dict) or template.get("bundle"):
            return None
        command = template.get("command")
        if not isinstance(command, list) or not command:
            return None
        files = [c for c in command[:2] if isinstance(c, str) and c and not c.startswith("/")]
        return folder if any((folder / f).is_file() for f in files) else None
    if spec.get("bundle") or not isinstance(spec.get("entrypoint"), str):
        return None
    top = spec["entrypoint"].partition(":")[0].partition(".")[0]
    if top and ((folder / f"{top}.py").is_file() or (folder / top).is_dir()):
        return folder
    return None


def _bundle(obj: JSON, manifest: Manifest) -> bytes | None:
    """For a local Agent or Job: its folder packed as a bundle, its digest set in the spec
    (``spec.bundle``, ``spec.template.bundle``).

    The server never reads the client's folder: the code travels as content-addressed bytes, and
    an edit of the code gives a new digest, so a new generation that runs the new code.
    """
    folder = _code_folder(obj, manifest)
    if folder is None:
        return None
    try:
        data = pack(folder)
    except BundleError as exc:
        raise BadRequest(f"{manifest.where}: the {obj['kind']}'s folder: {exc.message}") from None
    if obj["kind"] == "Job":
        obj["spec"]["template"]["bundle"] = digest_of(data)
    else:
        obj["spec"]["bundle"] = digest_of(data)
    return data


def _located_kind(obj: JSON, manifest: Manifest) -> KindInfo:
    """The kind ``obj`` declares; Invalid with the line of ``kind`` or ``apiVersion`` if unknown."""
    try:
        return kind_info(str(obj.get("apiVersion")), str(obj.get("kind")))
    except ModelplaneError as exc:
        exc.causes = [
            Cause(c.field, c.message, c.reason, c.location or manifest.location((c.field,)))
            for c in exc.causes
        ]
        raise


def _addressable(value: Any, check: Callable[[str], str]) -> bool:
    if not isinstance(value, str):
        return False
    try:
        check(value)
    except ValueError:
        return False
    return True


def _prepare(manifest: Manifest, s: Settings, *, validate_here: bool = False) -> _Prepared:
    """The object as it will be sent: its kind known, its namespace set, server-owned fields
    and status removed, its bundle packed. ``validate_here``: validated and defaulted here too
    (a dry run without a server)."""
    obj = copy.deepcopy(manifest.obj)
    bundle = _bundle(obj, manifest)
    info = _located_kind(obj, manifest)
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    if info.namespaced and metadata.get("namespace") is None:
        metadata["namespace"] = s.namespace
    if (
        validate_here
        or not isinstance(obj.get("metadata"), dict)
        or not _addressable(metadata.get("name"), check_dns_subdomain)
        or (info.namespaced and not _addressable(metadata.get("namespace"), check_dns_label))
    ):
        # the URL cannot name it (or no server is asked): every problem, each with its line
        obj = validate(obj, manifest=manifest, default_namespace=s.namespace)
        metadata = obj["metadata"]
    obj["metadata"] = metadata
    # the server's, whatever a manifest (a dumped object) says; managedFields too (apply's own)
    for key in (*SERVER_OWNED, "managedFields"):
        metadata.pop(key, None)
    # desired state only: status belongs to the controllers
    obj.pop("status", None)
    namespace = metadata.get("namespace")
    if info.namespaced and s.namespace_given and namespace != s.namespace:
        raise BadRequest(
            f"the namespace of the object ({namespace}) does not match --namespace"
            f" ({s.namespace}); pass --namespace={namespace} or remove one of them"
        )
    return _Prepared(info, obj, bundle)


# -- writing ------------------------------------------------------------------------------------


def _field_path(field: str, obj: Any) -> list[str | int]:
    """A field as the server names it, as a path into ``obj`` (the manifest's object).

    Both spellings: validation's ``spec.versions[0].digest`` and ``metadata.labels[a/b]``, and
    server-side apply's ``.spec.versions[name="v1"].source`` (the item with that name).
    """
    path: list[str | int] = []
    current = obj
    for key, bracket in _FIELD_PART.findall(field):
        part: str | int
        if key:
            part = key
        elif bracket.isdigit():
            part = int(bracket)
        elif (keyed := _KEYED_ITEM.fullmatch(bracket)) and isinstance(current, list):
            wanted = json.loads(keyed.group(2))
            found = [
                i
                for i, item in enumerate(current)
                if isinstance(item, dict) and item.get(keyed.group(1)) == wanted
            ]
            if not found:
                break
            part = found[0]
        else:
            part = bracket
        path.append(part)
        if isinstance(current, dict) and isinstance(part, str):
            current = current.get(part)
        elif isinstance(current, list) and isinstance(part, int) and part < len(current):
            current = current[part]
        else:
            current = None
    return path


def _located(error: ModelplaneError, manifest: Manifest) -> ModelplaneError:
    """``error`` with each cause the server named a field of placed at its line in the manifest."""
    error.causes = [
        c
        if c.location or not c.field or c.field.startswith("<")
        else Cause(
            c.field,
            c.message,
            c.reason,
            manifest.location(_field_path(c.field, manifest.obj)),
        )
        for c in error.causes
    ]
    if isinstance(error, Conflict) and any(c.reason == _MANAGER_CONFLICT for c in error.causes):
        count = len(error.causes)
        error.message = (
            f"apply failed with {count} conflict{'s' if count != 1 else ''}: other field managers"
            " set these fields to other values; apply again with --force-conflicts to take them"
            " over, leave them out of the manifest, or apply the values they have"
        )
    return error


def _apply_one(client: Client, item: _Prepared, manifest: Manifest, options: _Options) -> str:
    """Apply one object (one request, after its bundle's upload); returns ``created``,
    ``configured`` or ``unchanged``, with `` (server dry run)`` on a dry run."""
    if item.bundle is not None and not options.server_dry_run:
        spec = item.body["spec"]
        digest = str(spec.get("bundle") or spec["template"]["bundle"])
        if not client.has_bundle(digest):
            client.put_bundle(digest, item.bundle)
    try:
        applied = client.apply(
            item.info,
            item.namespace,
            item.name,
            item.body,
            force=options.force_conflicts,
            dry_run=options.server_dry_run,
        )
    except ModelplaneError as exc:
        raise _located(exc, manifest) from None
    action = "created" if applied.created else "configured" if applied.changed else "unchanged"
    return f"{action} (server dry run)" if options.server_dry_run else action


def _target(manifest: Manifest) -> str:
    """How to name an object in messages before it is validated (its kind may be unknown)."""
    meta = manifest.obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        return manifest.where
    try:
        return qualified(lookup(str(manifest.obj.get("kind"))), name)
    except ModelplaneError:
        return f"{manifest.obj.get('kind')} {name!r}"


@dataclass(frozen=True)
class _Options:
    """How ``apply`` writes (``--force-conflicts``, ``--dry-run=server``)."""

    force_conflicts: bool = False
    server_dry_run: bool = False


def apply_manifests(
    client: Client | None,
    manifests: Sequence[Manifest],
    s: Settings,
    *,
    report: Callable[[Outcome], None],
    force_conflicts: bool = False,
    server_dry_run: bool = False,
) -> list[Outcome]:
    """Apply each object (``client`` None: validate it here, a dry run without a server).

    ``report`` is called with each :class:`Outcome` as soon as it is known.
    """
    options = _Options(force_conflicts=force_conflicts, server_dry_run=server_dry_run)
    outcomes: list[Outcome] = []
    for manifest in manifests:
        outcome = Outcome(target=_target(manifest), where=manifest.where)
        try:
            item = _prepare(manifest, s, validate_here=client is None)
            outcome.target = qualified(item.info, item.name)
            outcome.action = (
                "validated (dry run)"
                if client is None
                else _apply_one(client, item, manifest, options)
            )
        except ModelplaneError as exc:
            outcome.error = exc
        outcomes.append(outcome)
        report(outcome)
    return outcomes


def _outcome_line(outcome: Outcome) -> str:
    """The line to print for ``outcome``: on stdout for a success, else (``error: ...``) stderr."""
    if outcome.error is None:
        return f"{outcome.target} {outcome.action}"
    message = str(outcome.error)
    if message.startswith(outcome.target):
        return message  # a file's error names the file (and line) already
    where = f" ({outcome.where})" if outcome.where and outcome.where not in outcome.target else ""
    return f"{outcome.target}{where}: {message}"


def _print_outcome(outcome: Outcome) -> None:
    if outcome.error is None:
        click.echo(_outcome_line(outcome))
    else:
        echo_error(_outcome_line(outcome))


def run_apply(
    client: Client | None,
    paths: Sequence[str],
    s: Settings,
    *,
    force_conflicts: bool = False,
    server_dry_run: bool = False,
) -> bool:
    """Read ``paths`` and apply every object (``client=None``: validate only), printing one line
    per object; True when everything succeeded. Shared by ``apply`` and ``up -f``."""
    write = {"force_conflicts": force_conflicts, "server_dry_run": server_dry_run}
    manifests, failures = read_manifests(paths)
    for failure in failures:
        _print_outcome(failure)
    show_progress = len(manifests) >= _PROGRESS_FROM and sys.stdout.isatty() and sys.stderr.isatty()
    if not show_progress:
        outcomes = apply_manifests(client, manifests, s, report=_print_outcome, **write)
    else:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console(stderr=True),
            transient=True,
        ) as progress:
            task = progress.add_task("applying", total=len(manifests))

            def report(outcome: Outcome) -> None:
                # above the bar; both streams are this terminal (checked above)
                line = _outcome_line(outcome)
                if outcome.error is not None:
                    line = f"[bold red]error:[/] {escape(line)}"
                else:
                    line = escape(line)
                progress.console.print(line, highlight=False, soft_wrap=True)
                progress.advance(task)

            outcomes = apply_manifests(client, manifests, s, report=report, **write)
    failed_objects = sum(not o.ok for o in outcomes)
    if (failures or failed_objects) and len(failures) + len(outcomes) > 1:
        parts = []
        if failures:
            parts.append(f"{len(failures)} file(s) could not be read")
        if failed_objects:
            verb = "are invalid" if client is None else "failed"
            parts.append(f"{failed_objects} of {len(outcomes)} object(s) {verb}")
        echo_error("; ".join(parts) + " (see above)")
    return not failures and not failed_objects


@click.command()
@manifests_option(
    "Manifest file, folder (read recursively) or - for stdin; repeatable.", required=True
)
@click.option(
    "--dry-run",
    type=click.Choice(["none", "client", "server"]),
    default="none",
    flag_value="client",
    is_flag=False,
    help="`--dry-run` (client): only validate the manifests here, send nothing."
    " `--dry-run=server`: the server checks each object as a write and stores nothing.",
)
@click.option(
    "--force-conflicts",
    is_flag=True,
    help="Take over fields that another field manager set to other values (else a conflict).",
)
@connection_options()
@click.pass_context
def apply(ctx: click.Context, paths: tuple[str, ...], dry_run: str, force_conflicts: bool) -> None:
    """Create or update objects from manifests (YAML or JSON, many per file).

    Each object is one server-side apply as the field manager `modelplane`; prints
    `KIND.GROUP/NAME created|configured|unchanged` per object. A field left out of the manifest
    that an earlier apply set is removed; a field another manager set is a conflict unless
    `--force-conflicts`. An Agent whose code sits beside its manifest (the entrypoint's module is
    there) is uploaded as a bundle of that folder first, and the Agent names it (`spec.bundle`);
    an explicit `spec.bundle` wins.
    """
    s = settings()
    if dry_run == "client":
        ok = run_apply(None, paths, s)
    else:
        with s.client() as client:
            ok = run_apply(
                client,
                paths,
                s,
                force_conflicts=force_conflicts,
                server_dry_run=dry_run == "server",
            )
    if not ok:
        ctx.exit(1)
