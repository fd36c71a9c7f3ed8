"""Importing ``package.module:handler`` entrypoints, with errors a person can act on.

An Agent applied from a manifest file carries the manifest's folder (annotation
``modelplane.dev/source-dir``); its entrypoint is imported with that folder at the front of the
module search path **for the import only**: the folder is added once (never twice, never when it
is already there) and removed again afterwards, so agents from many folders do not pile up on
``sys.path``. What the module imports at import time (siblings in its folder included) is found;
an import of a sibling deferred into a function body runs later, without the folder: import
siblings at the top of the module.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType
from typing import Any

from modelplane.api.errors import BadRequest

#: sys.path is process-wide: one scoped import at a time
_PATH_LOCK = threading.RLock()


@contextmanager
def on_search_path(folder: str | None) -> Iterator[None]:
    """``folder`` at the front of ``sys.path`` while the block runs (unless it is there already)."""
    if not folder:
        yield
        return
    path = os.path.abspath(folder)
    with _PATH_LOCK:
        added = path not in sys.path
        if added:
            sys.path.insert(0, path)
            importlib.invalidate_caches()
        try:
            yield
        finally:
            if added:
                # another thread may have edited sys.path meanwhile: remove our entry, not index 0
                with suppress(ValueError):
                    sys.path.remove(path)


def _defined_in(folder: str, module_name: str) -> Path | None:
    """The file or package in ``folder`` that ``module_name`` names, if there is one."""
    base = Path(folder, *module_name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _import(entrypoint: str, module_name: str, source_dir: str | None) -> ModuleType:
    with on_search_path(source_dir):
        module = importlib.import_module(module_name)
    if source_dir:
        wanted = _defined_in(source_dir, module_name)
        loaded = getattr(module, "__file__", None)
        if wanted is not None and loaded is not None and Path(loaded).resolve() != wanted:
            raise BadRequest(
                f"spec.entrypoint {entrypoint!r}: module {module_name!r} is already imported from"
                f" {loaded}, not from {wanted} (the Agent's folder); give the module a name no"
                " other agent or package uses"
            )
    return module


def import_entrypoint(entrypoint: str, source_dir: str | None = None) -> Any:
    """The handler named by ``entrypoint``: an async function or a class with ``on_message``.

    ``source_dir``: the folder of the manifest that declared the Agent; the module is looked up
    there first (see the module docstring), then as an installed module.
    """
    module_name, _, attr = entrypoint.partition(":")
    try:
        module = _import(entrypoint, module_name, source_dir)
    except ImportError as exc:
        where = f" nor in {source_dir}" if source_dir else ""
        raise BadRequest(
            f"spec.entrypoint {entrypoint!r}: cannot import {module_name!r}{where} ({exc});"
            " put the module beside the Agent's manifest, or install its package where agents"
            " run"
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
