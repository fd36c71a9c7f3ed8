"""How objects are shown: kubectl-style tables, ``-o json|yaml|name|wide``, ages, errors.

Tables are rich tables without borders; on a terminal the header is bold, elsewhere (a pipe, a
file) the output is plain text with no colour codes and no trailing blanks, so it can be read by
``grep``, ``awk`` and tests alike.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import IO, Any

import click
import orjson
import yaml
from rich.console import Console
from rich.padding import Padding
from rich.table import Table

JSON = dict[str, Any]

#: the values of ``-o`` (a table when it is not given)
OUTPUT_CHOICES = ("wide", "json", "yaml", "name")

#: between two columns, as kubectl
_GAP = 3


def console(*, stderr: bool = False) -> Console:
    """A rich console on stdout (or stderr): colours only when it is a terminal."""
    file: IO[str] = sys.stderr if stderr else sys.stdout
    terminal = file.isatty()
    return Console(
        file=file,
        highlight=False,
        # off a terminal, never wrap or cut a line: whoever reads it wants it whole
        width=None if terminal else 100_000,
        no_color=not terminal,
        force_terminal=terminal,
        soft_wrap=not terminal,
    )


def echo_error(message: str) -> None:
    """``error: <message>`` on stderr, the prefix in red on a terminal."""
    prefix = "error:"
    if sys.stderr.isatty():
        prefix = click.style(prefix, fg="red", bold=True)
    click.echo(f"{prefix} {message}", err=True)


def echo_warning(message: str) -> None:
    """``Warning: <message>`` on stderr, as kubectl prints the server's warnings."""
    prefix = "Warning:"
    if sys.stderr.isatty():
        prefix = click.style(prefix, fg="yellow", bold=True)
    click.echo(f"{prefix} {message}", err=True)


# -- tables ---------------------------------------------------------------------------------------


def print_table(
    out: Console, headers: Sequence[str], rows: Iterable[Sequence[str]], *, indent: int = 0
) -> None:
    """A borderless table, header row first, columns three blanks apart."""
    table = Table(
        box=None,
        show_edge=False,
        pad_edge=False,
        padding=(0, _GAP, 0, 0),
        header_style="bold" if out.is_terminal else "",
    )
    for i, header in enumerate(headers):
        # only the last column (a message, usually) may wrap on a narrow terminal
        table.add_column(header, no_wrap=i < len(headers) - 1, overflow="fold")
    for row in rows:
        table.add_row(*row)
    if out.is_terminal:
        out.print(Padding(table, (0, 0, 0, indent)) if indent else table)
        return
    with out.capture() as captured:
        out.print(table)
    pad = " " * indent
    text = "\n".join(pad + line.rstrip() for line in captured.get().splitlines())
    out.file.write(text + "\n")
    out.file.flush()


class RowPrinter:
    """Rows printed one at a time (``get --watch``), aligned on the widths seen so far."""

    def __init__(self, out: Console, headers: Sequence[str]) -> None:
        self._out = out
        self._headers = list(headers)
        self._widths = [len(h) for h in headers]

    def widen(self, rows: Iterable[Sequence[str]]) -> None:
        for row in rows:
            self._widths = [max(w, len(c)) for w, c in zip(self._widths, row, strict=False)]

    def header(self) -> None:
        line = self._format(self._headers)
        if self._out.is_terminal:
            self._out.print(line, style="bold", highlight=False, markup=False)
        else:
            self._write(line)

    def row(self, row: Sequence[str]) -> None:
        self.widen([row])
        self._write(self._format(row))

    def _format(self, row: Sequence[str]) -> str:
        cells = [c.ljust(w) for c, w in zip(row, self._widths, strict=False)]
        return (" " * _GAP).join(cells).rstrip()

    def _write(self, line: str) -> None:
        self._out.file.write(line + "\n")
        # a watcher at the other end of a pipe wants each row as it happens
        self._out.file.flush()


# -- documents ------------------------------------------------------------------------------------


def to_json(data: Any) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


#: ``-o json|yaml`` of a command that prints one document (and something else without it)
document_output_option = click.option(
    "-o", "--output", type=click.Choice(["json", "yaml"]), default=None, help="json or yaml."
)


def print_document(value: Any, output: str | None) -> None:
    """``value`` as indented JSON with ``-o json``, else as YAML."""
    click.echo(to_json(value) if output == "json" else to_yaml(value).rstrip("\n"))


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with multi-line strings as ``|`` blocks (Cedar policies stay readable)."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.nodes.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def to_yaml(data: Any) -> str:
    text: str = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=2**31 - 1,  # never fold a long value onto a second line
    )
    return text


def as_list(items: list[JSON], resource_version: str = "") -> JSON:
    """The ``List`` envelope kubectl prints for ``-o json|yaml`` of several objects."""
    return {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": resource_version},
        "items": items,
    }


# -- cells ----------------------------------------------------------------------------------------


def condition(obj: JSON, type_: str) -> JSON | None:
    """The condition of ``type_`` in ``status.conditions``, if any."""
    status = obj.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for c in conditions or []:
        if isinstance(c, dict) and c.get("type") == type_:
            return c
    return None


def ready(obj: JSON) -> str:
    """The READY cell: the Ready condition's status, or ``-`` when the object has none."""
    c = condition(obj, "Ready")
    return str(c.get("status") or "Unknown") if c else "-"
