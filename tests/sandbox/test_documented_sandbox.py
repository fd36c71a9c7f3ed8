"""docs/sandbox.md's commands and its Python example run as written (they need no server, so
they run here; ``tests/e2e/test_documented_commands.py`` lists them in ``NOT_RUN``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.e2e._documented import ROOT, extract

from modelplane.sandbox import ProcessSandbox

DOC = "docs/sandbox.md"


def _commands() -> list[str]:
    return [d.command for d in extract() if d.where.startswith(DOC + ":") and not d.is_synopsis]


def _shell(command: str) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_doc_shows_the_sandbox_commands() -> None:
    commands = _commands()
    assert any(c.startswith("modelplane sandbox call") for c in commands)
    assert "modelplane sandbox probes" in commands


@pytest.mark.parametrize("command", _commands())
def test_documented_command_runs(sandbox: ProcessSandbox, command: str) -> None:
    result = _shell(command)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    if "echo.wat '{" in command:
        assert json.loads(result.stdout) == {"city": "Paris"}
    if command.startswith("modelplane sandbox digest"):
        assert result.stdout.strip() in (ROOT / DOC).read_text()  # the digest the doc pins
    if "--env 'API_TOKEN=t0k'" in command:
        assert json.loads(result.stdout) == {"env": "API_TOKEN=t0k"}


def test_the_runaway_tool_fails_as_the_doc_says(sandbox: ProcessSandbox) -> None:
    result = _shell("modelplane sandbox call examples/sandbox/runaway.wat")
    assert result.returncode == 1
    assert "ran past its deadline of 0.05s" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_python_example_runs(sandbox: ProcessSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / DOC).read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert blocks, "docs/sandbox.md lost its Python example"
    monkeypatch.chdir(ROOT)
    for block in blocks:
        exec(compile(block, DOC, "exec"), {})  # its asserts are the checks
