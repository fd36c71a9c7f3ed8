"""The layering stated in DESIGN.md, read from the imports of ``src`` (nothing is run).

Two rules: no import cycle among the modules (imports under ``TYPE_CHECKING`` and inside
functions count too), and no module imports another package's private (``_``-prefixed) module.
A private import that remains is listed (issue 17 removes them step by step), so a new one fails
here and a removed one must be taken off the list (the list only shrinks).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: imports of another package's private module not removed yet: (importer, imported)
KNOWN_PRIVATE_IMPORTS: set[tuple[str, str]] = set()


#: no function of ``src`` is longer than this (issue 17); a longer one is two functions
LONGEST_LINES = 80

#: packages of simulators and fakes: built on the subsystems, never imported by the runtime
SUPPORT = ("modelplane.sim", "modelplane.testing")
#: who may import them: the command line (``modelplane sim``) and the benchmarks
SUPPORT_USERS = ("modelplane.bench", "modelplane.cli", *SUPPORT)


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``src`` that ``name`` imports, anywhere in it (inside functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names]
            targets = subs if all(s in modules for s in subs) else [base, *subs]
        else:
            continue
        found.update(t for t in targets if t in modules and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(edges: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: set[tuple[str, ...]] = set()
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    out.add(tuple(sorted(group)))
    return out


def _owner(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _private_cross_package(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {
        (importer, imported)
        for importer, targets in edges.items()
        for imported in targets
        if _owner(importer) != _owner(imported)
        and any(p.startswith("_") and not p.startswith("__") for p in imported.split(".")[2:])
    }


def test_no_import_cycle_among_the_modules() -> None:
    assert _cycles(_graph()) == set()


def test_no_package_imports_another_packages_private_module_beyond_the_known_ones() -> None:
    assert _private_cross_package(_graph()) == KNOWN_PRIVATE_IMPORTS


def _runtime_imports_of_support(edges: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {
        (importer, imported)
        for importer, targets in edges.items()
        for imported in targets
        if _owner(imported) in SUPPORT and _owner(importer) not in SUPPORT_USERS
    }


def test_no_runtime_module_imports_the_simulators_or_the_fakes() -> None:
    # sim and testing sit on top of the subsystems (issue 17): the runtime never needs them
    assert _runtime_imports_of_support(_graph()) == set()


def test_the_support_check_sees_a_runtime_import_of_a_simulator() -> None:
    # given a made-up graph where the gateway imports the routing simulator and the CLI the fakes
    edges = {
        "modelplane.gateway._app": {"modelplane.sim._routing"},
        "modelplane.cli._sim": {"modelplane.sim", "modelplane.testing"},
        "modelplane.sim": set(),
        "modelplane.sim._routing": set(),
        "modelplane.testing": set(),
    }
    # then only the gateway's import is reported
    assert _runtime_imports_of_support(edges) == {
        ("modelplane.gateway._app", "modelplane.sim._routing")
    }


def _long_functions(limit: int = LONGEST_LINES) -> set[str]:
    """Every function of ``src`` (nested ones too) longer than ``limit`` lines, as module:name."""
    out: set[str] = set()
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    out.add(f"{name}:{node.name}")
    return out


def test_no_function_is_longer_than_80_lines() -> None:
    assert _long_functions() == set()


def test_the_layering_check_sees_a_private_import_and_a_cycle() -> None:
    # given a made-up graph, then both checks find what they look for
    edges = {
        "modelplane.a._x": {"modelplane.b._y"},
        "modelplane.b._y": {"modelplane.a._x"},
        "modelplane.b.public": set(),
    }
    assert _cycles(edges) == {("modelplane.a._x", "modelplane.b._y")}
    assert ("modelplane.a._x", "modelplane.b._y") in _private_cross_package(edges)


def test_the_architecture_map_names_every_module() -> None:
    # docs/architecture.md's module map has one row per module of src
    text = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    root = SRC / "modelplane"
    missing = [
        str(p.relative_to(root))
        for p in sorted(root.rglob("*.py"))
        if f"`{p.relative_to(root).as_posix()}`" not in text
    ]
    assert missing == [], f"add a row for each to the module map of docs/architecture.md: {missing}"


#: the rooms of ``scheduling``, lowest first (issue 17): a room imports only the rooms below it
SCHEDULING_ROOMS = (
    "modelplane.scheduling.allocation",
    "modelplane.scheduling.workloads",
    "modelplane.scheduling.controllers",
)


def _upward_imports(edges: dict[str, set[str]], rooms: tuple[str, ...]) -> set[tuple[str, str]]:
    def room(module: str) -> int | None:
        return next(
            (i for i, r in enumerate(rooms) if module == r or module.startswith(r + ".")), None
        )

    return {
        (importer, imported)
        for importer, targets in edges.items()
        for imported in targets
        if (low := room(importer)) is not None
        and (high := room(imported)) is not None
        and high > low
    }


def test_scheduling_rooms_import_only_the_rooms_below_them() -> None:
    assert _upward_imports(_graph(), SCHEDULING_ROOMS) == set()


def test_the_rooms_check_sees_an_upward_import() -> None:
    # given a made-up graph where the allocator imports a controller
    edges = {
        "modelplane.scheduling.allocation._allocator": {"modelplane.scheduling.controllers._x"},
        "modelplane.scheduling.controllers._x": {"modelplane.scheduling.allocation._allocator"},
    }
    # then only the allocator's import is reported
    assert _upward_imports(edges, SCHEDULING_ROOMS) == {
        ("modelplane.scheduling.allocation._allocator", "modelplane.scheduling.controllers._x")
    }
