"""Where an Agent's code comes from, and importing its ``package.module:handler`` entrypoint.

Agent code is the operator's choice, never a path an API client names. :class:`AgentCode` holds
the two places it may come from:

* **installed packages** the operator allows (``--agent-packages mod1,mod2``): an entrypoint whose
  module is one of them, or below one, is imported as an installed module; any other is refused
  before an import is tried (importing a module runs its code);
* **bundles** (``spec.bundle: sha256:...``, see :mod:`modelplane.agents._bundles`): uploaded by an
  administrator, stored content-addressed under the home. The entrypoint's module must be a file
  or package of the bundle. It is imported with the bundle's folder at the front of the module
  search path **for the import only**, and the bundle's modules leave ``sys.modules`` afterwards:
  two bundles (two versions of one Agent, or two Agents) may both have an ``assistant.py``, and a
  new digest runs its new code. What the module imports at import time (its siblings included)
  is found; an import of a sibling deferred into a function body runs later, without the folder:
  import siblings at the top of the module.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from modelplane.agents._bundles import BundleStore
from modelplane.agents.errors import BundleError
from modelplane.api import AgentSpec
from modelplane.api.errors import BadRequest

#: sys.path and sys.modules are process-wide: one scoped import at a time
_PATH_LOCK = threading.RLock()
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_packages(text: str) -> tuple[str, ...]:
    """``"mod1, mod2.sub"`` as module prefixes; ValueError naming a part that is not a module."""
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    for part in parts:
        if not _MODULE.match(part):
            raise ValueError(
                f"{part!r} is not a Python module name; write importable names separated by"
                " commas, e.g. 'support_bot,acme.agents'"
            )
    return parts


class CodeRefused(BadRequest):
    """The entrypoint comes from nowhere the operator allows; ``cause`` is a CamelCase reason."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass
class AgentCode:
    """Where this runtime takes agent code from (module docstring).

    ``packages``: module prefixes an entrypoint may name without a bundle; None allows every
    installed module (a runtime whose definitions come from its own operator, as in tests and
    ``agent-worker --agent``). ``bundles``: the bundle store; None refuses every bundle.
    """

    packages: Sequence[str] | None = None
    bundles: BundleStore | None = None
    _loaded: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def folder(self, spec: AgentSpec) -> Path | None:
        """The extracted bundle of ``spec`` (None without one); CodeRefused when unavailable."""
        if spec.bundle is None:
            return None
        if self.bundles is None:
            raise CodeRefused(
                "BundlesNotServed",
                f"spec.bundle {spec.bundle}: this agent runtime has no bundle store; run it with"
                " the platform's home (or its API) to fetch bundles",
            )
        try:
            return self.bundles.folder(spec.bundle)
        except BundleError as exc:
            raise CodeRefused(exc.reason, f"spec.bundle: {exc.message}") from None

    def load(self, spec: AgentSpec) -> Any:
        """The handler ``spec.entrypoint`` names, from the bundle or an allowed package."""
        folder = self.folder(spec)
        if folder is None:
            self._check_allowed(spec.entrypoint)
            return import_entrypoint(spec.entrypoint)
        key = (str(folder), spec.entrypoint)
        if key not in self._loaded:
            self._loaded[key] = import_entrypoint(spec.entrypoint, folder)
        return self._loaded[key]

    def _check_allowed(self, entrypoint: str) -> None:
        if self.packages is None:
            return
        module = entrypoint.partition(":")[0]
        if any(module == p or module.startswith(f"{p}.") for p in self.packages):
            return
        allowed = ", ".join(self.packages) or "none"
        raise CodeRefused(
            "EntrypointNotAllowed",
            f"spec.entrypoint {entrypoint!r}: module {module!r} is not in a package the operator"
            f" allows for agents (--agent-packages: {allowed}) and the Agent has no spec.bundle;"
            " `modelplane apply -f` the Agent's folder to upload its code as a bundle, or ask an"
            " operator to install the package and allow it",
        )


@contextmanager
def _scoped_modules(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path``, and its modules out of ``sys.modules``, after the block.

    Modules of the same names imported before (another bundle's, an installed one) are hidden
    while the block runs and put back afterwards.
    """
    path = str(folder)
    own = _top_level_names(folder)

    def ours(name: str) -> bool:
        return name.partition(".")[0] in own

    with _PATH_LOCK:
        hidden = {name: module for name, module in sys.modules.items() if ours(name)}
        for name in hidden:
            del sys.modules[name]
        sys.path.insert(0, path)
        importlib.invalidate_caches()
        try:
            yield
        finally:
            # another thread may have edited sys.path meanwhile: remove our entry, not index 0
            with suppress(ValueError):
                sys.path.remove(path)
            for name in [n for n in sys.modules if ours(n)]:
                del sys.modules[name]
            sys.modules.update(hidden)


def _top_level_names(folder: Path) -> set[str]:
    """The module names a folder defines at its top: ``x.py`` files and ``x/`` packages."""
    names = {p.stem for p in folder.glob("*.py")}
    names |= {
        p.name
        for p in folder.iterdir()
        if p.is_dir() and p.name.isidentifier() and any(p.glob("*.py"))
    }
    return names


#: module names a bundle may not define: it would stand in for them in the whole process
_RESERVED = frozenset(sys.stdlib_module_names) | {"modelplane"}


def _import(entrypoint: str, module_name: str, folder: Path | None) -> ModuleType:
    if folder is None:
        return importlib.import_module(module_name)
    top = module_name.partition(".")[0]
    if top not in _top_level_names(folder):
        raise CodeRefused(
            "EntrypointNotInBundle",
            f"spec.entrypoint {entrypoint!r}: the bundle holds no module {top!r} (no {top}.py"
            f" nor {top}/ at its top); name a module of the Agent's folder",
        )
    shadowed = sorted(_top_level_names(folder) & _RESERVED)
    if shadowed:
        raise CodeRefused(
            "BundleShadowsModule",
            f"the Agent's bundle defines {', '.join(shadowed)}, which the platform itself imports;"
            " rename those modules in the Agent's folder",
        )
    with _scoped_modules(folder):
        return importlib.import_module(module_name)


def import_entrypoint(entrypoint: str, folder: Path | None = None) -> Any:
    """The handler named by ``entrypoint``: an async function or a class with ``on_message``.

    ``folder``: an extracted bundle the module is imported from (see the module docstring);
    without one, the module is an installed one. Callers check it is allowed (:class:`AgentCode`).
    """
    module_name, _, attr = entrypoint.partition(":")
    try:
        module = _import(entrypoint, module_name, folder)
    except ImportError as exc:
        where = " in the Agent's bundle" if folder is not None else ""
        raise BadRequest(
            f"spec.entrypoint {entrypoint!r}: cannot import {module_name!r}{where} ({exc});"
            " put the module in the Agent's folder (its bundle), or install its package where"
            " agents run"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise BadRequest(
                f"spec.entrypoint {entrypoint!r}: module {module_name!r} has no {attr!r}"
            )
    if inspect.isclass(obj):
        if not inspect.iscoroutinefunction(getattr(obj, "on_message", None)):
            raise BadRequest(
                f"spec.entrypoint {entrypoint!r}: a class handler needs"
                " `async def on_message(self, ctx, message)`"
            )
    elif not inspect.iscoroutinefunction(obj):
        raise BadRequest(
            f"spec.entrypoint {entrypoint!r}: the handler must be `async def handler(ctx, input)`"
            " or a class with `async def on_message(self, ctx, message)`"
        )
    return obj
