"""The commands of ``docs/kubernetes.md``, run as written in a user's folder (no server needed).

The end-to-end documented-commands test lists them in its ``NOT_RUN`` naming this test: rendering
needs no platform. The ``kubectl``, ``helm`` and ``modelplane operator`` commands need a cluster, which these machines do
not have; every other command of the page runs here, and its output is checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from tests.deploy._k8s import problems
from tests.e2e._documented import ROOT, DocCommand, extract

#: first words of the page's commands that need a Kubernetes cluster (the operator's is run
#: against a fake API server by tests/kube/)
NEEDS_A_CLUSTER = ("kubectl ", "helm ", "modelplane operator ")


def _page() -> list[DocCommand]:
    return [c for c in extract() if c.where.startswith("docs/kubernetes.md:")]


def _user_folder(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    bin_dir = tmp_path / ".bin"
    bin_dir.mkdir()
    script = bin_dir / "modelplane"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m modelplane.cli "$@"\n')
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    # kubernetes-validate's script sits beside this interpreter
    env["PATH"] = os.pathsep.join((str(bin_dir), str(Path(sys.executable).parent), env["PATH"]))
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return tmp_path, env


def test_the_page_shows_its_commands() -> None:
    commands = [c.command for c in _page() if not c.is_synopsis]
    assert any(c.startswith("modelplane render kubernetes") for c in commands)
    assert any(c.startswith("kubernetes-validate") for c in commands)


def test_the_documented_commands_run_and_their_output_validates(tmp_path: Path) -> None:
    cwd, env = _user_folder(tmp_path)
    ran = []
    for doc in _page():
        if doc.is_synopsis or doc.command.startswith(NEEDS_A_CLUSTER):
            continue
        result = subprocess.run(
            doc.text, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"{doc.where}: {doc.command}\n{result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr
        ran.append(doc.command)
    assert len(ran) >= 3
    for name in ("00-crds.yaml", "10-platform.yaml", "20-endpoints.yaml"):
        assert (cwd / "k8s" / name).stat().st_size > 0
    assert yaml.safe_load((cwd / "chart" / "Chart.yaml").read_text())["name"] == "modelplane"
    streamed = [o for o in yaml.safe_load_all((cwd / "quickstart-k8s.yaml").read_text()) if o]
    assert {o["metadata"].get("namespace") for o in streamed if o["kind"] == "Deployment"} == {
        "ml-platform",
        "default",
    }
    assert [p for obj in streamed for p in problems(obj)] == []
    gpu = list(yaml.safe_load_all((cwd / "gpu-k8s" / "20-endpoints.yaml").read_text()))
    template = next(o for o in gpu if o["kind"] == "ResourceClaimTemplate")
    shown = _yaml_block_after("modelplane render kubernetes -f examples/kubernetes/")
    assert {k: template[k] for k in ("apiVersion", "kind")} == {
        k: shown[k] for k in ("apiVersion", "kind")
    }
    assert template["spec"] == shown["spec"]
    assert template["metadata"]["name"] == shown["metadata"]["name"]
    assert [p for obj in gpu for p in problems(obj)] == []


def _yaml_block_after(command: str) -> dict[str, Any]:
    """The first ```yaml block of the page after ``command``: what the page says it writes."""
    text = (ROOT / "docs" / "kubernetes.md").read_text()
    after = text[text.index(command) :]
    start = after.index("```yaml\n") + len("```yaml\n")
    block: dict[str, Any] = yaml.safe_load(after[start : after.index("```", start)])
    return block
