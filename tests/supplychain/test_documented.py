"""The commands docs/supplychain.md (and the benchmark's lines of docs/benchmarks.md) show, run
as written in a shell, in a copy of the examples and benchmarks: exit code 0 and the output the
document shows. No platform is needed: the guard works offline."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.e2e._documented import ROOT, DocCommand, extract

#: commands of the docs that ask the API: not run here, where no platform is up
NEEDS_SERVER = (
    "modelplane audit bom",
    "modelplane apply -f examples/supplychain/installer/",
    "modelplane agents ",
)
#: commands that serve SmolLM2 signed: tests/e2e/test_signed_serving.py runs them on a platform
SIGNED_SERVING = (
    "modelplane models sign smollm2 ",
    "modelplane models import smollm2 ",
    "modelplane up --model-signing-key ",
)


def _commands() -> list[DocCommand]:
    return [
        c
        for c in extract(ROOT)
        if c.where.startswith("docs/supplychain.md")
        or (c.where.startswith("docs/benchmarks.md") and "supplychain" in c.command)
    ]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "examples" / "supplychain", tmp_path / "examples" / "supplychain")
    shutil.copytree(ROOT / "benchmarks", tmp_path / "benchmarks")
    return tmp_path


def test_the_docs_show_the_done_when_command() -> None:
    shown = [c.command for c in _commands()]
    assert (
        'modelplane audit deps examples/supplychain/requirements.txt || echo "exit code $?"'
        in shown
    )


def test_every_command_of_the_supply_chain_docs_runs_as_documented(workdir: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    env.pop("MODELPLANE_INDEX_SNAPSHOT", None)
    ran = 0
    for doc in _commands():
        if doc.is_synopsis:
            continue
        if doc.command.startswith(NEEDS_SERVER + SIGNED_SERVING):
            continue  # test_bom.py runs it against a server; the e2e test against the quickstart
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", doc.text],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{doc.where}: {doc.command}\n{result.stderr}"
        missing = [line for line in doc.expected if line not in result.stdout]
        assert missing == [], f"{doc.where}: {doc.command}\n{result.stdout}"
        ran += 1
    assert ran >= 5
    # the snapshot the docs build is the one committed beside the example, byte for byte
    built = workdir / "examples" / "supplychain" / "index-snapshot.json"
    assert built.read_bytes() == (ROOT / "examples/supplychain/index-snapshot.json").read_bytes()
    assert '"version": "2.1.0"' in (workdir / "deps.sarif").read_text()
    # the signing walk-through signed the copy, imported it with its signature, and left the
    # example as it was
    assert (workdir / "tiny-model.sig").is_file()
    assert list((workdir / "demo-home" / "models" / "signatures").glob("*.sig"))
    example = workdir / "examples" / "supplychain" / "model" / "model.safetensors"
    assert (
        example.read_bytes() == (ROOT / "examples/supplychain/model/model.safetensors").read_bytes()
    )


def test_every_synopsis_of_the_supply_chain_docs_names_options_that_exist() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    synopses = [c for c in _commands() if c.is_synopsis]
    assert len(synopses) >= 3
    for synopsis in synopses:
        words = synopsis.command.split()
        program = [sys.executable] + (["-m", "modelplane.cli"] if words[0] == "modelplane" else [])
        path = list(itertools.takewhile(lambda w: re.fullmatch(r"[a-z][\w./-]*", w), words[1:]))
        result = subprocess.run(
            [*program, *path, "--help"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{synopsis.where}: {result.stderr}"
        for option in re.findall(r"--[a-z][\w-]*", synopsis.command):
            assert option in result.stdout, f"{synopsis.where}: {option} is not an option"
