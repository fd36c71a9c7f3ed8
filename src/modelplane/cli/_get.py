"""``modelplane get KIND [NAME...]``: list or show objects, once or as they change (``-w``).

Tables have NAME (NAMESPACE first with ``-A``), the kind's own columns (``KindInfo.columns``),
READY when the kind or its objects have a Ready condition, and AGE. ``-o json|yaml`` prints the
object for one named object and a ``List`` otherwise; ``-o name`` prints ``kind.group/name``.
With ``--watch`` the current objects are printed, then one row per change, until Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import click

from modelplane.api import READY_PATH, KindInfo, age, cell, resolve
from modelplane.api.errors import Expired, ModelplaneError, NotFound
from modelplane.cli._client import JSON, Client, later_version
from modelplane.cli._context import connection_options, settings
from modelplane.cli._kinds import qualified, select
from modelplane.cli._options import count_option
from modelplane.cli._output import (
    OUTPUT_CHOICES,
    RowPrinter,
    as_list,
    condition,
    console,
    echo_error,
    print_table,
    to_json,
    to_yaml,
)


@dataclass(frozen=True)
class Columns:
    """The columns of one kind's table, and how each cell is computed from an object."""

    info: KindInfo
    all_namespaces: bool
    #: show ``kind.group/name`` in NAME (a table among tables of several kinds)
    qualify: bool
    #: add READY from the Ready condition (the kind's own columns have no READY)
    add_ready: bool
    wide: bool

    @staticmethod
    def for_kind(
        info: KindInfo, items: Sequence[JSON], *, all_namespaces: bool, qualify: bool, wide: bool
    ) -> Columns:
        own_ready = any(header == "READY" for header, _ in info.columns)
        add_ready = not own_ready and any(condition(o, "Ready") for o in items)
        return Columns(info, all_namespaces and info.namespaced, qualify, add_ready, wide)

    @property
    def has_ready(self) -> bool:
        return self.add_ready or any(header == "READY" for header, _ in self.info.columns)

    def headers(self) -> list[str]:
        out = ["NAMESPACE"] if self.all_namespaces else []
        out += ["NAME", *(header for header, _ in self.info.columns)]
        if self.add_ready:
            out.append("READY")
        out.append("AGE")
        if self.wide:
            if self.has_ready:
                out += ["REASON", "MESSAGE"]
            out.append("LABELS")
        return out

    def row(self, obj: JSON) -> list[str]:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name", ""))
        out = [str(meta.get("namespace") or "")] if self.all_namespaces else []
        out.append(qualified(self.info, name) if self.qualify else name)
        out += [cell(resolve(obj, path)) for _, path in self.info.columns]
        if self.add_ready:
            out.append(cell(resolve(obj, READY_PATH)))
        out.append(age(meta.get("creationTimestamp")))
        if self.wide:
            if self.has_ready:
                ready = condition(obj, "Ready") or {}
                out += [cell(ready.get("reason")), cell(ready.get("message"))]
            labels = meta.get("labels") or {}
            out.append(",".join(f"{k}={v}" for k, v in labels.items()) or "<none>")
        return out


@dataclass(frozen=True)
class _Query:
    """What one kind's objects are read with: the kind, the namespace (None: all) and selectors."""

    client: Client
    info: KindInfo
    namespace: str | None
    selector: str | None
    field_selector: str | None
    chunk_size: int

    def list_all(self) -> tuple[list[JSON], str]:
        """Every selected object, and the list's resourceVersion to watch from."""
        return self.client.list_all(
            self.info,
            self.namespace,
            label_selector=self.selector,
            field_selector=self.field_selector,
            chunk_size=self.chunk_size,
        )


def _fetch(query: _Query, names: Sequence[str]) -> tuple[list[JSON], list[ModelplaneError]]:
    """The named objects (and an error per missing one), or the whole (selected) list."""
    if not names:
        items, _ = query.list_all()
        return items, []
    found: list[JSON] = []
    missing: list[ModelplaneError] = []
    for name in names:
        try:
            found.append(query.client.get(query.info, query.namespace or "", name))
        except NotFound as exc:
            missing.append(exc)
    return found, missing


def _print_objects(
    fetched: list[tuple[KindInfo, list[JSON]]],
    output: str,
    *,
    single: bool,
    named: bool,
    all_namespaces: bool,
    namespace: str,
) -> None:
    out = console()
    items = [obj for _, objs in fetched for obj in objs]
    if output in ("json", "yaml"):
        if single and not items:
            return  # the one named object is missing: the error says so
        document = items[0] if single else as_list(items)
        click.echo(to_json(document) if output == "json" else to_yaml(document).rstrip("\n"))
        return
    if output == "name":
        for info, objs in fetched:
            for obj in objs:
                click.echo(qualified(info, str(obj["metadata"]["name"])))
        return
    if not items:
        if named:
            return  # the named objects are missing: the errors say so
        if len(fetched) == 1 and not fetched[0][0].namespaced:
            click.echo("No resources found.", err=True)
        else:
            scope = "" if all_namespaces else f" in {namespace} namespace"
            click.echo(f"No resources found{scope}.", err=True)
        return
    several = len(fetched) > 1
    first = True
    for info, objs in fetched:
        if not objs:
            continue
        if not first:
            click.echo()
        first = False
        columns = Columns.for_kind(
            info, objs, all_namespaces=all_namespaces, qualify=several, wide=output == "wide"
        )
        print_table(out, columns.headers(), [columns.row(o) for o in objs])


def _emit_document(obj: JSON, output: str) -> None:
    if output == "json":
        click.echo(to_json(obj))
    else:
        click.echo("---\n" + to_yaml(obj).rstrip("\n"))


def _watch(query: _Query, names: Sequence[str], *, output: str, watch_only: bool) -> None:
    """Print the current objects (unless ``watch_only``), then each change, until Ctrl-C."""
    client, info, namespace = query.client, query.info, query.namespace
    wanted = set(names)

    def keep(obj: JSON) -> bool:
        return not wanted or (obj.get("metadata") or {}).get("name") in wanted

    items, version = query.list_all()
    items = [o for o in items if keep(o)]
    columns = Columns.for_kind(
        info, items, all_namespaces=namespace is None, qualify=False, wide=output == "wide"
    )
    printer = RowPrinter(console(), columns.headers())
    header_done = False

    def emit(obj: JSON) -> None:
        nonlocal header_done
        if output in ("json", "yaml"):
            _emit_document(obj, output)
        elif output == "name":
            click.echo(qualified(info, str(obj["metadata"]["name"])))
        else:
            if not header_done:
                printer.header()
                header_done = True
            printer.row(columns.row(obj))

    rows = [columns.row(o) for o in items]
    printer.widen(rows)
    if not watch_only:
        if output in ("table", "wide"):
            printer.header()
            header_done = True
        for obj in items:
            emit(obj)

    while True:
        try:
            for event in client.watch(
                info,
                namespace,
                resource_version=version,
                label_selector=query.selector,
                field_selector=query.field_selector,
            ):
                obj = event.get("object") or {}
                version = later_version(version, (obj.get("metadata") or {}).get("resourceVersion"))
                if event.get("type") == "BOOKMARK" or not keep(obj):
                    continue
                emit(obj)
        except Expired:
            # fell behind the server's history: start again from a fresh list
            items, version = query.list_all()
            for obj in items:
                if keep(obj):
                    emit(obj)
        # a stream the server ended (a timeout, a restart in progress) resumes where it stopped


@click.command()
@click.argument("args", nargs=-1, metavar="KIND[,KIND...] [NAME...] | KIND/NAME...")
@click.option(
    "-o",
    "--output",
    type=click.Choice(OUTPUT_CHOICES),
    help="json, yaml, name, or wide (a table with more columns).",
)
@click.option(
    "-l", "--selector", metavar="SELECTOR", help="Label selector, e.g. `app=chat,tier!=gpu`."
)
@click.option(
    "--field-selector",
    metavar="SELECTOR",
    help="Field selector on metadata.name / metadata.namespace, e.g. `metadata.name=foo`.",
)
@click.option("-A", "--all-namespaces", is_flag=True, help="List the objects of every namespace.")
@click.option("-w", "--watch", is_flag=True, help="After listing, print each change until Ctrl-C.")
@click.option("--watch-only", is_flag=True, help="Print only changes, not the current objects.")
@count_option(
    "--chunk-size", 500, "Fetch large lists this many objects at a time (0: all at once)."
)
@connection_options()
@click.pass_context
def get(
    ctx: click.Context,
    args: tuple[str, ...],
    output: str | None,
    selector: str | None,
    field_selector: str | None,
    all_namespaces: bool,
    watch: bool,
    watch_only: bool,
    chunk_size: int,
) -> None:
    """Show objects: `get models`, `get model NAME -o yaml`, `get models,endpoints -A`, `get ep -w`."""
    selection = select(args)
    output = output or "table"
    named = any(names for _, names in selection.targets)
    if named and all_namespaces:
        raise click.UsageError(
            "an object cannot be fetched by name across all namespaces; use -n NAMESPACE"
        )
    if named and (selector or field_selector) and not (watch or watch_only):
        raise click.UsageError("name objects or select them with -l/--field-selector, not both")
    s = settings()
    namespace = None if all_namespaces else s.namespace
    with s.client() as client:

        def query(info: KindInfo) -> _Query:
            scope = namespace if info.namespaced else None
            return _Query(client, info, scope, selector, field_selector, chunk_size)

        if watch or watch_only:
            if len(selection.targets) != 1:
                raise click.UsageError("--watch follows one kind at a time")
            info, names = selection.targets[0]
            try:
                _watch(query(info), names, output=output, watch_only=watch_only)
            except KeyboardInterrupt:
                return  # Ctrl-C is how a watch ends
            return
        fetched: list[tuple[KindInfo, list[JSON]]] = []
        missing: list[ModelplaneError] = []
        for info, names in selection.targets:
            items, lost = _fetch(query(info), names)
            fetched.append((info, items))
            missing.extend(lost)
    single = len(selection.targets) == 1 and len(selection.targets[0][1]) == 1
    _print_objects(
        fetched,
        output,
        single=single,
        named=named,
        all_namespaces=all_namespaces,
        namespace=s.namespace,
    )
    for error in missing:
        echo_error(str(error))
    if missing:
        ctx.exit(1)
