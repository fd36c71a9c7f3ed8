"""``modelplane describe KIND NAME...``: one object for a person to read.

Metadata first, then spec and status as indented YAML, a table of conditions, and the Events
recorded about the object (oldest first), as ``kubectl describe`` does.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console

from modelplane.api import KindInfo, age, cell, lookup, parse_timestamp
from modelplane.api.errors import NotFound
from modelplane.cli._client import JSON, Client
from modelplane.cli._context import connection_options, settings
from modelplane.cli._kinds import select
from modelplane.cli._output import (
    console,
    echo_error,
    print_table,
    to_yaml,
)

#: where events about cluster-scoped objects are kept (see ``modelplane.control.record_event``)
_CLUSTER_EVENTS_NAMESPACE = "default"
_LABEL_WIDTH = 18


def _field(label: str, value: str) -> str:
    return f"{label + ':':<{_LABEL_WIDTH}}{value}"


def _pairs(values: dict[str, Any] | None) -> list[str]:
    if not values:
        return ["<none>"]
    return [f"{k}={v}" for k, v in values.items()]


def _metadata_lines(obj: JSON, info: KindInfo) -> list[str]:
    meta = obj.get("metadata") or {}
    lines = [_field("Name", str(meta.get("name", "")))]
    if info.namespaced:
        lines.append(_field("Namespace", str(meta.get("namespace", ""))))
    lines += [_field("Kind", info.kind), _field("API Version", info.api_version)]
    for label, values in (("Labels", meta.get("labels")), ("Annotations", meta.get("annotations"))):
        entries = _pairs(values)
        lines.append(_field(label, entries[0]))
        lines += [" " * _LABEL_WIDTH + e for e in entries[1:]]
    created = meta.get("creationTimestamp")
    lines.append(_field("Created", f"{created} ({age(created)} ago)" if created else "<unknown>"))
    if meta.get("deletionTimestamp"):
        lines.append(_field("Deleting since", str(meta["deletionTimestamp"])))
    if meta.get("finalizers"):
        lines.append(_field("Finalizers", ", ".join(meta["finalizers"])))
    lines += [
        _field("UID", str(meta.get("uid", ""))),
        _field("Resource Version", str(meta.get("resourceVersion", ""))),
        _field("Generation", str(meta.get("generation", ""))),
    ]
    return lines


def _section(title: str, value: Any) -> list[str]:
    if value in (None, {}, []):
        return [f"{title}:  <none>"]
    body = to_yaml(value).rstrip("\n").splitlines()
    return [f"{title}:", *("  " + line for line in body)]


def _secret_lines(obj: JSON) -> list[str]:
    """A Secret's type and the size of each value, never a value (as ``kubectl describe``)."""
    lines = [_field("Type", str(obj.get("type") or "Opaque")), "", "Data", "===="]
    data = obj.get("data") or {}
    if not data:
        lines.append("<none>")
    for key, value in data.items():
        try:
            size = f"{len(base64.b64decode(str(value), validate=True))} bytes"
        except (binascii.Error, ValueError):
            size = "<redacted>"  # a caller who may not read secrets gets no value to measure
        lines.append(f"{key}:  {size}")
    return lines


def _body_lines(obj: JSON) -> list[str]:
    """Everything outside the envelope: ``spec`` for most kinds, top-level fields for Events."""
    if obj.get("kind") == "Secret":
        return _secret_lines(obj)
    lines: list[str] = []
    rest = {
        k: v
        for k, v in obj.items()
        if k not in ("apiVersion", "kind", "metadata", "spec", "status")
    }
    if "spec" in obj or not rest:
        lines += _section("Spec", obj.get("spec"))
    for key, value in rest.items():
        lines += _section(key[:1].upper() + key[1:], value)
    status = dict(obj.get("status") or {})
    status.pop("conditions", None)
    lines += _section("Status", status)
    return lines


def _events_for(client: Client, info: KindInfo, obj: JSON) -> list[JSON]:
    """The Events about ``obj``: by uid, or by kind and name for events recorded before it had one."""
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace") or _CLUSTER_EVENTS_NAMESPACE)
    items, _ = client.list_all(lookup("Event"), namespace)
    uid, name = meta.get("uid"), meta.get("name")

    def about(event: JSON) -> bool:
        involved = event.get("involvedObject") or {}
        if uid and involved.get("uid"):
            return bool(involved.get("uid") == uid)
        return involved.get("kind") == info.kind and involved.get("name") == name

    events = [e for e in items if about(e)]

    def when(event: JSON) -> str:
        stamp = event.get("lastTimestamp") or event.get("firstTimestamp")
        parsed = parse_timestamp(stamp) or parse_timestamp(
            (event.get("metadata") or {}).get("creationTimestamp")
        )
        return parsed.isoformat() if parsed else ""

    return sorted(events, key=when)


def _describe_one(out: Console, client: Client, info: KindInfo, obj: JSON) -> None:
    for line in [*_metadata_lines(obj, info), *_body_lines(obj)]:
        click.echo(line)
    conditions = (obj.get("status") or {}).get("conditions") or []
    if conditions:
        click.echo("Conditions:")
        print_table(
            out,
            ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"],
            [
                [
                    cell(c.get("type")),
                    cell(c.get("status")),
                    cell(c.get("reason")),
                    age(c.get("lastTransitionTime")),
                    cell(c.get("message")),
                ]
                for c in conditions
                if isinstance(c, dict)
            ],
            indent=2,
        )
    else:
        click.echo("Conditions:  <none>")
    events = _events_for(client, info, obj)
    if events:
        click.echo("Events:")
        print_table(
            out,
            ["TYPE", "REASON", "AGE", "COUNT", "FROM", "MESSAGE"],
            [
                [
                    cell(e.get("type")),
                    cell(e.get("reason")),
                    age(e.get("lastTimestamp") or e.get("firstTimestamp")),
                    cell(e.get("count", 1)),
                    cell((e.get("source") or {}).get("component")),
                    cell(e.get("message")),
                ]
                for e in events
            ],
            indent=2,
        )
    else:
        click.echo("Events:  <none>")


@click.command()
@click.argument("args", nargs=-1, metavar="KIND NAME... | KIND/NAME...")
@connection_options()
@click.pass_context
def describe(ctx: click.Context, args: Sequence[str]) -> None:
    """Show objects in detail: metadata, spec, status, conditions and the events about them.

    Without a NAME, every object of the kind in the namespace is described.
    """
    selection = select(args)
    s = settings()
    out = console()
    failures = 0
    first = True
    with s.client() as client:
        for info, names in selection.targets:
            if not names:
                # no names: every object of the kind in the namespace, as kubectl does
                items, _ = client.list_all(info, s.namespace if info.namespaced else None)
                names = tuple(str(o["metadata"]["name"]) for o in items)
                if not names:
                    click.echo(f"No {info.plural} found.", err=True)
            for name in names:
                try:
                    obj = client.get(info, s.namespace, name)
                except NotFound as exc:
                    echo_error(str(exc))
                    failures += 1
                    continue
                if not first:
                    click.echo()
                first = False
                _describe_one(out, client, info, obj)
    if failures:
        ctx.exit(1)
