"""Reading manifests: multi-document YAML or JSON, from text, files, folders or stdin.

Each object is returned as a :class:`Manifest` that remembers where it came from, down to the
line and column of every field, so that validation can say ``endpoint.yaml:12:9`` next to
``spec.traffic[1].weight``.

Relative paths a client tool reads beside a manifest (as in kustomize) are relative to the manifest
file; :meth:`Manifest.resolve_path` turns them into paths the client can open, whatever its working
directory. The server never resolves paths against a client's folder (a Model's ``source`` is
looked up in the operator's ``--model-root`` folders).

YAML is read with PyYAML's safe loader, with two changes that keep objects JSON-shaped:
timestamps stay strings (``creationTimestamp: 2025-01-01T00:00:00Z`` is a string on the wire),
and documents that expand beyond :data:`MAX_NODES` values through aliases are refused.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from modelplane.api import errors
from modelplane.api._types import PathPart

#: Values (scalars, lists, maps) one document may expand to, counting each alias use in full.
MAX_NODES = 200_000
#: Nesting depth of one document.
MAX_DEPTH = 100
_SUFFIXES = (".yaml", ".yml", ".json")


class _Loader(yaml.SafeLoader):
    """The safe loader, minus timestamp resolution (timestamps stay strings, as in JSON)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass
class Manifest:
    """One object read from a manifest, with where it came from.

    ``line`` and ``column`` (1-based) are where the object starts; ``index`` is its position
    among the objects of ``source`` (0-based, items of a ``List`` counted one by one).
    """

    obj: dict[str, Any]
    source: str
    line: int
    column: int
    index: int
    #: the YAML node of the object, for field -> line:column (None for JSON read without YAML)
    _node: Node | None = field(default=None, repr=False, compare=False)

    @property
    def where(self) -> str:
        """``source:line:column`` of the object."""
        return f"{self.source}:{self.line}:{self.column}"

    def position(self, path: Iterable[PathPart]) -> tuple[int, int]:
        """(line, column), 1-based, of the field at ``path`` or of its nearest written ancestor.

        A field that is missing points at the mapping that should contain it.
        """
        node = self._node
        found = (self.line, self.column)
        for part in path:
            if node is None:
                break
            child = _child(node, part)
            if child is None:
                break
            node, mark = child
            found = (mark.line + 1, mark.column + 1)
        return found

    def location(self, path: Iterable[PathPart]) -> str:
        """``source:line:column`` of the field at ``path`` (see :meth:`position`)."""
        line, column = self.position(path)
        return f"{self.source}:{line}:{column}"

    def resolve_path(self, path: str) -> str:
        """A path written in this manifest, made usable from anywhere.

        URIs (``s3://...``, ``https://...``) and absolute paths are returned unchanged; a
        relative path is taken relative to the folder of the manifest file (or to the current
        folder for stdin and text).
        """
        if "://" in path or Path(path).is_absolute() or self.source.startswith("<"):
            return path
        return str(Path(self.source).parent / path)


def _child(node: Node, part: PathPart) -> tuple[Node, Any] | None:
    """The node below ``node`` at ``part``, with the mark to report (a key's own position)."""
    if isinstance(node, MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == part:
                return value, key.start_mark
        return None
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item = node.value[part]
        return item, item.start_mark
    return None


def _location(source: str, mark: Any) -> str:
    return f"{source}:{mark.line + 1}:{mark.column + 1}"


# --- YAML errors ---------------------------------------------------------------------------------

_HINTS = (
    ("found character '\\t'", "indent with spaces; YAML does not allow tabs"),
    (
        "mapping values are not allowed",
        "check the indentation, or quote a value that contains ': '",
    ),
    (
        "could not find expected ':'",
        "a line in a mapping needs 'key: value'; check indentation and quotes",
    ),
    ("found unexpected end of stream", "a quote or bracket is not closed"),
    ("did not find expected key", "check the indentation of this block"),
    ("did not find expected", "check the indentation and the '-' of list items"),
    ("found undefined alias", "define the anchor (&name) before using the alias (*name)"),
    ("could not determine a constructor", "custom tags such as !!python/... are not allowed"),
    ("found unhashable key", "a key must be a plain value, not a list or a mapping"),
    ("expected <document start>", "separate documents with a line '---'"),
    ("expected ',' or ']'", "a '[' is not closed, or its items lack commas"),
    ("expected ',' or '}'", "a '{' is not closed, or its entries lack commas"),
    ("expected <block end>", "this line is indented differently from the lines around it"),
    ("while scanning a quoted scalar", "a quote is not closed"),
)


def _yaml_problem(exc: yaml.YAMLError, source: str, text: str) -> errors.BadRequest:
    if isinstance(exc, yaml.reader.ReaderError):
        # raised for control characters before any parsing: locate the offending character
        before = text[: exc.position]
        line, column = before.count("\n") + 1, exc.position - (before.rfind("\n") + 1) + 1
        return errors.BadRequest(
            f"{source}:{line}:{column}: character {chr(exc.character)!r} is not allowed in YAML;"
            " remove it, or save the manifest as plain UTF-8 text"
        )
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    text_of_error = str(exc)
    hint = next(
        (h for needle, h in _HINTS if needle in text_of_error),
        "check the indentation and quoting around that line",
    )
    where = _location(source, mark) if mark is not None else f"{source}:1:1"
    return errors.BadRequest(f"{where}: malformed YAML: {problem}; {hint}")


# --- loading ---------------------------------------------------------------------------------------


def _check_size(root: Node, source: str) -> None:
    """Refuse documents whose aliases expand too far, recurse, or nest too deeply."""
    sizes: dict[int, int] = {}
    # iterative post-order walk: (node, depth, children_done)
    stack: list[tuple[Node, int, bool]] = [(root, 0, False)]
    on_path: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_NODES:
                raise errors.BadRequest(
                    f"{_location(source, root.start_mark)}: the document expands to more than"
                    f" {MAX_NODES} values (through YAML aliases?); split it or remove the aliases"
                )
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise errors.BadRequest(
                f"{_location(source, node.start_mark)}: an alias refers to the value that contains"
                " it (a recursive structure); objects must be trees"
            )
        if depth > MAX_DEPTH:
            raise errors.BadRequest(
                f"{_location(source, node.start_mark)}: nested more than {MAX_DEPTH} levels deep"
            )
        on_path.add(key)
        stack.append((node, depth, True))
        for child in _children(node):
            if id(child) in on_path:
                raise errors.BadRequest(
                    f"{_location(source, child.start_mark)}: an alias refers to the value that"
                    " contains it (a recursive structure); objects must be trees"
                )
            if id(child) not in sizes:
                stack.append((child, depth + 1, False))


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _documents(text: str, source: str) -> Iterator[tuple[Any, Node | None]]:
    """(data, node) per non-empty YAML document."""
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:
        raise _yaml_problem(exc, source, text) from None
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
            except RecursionError:
                raise errors.BadRequest(
                    f"{source}: nested too deeply to read; objects are at most {MAX_DEPTH} levels deep"
                ) from None
            if node is None:
                continue
            _check_size(node, source)
            try:
                data = loader.construct_document(node)
            except (ValueError, OverflowError, TypeError, RecursionError) as exc:
                # PyYAML lets Python's own conversions fail through (an integer of 5000 digits)
                raise errors.BadRequest(
                    f"{_location(source, node.start_mark)}: cannot read a value: {exc}"
                ) from None
            if data is None:
                continue
            yield data, node
    except yaml.YAMLError as exc:
        raise _yaml_problem(exc, source, text) from None
    finally:
        loader.dispose()


def _json_documents(text: str) -> list[tuple[Any, Node | None]] | None:
    """JSON that PyYAML (a YAML 1.1 reader) refuses, e.g. with tabs; None if it is not JSON."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return [] if data is None else [(data, None)]


def load_manifests(text: str, source: str = "<stdin>") -> list[Manifest]:
    """The objects in ``text``: YAML documents separated by ``---``, or JSON.

    Empty documents are skipped; a ``List`` (``kind: List`` or ``kind: FooList`` with ``items``)
    is flattened into its items (an item without ``apiVersion``/``kind`` takes them from a typed
    list). Malformed YAML raises :class:`~modelplane.api.errors.BadRequest` with
    ``source:line:column``; a document that is not a mapping, or lacks ``apiVersion`` or ``kind``,
    raises :class:`~modelplane.api.errors.Invalid` with the location of each problem.
    """
    if not isinstance(text, str):
        raise errors.BadRequest(f"{source}: expected text, got {type(text).__name__}")
    try:
        documents = list(_documents(text, source))
    except errors.BadRequest:
        as_json = _json_documents(text) if text.lstrip()[:1] in ("{", "[") else None
        if as_json is None:
            raise
        documents = as_json
    manifests: list[Manifest] = []
    causes: list[errors.Cause] = []
    for number, (data, node) in enumerate(documents, start=1):
        for obj, obj_node, prefix in _flatten(data, node):
            start = obj_node.start_mark if obj_node is not None else None
            line, column = (start.line + 1, start.column + 1) if start is not None else (1, 1)
            manifest = Manifest(obj, source, line, column, len(manifests), obj_node)
            problems = _envelope_problems(obj, number, prefix)
            if problems:
                causes.extend(
                    errors.Cause(f, m, r, manifest.location(p)) for f, p, m, r in problems
                )
                continue
            manifests.append(manifest)
    if causes:
        raise errors.Invalid(
            f"{source}: {len(causes)} document(s) are not objects with apiVersion and kind",
            causes=causes,
        )
    return manifests


def _flatten(data: Any, node: Node | None) -> Iterator[tuple[Any, Node | None, str]]:
    """(object, its node, path prefix for messages) — a List becomes its items."""
    kind = data.get("kind") if isinstance(data, dict) else None
    items = data.get("items") if isinstance(data, dict) else None
    if isinstance(kind, str) and kind.endswith("List") and isinstance(items, list):
        item_kind = kind[: -len("List")] or None
        api_version = data.get("apiVersion") if item_kind else None
        items_node = _child(node, "items") if node is not None else None
        for i, item in enumerate(items):
            if isinstance(item, dict) and item_kind:
                # items of a typed list (FooList) may omit their own apiVersion and kind
                item.setdefault("kind", item_kind)
                if api_version is not None:
                    item.setdefault("apiVersion", api_version)
            item_node = _child(items_node[0], i) if items_node is not None else None
            yield item, item_node[0] if item_node is not None else None, f"items[{i}]"
        return
    yield data, node, ""


def _envelope_problems(
    obj: Any, number: int, prefix: str
) -> list[tuple[str, tuple[PathPart, ...], str, str]]:
    """(field, path, message, reason) for a document that is not an object we can dispatch."""
    where = f"document {number}" + (f" {prefix}" if prefix else "")
    if not isinstance(obj, dict):
        shown = "a list" if isinstance(obj, list) else f"the value {str(obj)[:40]!r}"
        return [
            (
                prefix or "<document>",
                (),
                f"{where} is {shown}; each document must be one object (a mapping with"
                " apiVersion, kind, metadata and spec)",
                "FieldValueInvalid",
            )
        ]
    problems: list[tuple[str, tuple[PathPart, ...], str, str]] = []
    for name, example in (("apiVersion", "modelplane.dev/v1alpha1"), ("kind", "Endpoint")):
        value = obj.get(name)
        if not isinstance(value, str) or not value:
            message = (
                f"{where} has no {name}; add e.g. '{name}: {example}'"
                if value is None
                else f"{where}: {name} must be a string such as {example!r}"
            )
            problems.append(
                (name, (name,) if value is not None else (), message, "FieldValueRequired")
            )
    return problems


def load_paths(paths: Iterable[str | Path]) -> list[Manifest]:
    """The objects in files, folders (recursively: ``*.yaml``, ``*.yml``, ``*.json``, sorted)
    and ``-`` (standard input), in the order given.

    A path that does not exist, or cannot be read as UTF-8 text, raises
    :class:`~modelplane.api.errors.BadRequest` naming it.
    """
    manifests: list[Manifest] = []
    for raw in paths:
        if str(raw) == "-":
            manifests.extend(load_manifests(sys.stdin.read(), "<stdin>"))
            continue
        path = Path(raw)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _SUFFIXES
            )
            if not files:
                raise errors.BadRequest(
                    f"{path}: the folder holds no manifests (*.yaml, *.yml, *.json)"
                )
        elif path.exists():
            files = [path]
        else:
            raise errors.BadRequest(f"{path}: no such file or folder")
        for file in files:
            manifests.extend(load_manifests(_read(file), str(file)))
    return manifests


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise errors.BadRequest(
            f"{path}: not UTF-8 text (byte {exc.start}); save the manifest as UTF-8"
        ) from None
    except OSError as exc:
        raise errors.BadRequest(f"{path}: cannot be read: {exc.strerror or exc}") from None
