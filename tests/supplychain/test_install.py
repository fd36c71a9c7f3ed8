"""The agent-time guard: an install reaches pip only when the dependency guard blocks nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.supplychain._wheels import wheel
from tests.supplychain.conftest import TODAY

from modelplane.supplychain import (
    DependencyGuard,
    IndexSnapshot,
    InstallGuard,
    InstallRefused,
    guarded_install,
)


class RecordingRunner:
    """Stands in for pip: records each argv it is given."""

    def __init__(self, returncode: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.returncode = returncode

    def __call__(self, argv: list[str]) -> int:
        self.calls.append(argv)
        return self.returncode


def test_an_invented_name_never_reaches_pip(snapshot_file: Path) -> None:
    runner = RecordingRunner()
    # when an agent asks to install a real package and an invented one
    with pytest.raises(InstallRefused) as refused:
        guarded_install(["requests>=2", "flask-gpt-helper"], snapshot=snapshot_file, runner=runner)
    # then pip was never started, and the refusal names the invented package and why
    assert runner.calls == []
    assert "`flask-gpt-helper` does not exist in the index snapshot" in refused.value.message
    assert "requests:" not in refused.value.message
    verdicts = {f.dependency.name: f.verdict for f in refused.value.findings}
    assert verdicts == {"requests": "allow", "flask-gpt-helper": "block"}


def test_a_typosquat_never_reaches_pip(snapshot: IndexSnapshot) -> None:
    runner = RecordingRunner()
    guard = InstallGuard(DependencyGuard(snapshot, today=TODAY))
    with pytest.raises(InstallRefused, match="did you mean requests"):
        guard.install(["reqeusts"], runner=runner)
    assert runner.calls == []


def test_allowed_requirements_are_installed_with_pip_as_given(snapshot: IndexSnapshot) -> None:
    runner = RecordingRunner()
    guard = InstallGuard(DependencyGuard(snapshot, today=TODAY))
    result = guard.install(["requests==2.32.3", "PyYAML>=6"], runner=runner, python="py")
    # then pip ran once with the requirements after "--", so none can be read as an option
    assert runner.calls == [["py", "-m", "pip", "install", "--", "requests==2.32.3", "PyYAML>=6"]]
    assert result.returncode == 0
    assert [f.verdict for f in result.findings] == ["allow", "allow"]


@pytest.mark.parametrize(
    "requirements",
    [["--index-url=http://evil.example/simple", "requests"], ["./requests"], "requests", []],
)
def test_options_paths_and_non_lists_are_refused_before_pip(
    snapshot: IndexSnapshot, requirements: list[str]
) -> None:
    runner = RecordingRunner()
    guard = InstallGuard(DependencyGuard(snapshot, today=TODAY))
    assert guard.refusal(requirements) is not None
    with pytest.raises(InstallRefused):
        guard.install(requirements, runner=runner)
    assert runner.calls == []


def test_real_pip_resolves_what_the_guard_allowed(snapshot: IndexSnapshot, tmp_path: Path) -> None:
    # given a local folder of wheels, and pip told to use only it and install nothing
    wheel(tmp_path, "requests", "2.32.3")
    guard = InstallGuard(DependencyGuard(snapshot, today=TODAY))
    outputs: list[str] = []

    def pip(argv: list[str]) -> int:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        outputs.append(done.stdout + done.stderr)
        return done.returncode

    pip_args = [
        "--dry-run",
        "--no-index",
        "--find-links",
        str(tmp_path),
        "--quiet",
        "--report",
        "-",
    ]
    result = guard.install(
        ["requests==2.32.3"], runner=pip, python=sys.executable, pip_args=pip_args
    )
    # then pip resolved the allowed requirement from the argv the guard built
    assert result.returncode == 0, outputs
    assert '"name": "requests"' in outputs[0] and '"version": "2.32.3"' in outputs[0], outputs
