"""The agent-time dependency guard: a tool call that installs packages is checked before it runs.

A tool **installs packages** when its name is ``install`` or has it as a word (``pip_install``,
``install_packages``, not ``uninstall``); it takes the requirements as ``packages``, a list of
strings. Before the runtime's own hook (the Policies) is asked, every such call goes through
:mod:`modelplane.supplychain`'s dependency guard against the operator's offline index snapshot
(``$MODELPLANE_INDEX_SNAPSHOT``, the file ``modelplane audit deps`` reads too): a blocked name (one
that does not exist, a typosquat) denies the call, so the tool, and pip behind it, never sees it.
The denial and its reasons land in the instance's audit trail (``tool.deny``) like any other; an
allowed install's audit record says what the guard checked. With no snapshot configured, installs
are denied (fail closed), naming the setting.
"""

from __future__ import annotations

import inspect
import os
import re
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelplane.agents.authz import Authorizer, Decision, InstanceRef

if TYPE_CHECKING:
    from modelplane.supplychain import InstallGuard

#: the index snapshot installs are checked against (the same variable ``audit deps`` reads)
INDEX_SNAPSHOT_ENV = "MODELPLANE_INDEX_SNAPSHOT"

_INSTALL_TOOL = re.compile(r"(?:^|[_.\-])install(?:$|[_.\-])", re.I)


def installs_packages(tool: str) -> bool:
    """Whether a tool of this name installs packages (see the module docstring)."""
    return _INSTALL_TOOL.search(tool) is not None


class PackageInstalls:
    """The dependency guard for installs, on the snapshot at ``snapshot`` (loaded on first use;
    None: ``$MODELPLANE_INDEX_SNAPSHOT``, and when that is unset every install is refused)."""

    def __init__(self, snapshot: str | os.PathLike[str] | None = None) -> None:
        if snapshot is None:
            snapshot = os.environ.get(INDEX_SNAPSHOT_ENV) or None
        self.snapshot = str(snapshot) if snapshot is not None else None
        self._guard: InstallGuard | None = None
        self._lock = threading.Lock()

    def refusal(self, packages: Sequence[str]) -> str | None:
        """Why installing ``packages`` is refused, or None when the guard blocks none of them."""
        from modelplane.supplychain import InstallGuard, SnapshotError

        if self.snapshot is None:
            return (
                "installs are checked against an index snapshot, and none is configured: an"
                f" operator sets {INDEX_SNAPSHOT_ENV} (see `modelplane audit snapshot`)"
            )
        with self._lock:
            if self._guard is None:
                try:
                    self._guard = InstallGuard.from_snapshot(self.snapshot)
                except (SnapshotError, OSError) as exc:
                    return f"the index snapshot {self.snapshot} cannot be read: {exc}"
            guard = self._guard
        refused = guard.refusal(packages)
        return refused.message if refused is not None else None


def guard_installs(inner: Authorizer, installs: PackageInstalls) -> Authorizer:
    """``inner``, with every tool call that installs packages checked by ``installs`` first."""

    async def authorize(
        instance: InstanceRef, server: str, tool: str, arguments: Mapping[str, Any]
    ) -> Decision:
        checked = ""
        if installs_packages(tool):
            packages = arguments.get("packages")
            if not isinstance(packages, list) or not all(isinstance(p, str) for p in packages):
                return Decision(
                    False,
                    f"tool {tool} installs packages: pass them as `packages`, a list of"
                    " requirements, so that the dependency guard can check them",
                )
            why = installs.refusal(packages)
            if why is not None:
                return Decision(False, why)
            checked = f"; dependency guard: allowed {', '.join(packages)}"
        decision = inner(instance, server, tool, arguments)
        if inspect.isawaitable(decision):
            decision = await decision
        assert isinstance(decision, Decision)
        if not checked:
            return decision
        return Decision(
            decision.allow, decision.reason + checked, decision.approval, decision.policy_version
        )

    return authorize
