"""``modelplane apply -f PATH...``: create or update objects from manifests.

Each object is validated here first (so a bad field is reported with ``file:line:column`` before
anything is sent), then created; if it exists, it is replaced with the fetched
``resourceVersion`` (re-read and retried on a Conflict), unless its spec, labels and annotations
already match, in which case nothing is written. A failure of one file or object is reported and
the others are still applied; the exit code is 1 if anything failed.

Labels and annotations in a manifest replace those stored (there is no three-way merge as in
``kubectl apply``); finalizers that controllers added are kept unless the manifest names some.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from modelplane.agents._bundles import BundleError, digest_of, pack
from modelplane.api import SERVER_OWNED, KindInfo, Manifest, load_paths, lookup, validate
from modelplane.api.errors import AlreadyExists, BadRequest, Conflict, ModelplaneError
from modelplane.cli._client import JSON, Client
from modelplane.cli._context import Settings, connection_options, settings
from modelplane.cli._kinds import qualified
from modelplane.cli._output import console, echo_error

_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_CONFLICT_ATTEMPTS = 5
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
    """An object ready to send: validated, defaulted, server-owned fields removed; with the
    bundle its Agent names, when apply packed it."""

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
    """The folder of an Agent manifest that holds the Agent's code, or None.

    An Agent is "local" when the module its entrypoint names is a file or package beside its
    manifest and the manifest sets no ``spec.bundle`` (an explicit bundle wins).
    """
    if obj.get("kind") != "Agent" or manifest.source.startswith("<"):
        return None
    spec = obj.get("spec")
    if (
        not isinstance(spec, dict)
        or spec.get("bundle")
        or not isinstance(spec.get("entrypoint"), str)
    ):
        return None
    folder = Path(manifest.source).parent.absolute()
    top = spec["entrypoint"].partition(":")[0].partition(".")[0]
    if top and ((folder / f"{top}.py").is_file() or (folder / top).is_dir()):
        return folder
    return None


def _bundle(obj: JSON, manifest: Manifest) -> bytes | None:
    """For a local Agent: its folder packed as a bundle, with ``spec.bundle`` set to its digest.

    The server never reads the client's folder: the code travels as content-addressed bytes, and
    an edit of the code gives a new digest, so a new generation that runs the new code.
    """
    folder = _code_folder(obj, manifest)
    if folder is None:
        return None
    try:
        data = pack(folder)
    except BundleError as exc:
        raise BadRequest(f"{manifest.where}: the Agent's folder: {exc.message}") from None
    obj["spec"]["bundle"] = digest_of(data)
    return data


def _prepare(manifest: Manifest, s: Settings) -> _Prepared:
    """The object as it will be sent: validated, defaulted, its bundle packed; or Invalid."""
    obj = copy.deepcopy(manifest.obj)
    bundle = _bundle(obj, manifest)
    body = validate(obj, manifest=manifest, default_namespace=s.namespace)
    info = lookup(str(body["kind"]))
    metadata = body["metadata"]
    for key in SERVER_OWNED:  # the server's, whatever a manifest (a dumped object) says
        metadata.pop(key, None)
    # desired state only: status belongs to the controllers
    body.pop("status", None)
    namespace = metadata.get("namespace")
    if info.namespaced and s.namespace_given and namespace != s.namespace:
        raise BadRequest(
            f"the namespace of the object ({namespace}) does not match --namespace"
            f" ({s.namespace}); pass --namespace={namespace} or remove one of them"
        )
    return _Prepared(info, body, bundle)


# -- writing ------------------------------------------------------------------------------------


def _desired_state(obj: JSON) -> tuple[Any, Any, Any]:
    """What ``apply`` manages: everything outside metadata and status, labels, annotations."""
    meta = obj.get("metadata") or {}
    content = {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion")}
    return content, meta.get("labels") or {}, meta.get("annotations") or {}


def _apply_one(client: Client, item: _Prepared) -> str:
    """Create or update one object; returns ``created``, ``configured`` or ``unchanged``."""
    if item.bundle is not None:
        digest = str(item.body["spec"]["bundle"])
        if not client.has_bundle(digest):
            client.put_bundle(digest, item.bundle)
    try:
        client.create(item.info, item.namespace, item.body)
        return "created"
    except AlreadyExists:
        pass
    for attempt in range(_CONFLICT_ATTEMPTS):
        current = client.get(item.info, item.namespace, item.name)
        if _desired_state(current) == _desired_state(item.body):
            return "unchanged"
        body = copy.deepcopy(item.body)
        meta = body["metadata"]
        current_meta = current.get("metadata") or {}
        meta["resourceVersion"] = current_meta.get("resourceVersion")
        if "finalizers" not in meta and current_meta.get("finalizers"):
            meta["finalizers"] = current_meta["finalizers"]
        try:
            client.replace(item.info, item.namespace, item.name, body)
            return "configured"
        except Conflict:
            if attempt == _CONFLICT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


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


def apply_manifests(
    client: Client | None,
    manifests: Sequence[Manifest],
    s: Settings,
    *,
    report: Callable[[Outcome], None],
) -> list[Outcome]:
    """Validate, then (unless ``client`` is None: a dry run) create or update each object.

    ``report`` is called with each :class:`Outcome` as soon as it is known.
    """
    outcomes: list[Outcome] = []
    for manifest in manifests:
        outcome = Outcome(target=_target(manifest), where=manifest.where)
        try:
            item = _prepare(manifest, s)
            outcome.target = qualified(item.info, item.name)
            outcome.action = "validated (dry run)" if client is None else _apply_one(client, item)
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


def run_apply(client: Client | None, paths: Sequence[str], s: Settings) -> bool:
    """Read ``paths`` and apply every object (``client=None``: validate only), printing one line
    per object; True when everything succeeded. Shared by ``apply`` and ``up -f``."""
    manifests, failures = read_manifests(paths)
    for failure in failures:
        _print_outcome(failure)
    show_progress = len(manifests) >= _PROGRESS_FROM and sys.stdout.isatty() and sys.stderr.isatty()
    if not show_progress:
        outcomes = apply_manifests(client, manifests, s, report=_print_outcome)
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

            outcomes = apply_manifests(client, manifests, s, report=report)
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
@click.option(
    "-f",
    "--filename",
    "paths",
    multiple=True,
    required=True,
    metavar="PATH",
    help="Manifest file, folder (read recursively) or - for stdin; repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Only validate the manifests; send nothing.")
@connection_options()
@click.pass_context
def apply(ctx: click.Context, paths: tuple[str, ...], dry_run: bool) -> None:
    """Create or update objects from manifests (YAML or JSON, many per file).

    Prints `KIND.GROUP/NAME created|configured|unchanged` per object. An Agent whose code sits
    beside its manifest (the entrypoint's module is there) is uploaded as a bundle of that folder
    first, and the Agent names it (`spec.bundle`); an explicit `spec.bundle` wins.
    """
    s = settings()
    if dry_run:
        ok = run_apply(None, paths, s)
    else:
        with s.client() as client:
            ok = run_apply(client, paths, s)
    if not ok:
        ctx.exit(1)
