"""Pickled weights inspected without unpickling: every global a pickle would import, against an
allow-list of what PyTorch checkpoints need.

A pickle runs code by naming a callable (``GLOBAL``/``STACK_GLOBAL``/``INST``) and calling it
(``REDUCE``); ``os.system`` or ``builtins.eval`` there is the attack. :func:`unsafe_globals` walks
the opcodes with :mod:`pickletools` (nothing is imported or called) and lists every named global
outside :data:`SAFE_GLOBALS`. A PyTorch ``.pt``/``.bin`` file is a zip whose ``*.pkl`` members are
read the same way.
"""

from __future__ import annotations

import io
import os
import pickletools
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_STORAGES = ("Float", "Half", "BFloat16", "Double", "Long", "Int", "Short", "Char", "Byte", "Bool")

#: globals a PyTorch state dict needs, and nothing that can run a command
SAFE_GLOBALS = frozenset(
    {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch._tensor._rebuild_from_type_v2",
        "torch.storage.UntypedStorage",
        "torch.Size",
        "torch.float32",
        "torch.float16",
        "torch.bfloat16",
        *(f"torch.{kind}Storage" for kind in _STORAGES),
    }
)

_STRINGS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "STRING",
    "BINSTRING",
    "SHORT_BINSTRING",
}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GETS = {"GET", "BINGET", "LONG_BINGET"}


@dataclass(frozen=True, slots=True)
class UnsafeGlobal:
    """A global outside the allow-list: the file (``name.pt:archive/data.pkl`` inside a zip) and
    ``module.name``."""

    file: str
    name: str


class PickleUnreadable(Exception):
    """A file that is not a pickle (nor a zip of pickles) pickletools can read."""


def unsafe_globals(path: str | os.PathLike[str]) -> list[UnsafeGlobal]:
    """Every global the pickle file (or PyTorch zip) at ``path`` names outside the allow-list."""
    found: list[UnsafeGlobal] = []
    for label, data in _pickles(Path(path)):
        found += [UnsafeGlobal(label, g) for g in globals_of(data) if g not in SAFE_GLOBALS]
    return found


def globals_of(data: bytes) -> list[str]:
    """The ``module.name`` globals a pickle names, in order, read from its opcodes only."""
    names: list[str] = []
    strings: list[str] = []
    memo: dict[int, str] = {}
    try:
        for opcode, arg, _pos in pickletools.genops(io.BytesIO(data)):
            op = opcode.name
            if op in _STRINGS:
                strings.append(arg.decode("latin-1") if isinstance(arg, bytes) else str(arg))
            elif op in _PUTS and strings:
                memo[int(str(arg))] = strings[-1]
            elif op == "MEMOIZE" and strings:
                memo[len(memo)] = strings[-1]
            elif op in _GETS and int(str(arg)) in memo:
                strings.append(memo[int(str(arg))])
            elif op in ("GLOBAL", "INST"):
                names.append(str(arg).replace(" ", ".", 1))
            elif op == "STACK_GLOBAL":
                module, name = (strings[-2], strings[-1]) if len(strings) >= 2 else ("?", "?")
                names.append(f"{module}.{name}")
    except (ValueError, EOFError, TypeError) as exc:
        raise PickleUnreadable(str(exc)) from None
    return names


def _pickles(path: Path) -> Iterator[tuple[str, bytes]]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.endswith(".pkl"):
                    yield f"{path.name}:{member}", archive.read(member)
        return
    yield path.name, path.read_bytes()
