"""Fuzzing load_manifests and validate: whatever comes in, only a ModelplaneError comes out.

Inputs are random text, YAML-shaped token soup, random JSON-like structures, and valid objects
and manifests with random mutations. A mutated object that is accepted must also be stable:
validating the result again gives the same object.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelplane import api
from modelplane.api import errors

from . import _objects

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load_and_validate(text: str) -> None:
    """The property: only ModelplaneError escapes, and accepted objects are stable."""
    try:
        manifests = api.load_manifests(text, "fuzz.yaml")
    except errors.ModelplaneError:
        return
    for manifest in manifests:
        _validate(manifest.obj, manifest)


def _validate(obj: Any, manifest: api.Manifest | None = None) -> None:
    try:
        out = api.validate(obj, manifest=manifest)
    except errors.ModelplaneError as exc:
        for cause in exc.causes:
            assert cause.field and cause.message
            if manifest is not None:
                assert cause.location and cause.location.startswith("fuzz.yaml:")
        return
    assert api.validate(out) == out


# --- random and YAML-shaped text -----------------------------------------------------------------


@FUZZ
@given(st.text(max_size=400))
def test_random_text_never_escapes_as_another_exception(text: str) -> None:
    _load_and_validate(text)


_TOKENS = [
    "apiVersion: modelplane.dev/v1alpha1\n",
    "apiVersion: resource.k8s.io/v1\n",
    "kind: Endpoint\n",
    "kind: ResourceSlice\n",
    "kind: List\nitems:\n",
    "metadata:\n  name: x\n",
    "spec:\n",
    "  model: m\n",
    "  traffic:\n  - version: v1\n    weight: 100\n",
    "---\n",
    "- ",
    ": ",
    "\n",
    "  ",
    "\t",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!binary ",
    "!!set ",
    "!!python/tuple ",
    "? ",
    "'",
    '"',
    "# c\n",
    "key",
    "1e3",
    "0x1F",
    ".nan",
    "-.inf",
    "~",
    "null",
    "yes",
    "2025-01-01",
    "12:30:00",
    "|\n  block\n",
    ">-\n  folded\n",
    "%YAML 1.1\n",
    "...\n",
    "\x00",
    "\ufeff",
]


@FUZZ
@given(st.lists(st.sampled_from(_TOKENS), max_size=40).map("".join))
def test_yaml_shaped_token_soup_never_escapes(text: str) -> None:
    _load_and_validate(text)


# --- random structures ---------------------------------------------------------------------------

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["80Gi", "500ms", "v1", "chat", "sha256:" + "0" * 64, "gpu.nvidia.com"])
)
_KEYS = st.sampled_from(
    [
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "spec",
        "status",
        "versions",
        "traffic",
        "weight",
        "devices",
        "requests",
        "exactly",
        "nodes",
        "steps",
        "value",
        "int",
        "string",
        "conditions",
    ]
) | st.text(max_size=10)
_JSONISH = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=30,
)


@FUZZ
@given(_JSONISH, st.sampled_from(list(_objects.ALL)))
def test_random_structures_never_escape(spec: Any, kind: str) -> None:
    info = api.lookup(kind)
    obj = {"apiVersion": info.api_version, "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    _validate(obj)
    _validate(spec)
    try:
        text = yaml.safe_dump(obj)
    except yaml.YAMLError:
        return
    _load_and_validate(text)


# --- mutated valid objects -----------------------------------------------------------------------


@cache
def _seeds() -> tuple[dict[str, Any], ...]:
    fixtures = [m.obj for m in api.load_paths([_objects.FIXTURES, _objects.QUICKSTART])]
    return tuple([make() for make in _objects.ALL.values()] + fixtures)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _paths(item, (*path, i))
    return found


@st.composite
def _mutated(draw: st.DrawFn) -> dict[str, Any]:
    obj = copy.deepcopy(draw(st.sampled_from(_seeds())))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = [p for p in _paths(obj) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = obj
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add", "retype"]))
        if action == "replace":
            parent[path[-1]] = draw(_JSONISH)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(_KEYS)] = draw(_JSONISH)
        elif action == "retype":
            value = parent[path[-1]]
            parent[path[-1]] = [value] if not isinstance(value, list) else {"x": value}
    return obj


@FUZZ
@given(_mutated())
def test_mutated_valid_objects_never_escape_and_accepted_ones_are_stable(
    obj: dict[str, Any],
) -> None:
    _validate(obj)


@FUZZ
@given(
    st.sampled_from([_objects.endpoint, _objects.model, _objects.graph, _objects.queue]),
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2000),
            st.sampled_from(["", " ", "\n", ":", "-", "'", "{", "\t", "x"]),
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_mutated_manifest_text_never_escapes(make: Any, edits: list[tuple[int, str]]) -> None:
    text = yaml.safe_dump(make(), sort_keys=False)
    for position, replacement in edits:
        position %= len(text)
        text = text[:position] + replacement + text[position + 1 :]
    _load_and_validate(text)
