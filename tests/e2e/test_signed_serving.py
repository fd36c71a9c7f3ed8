"""A signed model serves, and the same model with one byte changed is refused, naming the file.

The commands are the ones docs/supplychain.md shows under "Serving a signed version", run as
written in a user's folder: keygen, sign and import the quickstart's SmolLM2 conversion (a
hard-linked copy of the session's cached one), then a real `modelplane up --model-signing-key`.
One byte of the imported copy is then changed and the platform started again on the same home.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.control._wait import wait_until
from tests.e2e._documented import ROOT, extract
from tests.e2e._proc import UpProcess

from modelplane.control import get_condition
from modelplane.serving import ArtifactStore

pytestmark = pytest.mark.slow

API = "/apis/modelplane.dev/v1alpha1/namespaces/default"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _documented() -> list[str]:
    """The signing section's commands that serve `smollm2`, in the order the doc shows them."""
    commands = [
        c.command
        for c in extract()
        if c.where.startswith("docs/supplychain.md:")
        and "smollm2" in c.command
        and ("signing-key" in c.command or "smollm2-signed" in c.command)
    ]
    assert [c.split()[:3] for c in commands] == [
        ["modelplane", "models", "sign"],
        ["modelplane", "models", "import"],
        ["modelplane", "up", "--model-signing-key"],
    ], commands
    return ["modelplane models keygen signing-key.pem", *commands]


def _link_tree(src: Path, dest: Path) -> None:
    """Copy ``src`` as hard links where the file system allows (the files are only read)."""

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dest, copy_function=link)


class User:
    """A user's folder and shell: `modelplane` on the PATH, the examples beside."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        (cwd / "examples").symlink_to(ROOT / "examples")
        bin_dir = cwd / ".bin"
        bin_dir.mkdir()
        script = bin_dir / "modelplane"
        script.write_text(f'#!/bin/sh\nexec {sys.executable} -m modelplane.cli "$@"\n')
        script.chmod(0o755)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        src = str(ROOT / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        env["MODELPLANE_HOME"] = str(cwd / "home")
        self.env = env

    def run(self, command: str) -> str:
        done = subprocess.run(
            command, shell=True, cwd=self.cwd, env=self.env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
        return done.stdout

    def up(self, command: str) -> UpProcess:
        """The documented `modelplane up ...` on a port of its own, paths from the user's folder."""
        args = shlex.split(command)[2:]
        args = [str(self.cwd / a) if (self.cwd / a).exists() else a for a in args]
        return UpProcess(self.cwd / "home", extra=args).start()


@pytest.fixture(scope="module")
def user(smollm2: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> User:
    folder, _ = smollm2
    user = User(tmp_path_factory.mktemp("signed"))
    _link_tree(folder, user.cwd / "smollm2")
    return user


@pytest.fixture(scope="module")
def signed_up(user: User) -> Iterator[tuple[UpProcess, str]]:
    *prepare, up_command = _documented()
    for command in prepare:
        user.run(command)
    proc = user.up(up_command)
    try:
        yield proc, up_command
    finally:
        proc.stop()


def _condition(client: httpx.Client, path: str) -> dict[str, Any]:
    r = client.get(f"{API}/{path}")
    return (get_condition(r.json().get("status") or {}, "Ready") or {}) if r.is_success else {}


def _ready(client: httpx.Client, path: str) -> dict[str, Any] | None:
    condition = _condition(client, path)
    return condition if condition.get("status") == "True" else None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def test_signed_smollm2_serves_and_one_changed_byte_is_refused_naming_the_file(
    user: User, signed_up: tuple[UpProcess, str]
) -> None:
    proc, up_command = signed_up
    model = (user.cwd / "smollm2-signed.yaml").read_text()
    assert "signature: sha256:" in model, model
    # given the signed SmolLM2 served with the operator's key
    with httpx.Client(base_url=proc.url, timeout=120) as client:
        wait_until(lambda: _ready(client, "endpoints/smollm2"), timeout=90, what="smollm2 Ready")
        # then the Model controller verified the signature
        wait_until(lambda: _ready(client, "models/smollm2"), what="Model smollm2 Ready")
        status = client.get(f"{API}/models/smollm2").json()["status"]
        messages = " ".join(str(v.get("message")) for v in status.get("versions") or [])
        assert "verified" in messages and "signature sha256:" in messages, status
        # and the replica answers
        body = {"model": "smollm2", "messages": QUESTION, "temperature": 0, "max_tokens": 24}
        r = client.post("/v1/chat/completions", json=body)
        assert r.status_code == 200, r.text
        assert "Paris" in r.json()["choices"][0]["message"]["content"]
    proc.stop()

    # when one byte of the imported weights changes while the platform is down
    imported = ArtifactStore(proc.home).get(_imported_digest(model))
    assert imported is not None
    weights = imported.path / "model.safetensors"
    # (the store's own copy: the user's folder is hard-linked to the session's cached model)
    assert not weights.samefile(user.cwd / "smollm2" / "model.safetensors")
    expected = _sha256(weights)
    with open(weights, "r+b") as f:
        f.seek(weights.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x01]))
    found = _sha256(weights)
    assert found != expected

    # and the platform starts again on the same home
    again = user.up(up_command)
    try:
        with httpx.Client(base_url=again.url, timeout=30) as client:
            _assert_refused(client, expected, found)
    finally:
        again.stop()


def _imported_digest(model_yaml: str) -> str:
    import yaml

    (version,) = yaml.safe_load(model_yaml)["spec"]["versions"]
    return str(version["digest"])


def _assert_refused(client: httpx.Client, expected: str, found: str) -> None:
    def tampered(path: str) -> dict[str, Any] | None:
        condition = _condition(client, path)
        return condition if condition.get("reason") == "ArtifactTampered" else None

    # then the Endpoint is not Ready, naming the changed file with both digests
    endpoint = wait_until(lambda: tampered("endpoints/smollm2"), timeout=60, what="refused")
    assert endpoint["status"] == "False"
    assert endpoint["message"].startswith("version v1: signature sha256:"), endpoint
    for part in ("model.safetensors", f"expected {expected}", f"found {found}"):
        assert part in endpoint["message"], endpoint
    # and the Model says the same
    model = wait_until(lambda: tampered("models/smollm2"), what="Model refused")
    assert model["status"] == "False"
    assert "model.safetensors" in model["message"] and found in model["message"], model
    # and no replica serves it
    replicas = client.get(f"{API}/endpoints/smollm2").json()["status"].get("replicas") or []
    assert not [r for r in replicas if r.get("ready")], replicas
    body = {"model": "smollm2", "messages": QUESTION, "max_tokens": 4}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code != 200, r.text
