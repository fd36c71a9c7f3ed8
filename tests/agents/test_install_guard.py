"""The agent-time dependency guard: a tool call that installs packages is checked first, so an
invented name or a typosquat never reaches the tool (nor pip behind it), and the trail says why."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.supplychain._wheels import wheel

from modelplane.agents import (
    Decision,
    InstanceRef,
    PackageInstalls,
    Runtime,
    allow_all,
    guard_installs,
    installs_packages,
)
from modelplane.api import ToolServerSpec

from ._harness import run, spec, url, wait_status

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "examples" / "supplychain" / "index-snapshot.json"
INSTALLER = ROOT / "examples" / "supplychain" / "installer"
TOOL = INSTALLER / "install_tool.py"
if str(INSTALLER) not in sys.path:  # the example agent's handler, install_agent.py
    sys.path.insert(0, str(INSTALLER))
AGENT = spec(
    "install_agent:installer",
    tools=[{"name": "installer", "transport": "stdio", "server": "installer"}],
)


def _installer(tmp_path: Path) -> ToolServerSpec:
    """The example install tool, told to resolve from a local folder of wheels and install nothing."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel(wheels, "requests", "2.32.3")
    return ToolServerSpec(
        command=sys.executable,
        args=[str(TOOL)],
        env={
            "MCP_EXAMPLE_CALL_LOG": str(tmp_path / "calls.log"),
            "MODELPLANE_INDEX_SNAPSHOT": str(SNAPSHOT),
            "INSTALL_TOOL_TARGET": str(tmp_path / "target"),
            "INSTALL_TOOL_PIP_ARGS": f"--dry-run --no-index --find-links {wheels}",
        },
    )


def _install(tmp_path: Path, packages: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the installer agent once for ``packages``: its result, and its audit trail."""
    hook = guard_installs(allow_all, PackageInstalls(SNAPSHOT))
    servers = {"installer": _installer(tmp_path)}.get

    async def main() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with Runtime(url(tmp_path), authorizer=hook, tool_servers=servers) as rt:
            rt.define("default", "installer", AGENT)
            rt.instances.create("default", "installer", "i1", {"packages": packages})
            info = await wait_status(rt, "installer", "i1", timeout=60)
            assert info["status"] == "completed", info
            return info["result"], rt.instances.audit("default", "installer", "i1")

    return run(main)  # type: ignore[no-any-return]


def _calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_an_invented_name_is_denied_before_the_tool_runs_and_audited(tmp_path: Path) -> None:
    # when an agent asks its install tool for a real package and one an assistant invented
    result, trail = _install(tmp_path, ["requests==2.32.3", "flask-gpt-helper"])
    # then the call was denied with the guard's reason, and the tool server never ran it
    assert result["denied"] == (
        "tool call installer.pip_install denied: install refused by the dependency guard:"
        " flask-gpt-helper: `flask-gpt-helper` does not exist in the index snapshot (built"
        " 2026-12-07); check the name, or remove it"
    ), result
    assert _calls(tmp_path) == []
    # and the instance's audit trail holds the denial with the same reason
    (denied,) = [a for a in trail if a["action"] == "tool.deny"]
    assert denied["detail"]["tool"] == "pip_install"
    assert "`flask-gpt-helper` does not exist" in denied["detail"]["reason"]


def test_a_typosquat_is_denied_naming_the_package_it_imitates(tmp_path: Path) -> None:
    result, _ = _install(tmp_path, ["reqeusts"])
    assert "did you mean requests?" in result["denied"], result
    assert _calls(tmp_path) == []


def test_allowed_packages_reach_the_tool_which_runs_pip_and_the_trail_says_so(
    tmp_path: Path,
) -> None:
    # when the packages are real and well known
    result, trail = _install(tmp_path, ["requests==2.32.3"])
    # then the tool ran once and pip resolved them (dry run, from the local folder)
    assert "installed requests==2.32.3" in json.dumps(result["installed"]), result
    assert _calls(tmp_path) == ['pip_install {"packages": ["requests==2.32.3"]}']
    # and the allow in the trail says the guard checked them
    (allowed,) = [a for a in trail if a["action"] == "tool.allow"]
    assert "dependency guard: allowed requests==2.32.3" in allowed["detail"]["reason"]


@pytest.mark.parametrize(
    ("tool", "installs"),
    [
        ("pip_install", True),
        ("install", True),
        ("install_packages", True),
        ("uninstall", False),
        ("lookup_capital", False),
        ("installer", False),
    ],
)
def test_which_tools_install_packages(tool: str, installs: bool) -> None:
    assert installs_packages(tool) is installs


def test_installs_are_refused_without_a_snapshot_or_without_a_package_list() -> None:
    me = InstanceRef("default", "a", "i")
    no_snapshot = guard_installs(allow_all, PackageInstalls(snapshot=None))
    missing = PackageInstalls(snapshot="/nonexistent/index-snapshot.json")

    async def main() -> list[Decision]:
        decisions = [
            no_snapshot(me, "s", "pip_install", {"packages": ["requests"]}),
            guard_installs(allow_all, missing)(me, "s", "pip_install", {"packages": ["requests"]}),
            guard_installs(allow_all, PackageInstalls(SNAPSHOT))(
                me, "s", "pip_install", {"names": "x"}
            ),
            no_snapshot(me, "s", "lookup_capital", {"country": "Peru"}),
        ]
        return [await d if not isinstance(d, Decision) else d for d in decisions]

    none, unreadable, no_list, other = run(main)
    assert not none.allow and "MODELPLANE_INDEX_SNAPSHOT" in none.reason
    assert not unreadable.allow and "cannot be read" in unreadable.reason
    assert not no_list.allow and "`packages`, a list of requirements" in no_list.reason
    # and a tool that installs nothing goes to the inner hook alone
    assert other.allow and other.reason == "allowed: no policy restricts tool calls"


def test_the_snapshot_comes_from_the_environment_up_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    # given `up --index-snapshot PATH`, which sets MODELPLANE_INDEX_SNAPSHOT for its process
    monkeypatch.setenv("MODELPLANE_INDEX_SNAPSHOT", str(SNAPSHOT))
    # when the agent runtime's guard is made without a path, then it checks against that file
    installs = PackageInstalls()
    assert installs.snapshot == str(SNAPSHOT)
    assert installs.refusal(["requests"]) is None
    assert "did you mean requests?" in (installs.refusal(["reqeusts"]) or "")
