"""The agent-time guard: a package install goes through the dependency guard before pip runs.

An agent step or tool that would install Python packages calls :func:`guarded_install` (or asks
:meth:`InstallGuard.refusal` first): every requirement is checked against the offline index
snapshot exactly as ``modelplane audit deps`` checks it (exists, typosquat, new...), and when any
is blocked pip is never started: :class:`InstallRefused` names each blocked requirement with its
reasons. Only requirement strings are accepted (``name[extras]<specifier>``): an option
(``--index-url``), a path or a URL is refused, since the guard cannot vouch for what it names.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelplane.supplychain._guard import BLOCK, DependencyGuard, Finding, worst
from modelplane.supplychain._manifests import ManifestError, read_names
from modelplane.supplychain._snapshot import IndexSnapshot

#: runs pip's argv and returns its exit code (a test passes one that records the argv)
Runner = Callable[[list[str]], int]


def _run(argv: list[str]) -> int:
    return subprocess.run(argv, check=False).returncode


class InstallRefused(Exception):
    """An install that did not reach pip: a blocked or unreadable requirement."""

    def __init__(self, message: str, findings: Sequence[Finding] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.findings = list(findings)


@dataclass(frozen=True)
class InstallResult:
    """What ran (pip's argv and exit code) and the guard's verdict on each requirement."""

    argv: list[str]
    returncode: int
    findings: list[Finding]


class InstallGuard:
    """Checks requirements before an install; see the module docstring."""

    def __init__(self, guard: DependencyGuard) -> None:
        self.guard = guard

    @classmethod
    def from_snapshot(cls, snapshot: IndexSnapshot | str | os.PathLike[str]) -> InstallGuard:
        if not isinstance(snapshot, IndexSnapshot):
            snapshot = IndexSnapshot.load(Path(snapshot))
        return cls(DependencyGuard(snapshot))

    def check(self, requirements: Sequence[str]) -> list[Finding]:
        """The verdict on each requirement; InstallRefused for one that is not a requirement."""
        if isinstance(requirements, str) or not requirements:
            raise InstallRefused("name the packages to install as a list of requirements")
        for text in requirements:
            if not isinstance(text, str) or text.strip().startswith("-") or "/" in text:
                raise InstallRefused(
                    f"{text!r} is not a package requirement (name[extras]<specifier>); options,"
                    " paths and URLs are not installed through the guard"
                )
        try:
            dependencies = read_names(requirements)
        except ManifestError as exc:
            raise InstallRefused(str(exc)) from None
        return [self.guard.check(d) for d in dependencies]

    def checked(self, requirements: Sequence[str]) -> list[Finding]:
        """:meth:`check`, raising InstallRefused when any requirement is blocked."""
        findings = self.check(requirements)
        if worst(findings) != BLOCK:
            return findings
        blocked = [
            f"{f.dependency.name}: " + "; ".join(r.message for r in f.reasons if r.level == BLOCK)
            for f in findings
            if f.verdict == BLOCK
        ]
        message = "install refused by the dependency guard: " + " | ".join(blocked)
        raise InstallRefused(message, findings)

    def refusal(self, requirements: Sequence[str]) -> InstallRefused | None:
        """Why installing ``requirements`` is refused, or None when nothing is blocked."""
        try:
            self.checked(requirements)
        except InstallRefused as exc:
            return exc
        return None

    def install(
        self,
        requirements: Sequence[str],
        *,
        runner: Runner | None = None,
        python: str | None = None,
        pip_args: Sequence[str] = (),
    ) -> InstallResult:
        """``python -m pip install PIP_ARGS REQUIREMENTS`` once nothing is blocked; raises
        InstallRefused (pip never started) otherwise."""
        findings = self.checked(requirements)
        argv = [python or sys.executable, "-m", "pip", "install", *pip_args, "--", *requirements]
        return InstallResult(argv, (runner or _run)(argv), findings)


def guarded_install(
    requirements: Sequence[str],
    *,
    snapshot: IndexSnapshot | str | os.PathLike[str],
    runner: Runner | None = None,
    python: str | None = None,
    pip_args: Sequence[str] = (),
) -> InstallResult:
    """Install ``requirements`` with pip only when the dependency guard blocks none of them
    (against ``snapshot``, offline); raises :class:`InstallRefused` naming what it blocked."""
    guard = InstallGuard.from_snapshot(snapshot)
    return guard.install(requirements, runner=runner, python=python, pip_args=pip_args)
