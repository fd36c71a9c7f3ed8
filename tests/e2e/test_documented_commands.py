"""Every command shown in README, docs and examples is run, as written, against a real platform.

`tests/e2e/_documented.py` reads the commands out of the documents (its docstring says where it
looks and how a placeholder tells a synopsis from a command). Each command runs in a real shell,
in document order, against one `modelplane up -f examples/quickstart/` for the module on a home
seeded with SmolLM2 (what `./dev up` leaves), and must exit with 0 and print what the document
says it prints. The documents assume the default address `127.0.0.1:8470`: the shell gets the
platform's address in `MODELPLANE_SERVER`, and `localhost:8470` / `127.0.0.1:8470` in a command
become the platform's address. A command shown twice runs once.

A command that cannot run here is in :data:`NOT_RUN` with the reason, and a watch is in
:data:`WATCHES` with the first lines it must print. A new command in the docs is therefore run by
this test, and fails it until it works or is listed.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.control._wait import wait_until
from tests.e2e._documented import ROOT, DocCommand, extract, untagged_commands
from tests.e2e._proc import UpProcess

from modelplane.control import get_condition
from modelplane.serving import ArtifactStore

QUICKSTART = ROOT / "examples" / "quickstart"
API = "/apis/modelplane.dev/v1alpha1/namespaces/default"
_DEFAULT_ADDRESS = re.compile(r"\b(localhost|127\.0\.0\.1):8470\b")

#: commands shown in the docs that this test does not run, and why
NOT_RUN: dict[str, str] = {
    "./dev up": "the module's platform is what it starts: `modelplane up -f examples/quickstart/`"
    " on a home seeded with SmolLM2, as ./dev up leaves it (./dev itself only installs first)",
    "./dev up --database-url postgresql://127.0.0.1:5432/test": "the same platform on PostgreSQL;"
    " `modelplane up --database-url` on PostgreSQL is run by tests/e2e/test_crash_recovery.py",
    "./dev test": "runs the whole test suite, this test included",
    "modelplane render kubernetes -f examples/quickstart/ -o k8s/ --helm chart/": "needs no"
    " server: run, and its output validated, by tests/deploy/test_documented.py",
    "modelplane render kubernetes -f examples/quickstart/ --namespace ml-platform --image"
    " modelplane:0.1.0 > quickstart-k8s.yaml": "needs no server: run, and its output validated,"
    " by tests/deploy/test_documented.py",
    "modelplane render kubernetes -f examples/kubernetes/ -o gpu-k8s/": "needs no server: run,"
    " and its output validated, by tests/deploy/test_documented.py",
    "kubernetes-validate --strict k8s/00-crds.yaml k8s/10-platform.yaml k8s/20-endpoints.yaml": (
        "needs no server: run by tests/deploy/test_documented.py"
    ),
    "modelplane operator --kubeconfig ~/.kube/config --namespace team-a --port 8490": "needs a"
    " Kubernetes cluster (none on these machines); tests/kube/ runs the operator against a fake"
    " API server",
    "kubectl create namespace modelplane": "needs a Kubernetes cluster (none on these machines)",
    "kubectl -n modelplane create secret generic modelplane-database"
    " --from-literal=url=postgresql://modelplane@postgres.modelplane:5432/modelplane": "needs a"
    " Kubernetes cluster (none on these machines)",
    "kubectl -n modelplane create secret generic modelplane-encryption"
    " --from-file=encryption.key=.modelplane/encryption.key": "needs a Kubernetes cluster (none"
    " on these machines)",
    "kubectl apply -f k8s/": "needs a Kubernetes cluster (none on these machines); the objects are"
    " validated against Kubernetes' OpenAPI schemas by tests/deploy/",
    "helm install modelplane chart/ --namespace modelplane --create-namespace"
    " --set gateway.replicas=5": "needs a Kubernetes cluster and the helm binary (neither on"
    " these machines); tests/deploy/test_helm.py renders the chart's templates",
    "modelplane bench gateway": "the full benchmark takes minutes; its --quick form is run",
    "modelplane bench agents -o json": "the full benchmark takes minutes; its --quick form is run",
    "modelplane bench scheduling": "the full benchmark takes minutes; its --quick form is run",
    "modelplane bench mcp": "the full benchmark takes minutes; its --quick form is run",
    "python benchmarks/nics.py": "the full benchmark (about 2 minutes); its --quick form is run",
    "python benchmarks/power.py": "the full benchmark (about a minute); its --quick form is run",
    "python benchmarks/soak.py --out soak/": "30 minutes with the scaled-out shape on"
    " PostgreSQL; tests/e2e/test_bench_soak.py runs 15 seconds of the same code",
    "python benchmarks/store.py": "the full benchmark (about 40 s); its --quick form is run",
    "python benchmarks/audit.py": "the full benchmark (about a minute); its --quick form is run",
    "python benchmarks/model_verify.py": "writes and hashes 2 GiB; its --quick form is run (and"
    " tests/supplychain/test_bench_verify.py runs it)",
    "modelplane bench policy": "the full benchmark takes minutes; its --quick form is run",
    "python benchmarks/evals.py": "the full benchmark (about 30 s); its --quick form is run",
    "python benchmarks/constrained_decoding.py": "the full benchmark (a few minutes); its --quick"
    " form is run",
    "python benchmarks/batching.py --model-dir .pytest_cache/d/modelplane-smollm2/safetensors": (
        "the full benchmark (about 5 minutes); its --quick form is run, and"
        " tests/serving/test_bench_batching.py runs it"
    ),
    "python benchmarks/adapters.py": "the full benchmark (about 2 minutes); its --quick form is"
    " run, and tests/serving/test_bench_adapters.py runs it",
    "curl -s localhost:8470/v1/completions -H 'content-type: application/json' -d '{\"model\":"
    ' "smollm2:sql", "prompt": "The capital of France is", "max_tokens": 8,'
    ' "temperature": 0}\'': "needs a LoRA adapter the quickstart does not have;"
    " tests/e2e/test_lora_adapters.py serves one and sends this request",
    "python benchmarks/slo.py": "the full suite (about 20 s); its --quick form is run, and"
    " tests/sre/test_faults.py runs a shorter one",
    "python benchmarks/store.py --no-postgres": "the full benchmark without PostgreSQL; --quick is"
    " run, and tests/cli/test_local.py runs `bench store --quick --no-postgres`",
    # docs/sandbox.md: local commands (no server), run by tests/sandbox/test_documented_sandbox.py
    **{
        command: "needs no server: tests/sandbox/test_documented_sandbox.py runs it"
        for command in (
            'modelplane sandbox call examples/sandbox/echo.wat \'{"city": "Paris"}\'',
            "modelplane sandbox call examples/sandbox/environ.wat",
            "modelplane sandbox call examples/sandbox/environ.wat --env 'API_TOKEN=t0k'",
            "modelplane sandbox run -- /usr/bin/python3 -c 'import os; print(sorted(os.environ))'",
            "modelplane sandbox probes",
            "modelplane sandbox digest examples/sandbox/echo.wat",
        )
    },
    "modelplane bench sandbox --quick": "needs no server: tests/sandbox/test_bench_sandbox.py runs"
    " it",
    "modelplane bench sandbox": "the full benchmark (about a minute); tests/sandbox/"
    "test_bench_sandbox.py runs its --quick form",
    "modelplane up --scale-out --database-url postgresql://127.0.0.1:5432/test": "starts its own"
    " platform, on PostgreSQL, until Ctrl-C: tests/e2e/test_scaleout.py runs it (--port 0, a"
    " fresh schema) and checks every process it prints, then Ctrl-C",
    **{
        command: "signs, imports and serves a copy of SmolLM2 on a platform of its own:"
        " tests/e2e/test_signed_serving.py runs it"
        for command in (
            "modelplane models sign smollm2 --key signing-key.pem",
            "modelplane models import smollm2 --name smollm2 > smollm2-signed.yaml",
            "modelplane up --model-signing-key signing-key.pub -f smollm2-signed.yaml"
            " -f examples/supplychain/smollm2-endpoint.yaml",
        )
    },
}

#: watches (they run until Ctrl-C): the first lines they must print, then Ctrl-C
WATCHES: dict[str, tuple[str, ...]] = {
    "modelplane get endpoints -w": ("NAME", "smollm2 ", "smollm2-polish "),
}

_APPLIED = re.compile(r"^(Warning: .*|\S+/\S+ (created|configured|unchanged))$")

#: what the docs say a command prints, in prose or a comment beside it
EXPECTED: dict[str, Callable[[str], bool]] = {
    # README: the first command answers the question
    'modelplane chat smollm2 "What is the capital of France?"': lambda out: "Paris" in out,
    # README: the Graph's polish step rewrites the draft without losing the fact
    'modelplane chat draft-then-polish "What is the capital of France?"': lambda out: (
        "Paris" in out
    ),
    # README: "prints created/configured/unchanged", one line per object
    "modelplane apply -f examples/quickstart/": lambda out: all(
        _APPLIED.match(line) for line in out.strip().splitlines()
    ),
    "modelplane get resourceclaims": lambda out: "quickstart-gpu" in out,
    "modelplane explain endpoint.spec.traffic": lambda out: "FIELD:    traffic" in out,
}

#: commands that show a result that arrives later ("after the timer: the answer"): rerun until
#: the output says it, within a deadline
EVENTUALLY: dict[str, Callable[[str], bool]] = {
    f"modelplane agents state assistant {name}": lambda out: "Paris" in out
    for name in ("chat", "tour", "demo")
} | {
    # docs/agents.md: the sandboxed fetch of a host the tool was not granted is audited
    "modelplane agents audit assistant tools": lambda out: "network.deny" in out,
}


@dataclass
class Shell:
    """A shell as a user of the docs has one: `modelplane` and `python` on the PATH, the platform
    as the server, a working folder with the repository's examples and benchmarks."""

    up: UpProcess
    cwd: Path
    env: dict[str, str]

    def prepare(self, text: str) -> str:
        return _DEFAULT_ADDRESS.sub(f"127.0.0.1:{self.up.port}", text)

    def run(self, text: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-o", "pipefail", "-c", self.prepare(text)],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def first_lines(self, text: str, wanted: tuple[str, ...], timeout: float = 60) -> str:
        """Runs a watch until its output has each of `wanted` (in order), then Ctrl-C."""
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {self.prepare(text)}"],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        seen: list[str] = []
        # past the deadline the watch is killed, which ends the read below even if it is silent
        deadline = threading.Timer(timeout, proc.kill)
        deadline.start()
        try:
            for line in proc.stdout:
                seen.append(line)
                if _in_order("".join(seen), wanted):
                    break
        finally:
            deadline.cancel()
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return "".join(seen)


def _in_order(text: str, wanted: tuple[str, ...]) -> bool:
    at = 0
    for piece in wanted:
        at = text.find(piece, at)
        if at < 0:
            return False
        at += len(piece)
    return True


@pytest.fixture(scope="module")
def up(smollm2: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    folder, _ = smollm2
    home = tmp_path_factory.mktemp("documented") / "home"
    store = ArtifactStore(home)
    gguf = store.import_path(next(folder.parent.glob("*.gguf")))
    store.adopt_conversion(gguf, folder)
    proc = UpProcess(home, extra=["-f", str(QUICKSTART)]).start(timeout=60)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def shell(up: UpProcess, tmp_path_factory: pytest.TempPathFactory) -> Shell:
    cwd = tmp_path_factory.mktemp("user")
    for name in ("examples", "benchmarks"):
        (cwd / name).symlink_to(ROOT / name)
    bin_dir = cwd / ".bin"
    bin_dir.mkdir()
    for name, argv in (("modelplane", f"{sys.executable} -m modelplane.cli"), ("python", "")):
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\nexec {argv or sys.executable} "$@"\n')
        script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["MODELPLANE_SERVER"] = up.url
    env["MODELPLANE_HOME"] = str(up.home)
    return Shell(up, cwd, env)


def _documented() -> list[DocCommand]:
    unique: dict[str, DocCommand] = {}
    for command in extract():
        unique.setdefault(command.command, command)
    return list(unique.values())


# --- the rollout docs' world: Endpoint `chat` on `chat-model`, v1 serving, v2 wanted -----------

_ROLLOUT_WORLD = """
apiVersion: modelplane.dev/v1alpha1
kind: Model
metadata: {name: chat-model}
spec:
  versions:
  - {name: v1, source: x, format: safetensors, digest: "sha256:%(hex)s"}
  - {name: v2, source: x, format: safetensors, digest: "sha256:%(hex)s"}
---
apiVersion: modelplane.dev/v1alpha1
kind: Endpoint
metadata:
  name: chat
  annotations: {modelplane.dev/simulated: "true", modelplane.dev/simulated-ttft: "5ms"}
spec:
  model: chat-model
  traffic: [{version: %(version)s, weight: 100}]
  rollout:
    steps: [5, 25, 50, 100]
    analysis: {interval: 1m, minSamples: 100}
""".strip()


def _serve_requests(shell: Shell, count: int, endpoint: str = "chat") -> None:
    """`count` successful chat completions through the gateway (replicas may still be starting)."""
    body = {"model": endpoint, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    served = 0
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=shell.up.url, timeout=10) as client:
        while served < count:
            assert time.monotonic() < deadline, f"{served}/{count} requests served by {endpoint}"
            if client.post("/v1/chat/completions", json=body).status_code == 200:
                served += 1


def _apply_rollout_world(shell: Shell, version: str) -> None:
    manifest = shell.cwd / "chat.yaml"
    manifest.write_text(_ROLLOUT_WORLD % {"hex": "a" * 64, "version": version})
    result = shell.run(f"modelplane apply -f {manifest}")
    assert result.returncode == 0, result.stdout + result.stderr


def _rollout_in_progress(shell: Shell) -> None:
    # given the doc's example: v1 in force and serving, then spec.traffic wants v2 in full
    _apply_rollout_world(shell, "v1")
    _serve_requests(shell, 60)
    _apply_rollout_world(shell, "v2")


def _v2_sampled(shell: Shell, wanted: int = 60) -> None:
    """Serve until the gateway holds ``wanted`` samples of v2: after `promote`, the first requests
    may still reach v1 while v2's replica starts (slower on a busy machine)."""

    def sampled() -> bool:
        _serve_requests(shell, 10)
        r = httpx.get(f"{shell.up.url}/v1/_modelplane/samples?endpoint=chat", timeout=10)
        return r.status_code == 200 and len(r.json()["versions"].get("v2", [])) >= wanted

    wait_until(sampled, timeout=120, what=f"{wanted} samples of chat's v2")


#: what the world must hold before a command for the document's example to make sense
BEFORE: dict[str, Callable[[Shell], None]] = {
    "modelplane rollout status chat": _rollout_in_progress,
    # samples of v2 (promoted) beside v1's, enough for `analyze --min-samples 50`
    "curl -s 'http://127.0.0.1:8470/v1/_modelplane/samples?endpoint=chat' > samples.json": (
        _v2_sampled
    ),
}


# --- tests without a platform --------------------------------------------------------------------


def test_every_command_block_of_the_docs_is_tagged_so_that_it_is_run() -> None:
    # an untagged block is not run: a command in one would escape this test
    assert untagged_commands() == [], "tag these blocks ```sh"


def test_the_extractor_finds_the_quickstarts_commands_and_tells_synopses_apart() -> None:
    commands = {c.command: c for c in extract()}
    # the README's first command and the yaml comments' commands are found
    assert 'modelplane chat smollm2 "What is the capital of France?"' in commands
    assert "modelplane agents audit assistant demo" in commands
    assert commands["modelplane agents audit assistant demo"].where.endswith("agent.yaml:13")
    # a command whose quoted JSON spans lines is one command
    assert any(c.startswith("curl -s") and c.endswith("France?\"}]}'") for c in commands)
    # an all-capitals word or an optional part in brackets makes a synopsis
    assert commands["modelplane models import PATH"].is_synopsis
    assert commands["modelplane sim cluster [--nodes N] [--mig] [--nvl72] [--seed N]"].is_synopsis
    assert not commands[
        "modelplane create secret generic openai --from-literal=api-key=sk-..."
    ].is_synopsis


def test_every_listed_exception_is_still_shown_in_the_docs() -> None:
    shown = {c.command for c in extract()}
    listed = set(NOT_RUN) | set(WATCHES) | set(EXPECTED) | set(EVENTUALLY) | set(BEFORE)
    assert listed - shown == set(), "these tables name commands the docs no longer show"


def test_every_synopsis_names_a_command_and_options_that_exist(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    for synopsis in (c for c in _documented() if c.is_synopsis):
        words = synopsis.command.split()
        program = [sys.executable] + (["-m", "modelplane.cli"] if words[0] == "modelplane" else [])
        # the leading lower-case words name the command; the rest are options and placeholders
        path = list(itertools.takewhile(lambda w: re.fullmatch(r"[a-z][\w./-]*", w), words[1:]))
        result = subprocess.run(
            [*program, *path, "--help"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"{synopsis.where}: {result.stdout}{result.stderr}"
        for option in re.findall(r"--[a-z][\w-]*", synopsis.command):
            assert option in result.stdout, f"{synopsis.where}: {option} is not an option"


# --- every command, against the platform ---------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(
    1800
)  # every command of every doc, one after another: minutes on a busy machine
def test_every_documented_command_runs_against_the_quickstart_platform(shell: Shell) -> None:
    # given the quickstart serving (the docs' commands assume it is up and ready)
    with httpx.Client(base_url=shell.up.url, timeout=10) as client:

        def ready() -> bool:
            r = client.get(f"{API}/endpoints/smollm2")
            status = (r.json().get("status") or {}) if r.status_code == 200 else {}
            return (get_condition(status, "Ready") or {}).get("status") == "True"

        wait_until(ready, timeout=120, what="smollm2 Ready")
    failures: list[str] = []
    for doc in _documented():
        if doc.is_synopsis or doc.command in NOT_RUN:
            continue
        if doc.command in BEFORE:
            BEFORE[doc.command](shell)
        failure = _run(shell, doc)
        if failure:
            failures.append(failure)
    assert failures == [], "\n\n".join(failures)


def _run(shell: Shell, doc: DocCommand) -> str | None:
    """Runs one command as its document shows it; the reason it failed, or None."""
    if doc.command in WATCHES:
        output = shell.first_lines(doc.text, WATCHES[doc.command])
        if _in_order(output, WATCHES[doc.command]):
            return None
        return f"{doc.where}: {doc.command}\nfirst lines lacked {WATCHES[doc.command]}:\n{output}"
    check = EVENTUALLY.get(doc.command)
    deadline = time.monotonic() + (180 if check else 0)
    while True:
        try:
            result = shell.run(doc.text)
        except subprocess.TimeoutExpired as exc:
            return f"{doc.where}: {doc.command}\nstill running after {exc.timeout} s"
        output = result.stdout
        why = _judge(doc, result.returncode, output)
        if why is None and check is not None and not check(output):
            why = "the output never showed what the docs say it shows"
        if why is None or time.monotonic() > deadline:
            break
        time.sleep(1)  # polling a condition with a deadline, not synchronising on time
    if why is None:
        return None
    return f"{doc.where}: {doc.command}\n{why}\nstdout:\n{output[-2000:]}\nstderr:\n{result.stderr[-2000:]}"


def _judge(doc: DocCommand, returncode: int, output: str) -> str | None:
    if returncode != 0:
        return f"exit code {returncode}"
    missing = [line for line in doc.expected if line not in output]
    if missing:
        return f"expected output missing: {missing}"
    expected = EXPECTED.get(doc.command)
    if expected is not None and not expected(output):
        return "the output is not what the docs say it prints"
    return None


@pytest.mark.slow
def test_a_command_the_docs_got_wrong_fails_with_its_place_and_the_reason(shell: Shell) -> None:
    # given commands as the docs showed them before they were fixed: a model name that is an
    # Agent, not an Endpoint, and a second walk-through creating an instance the first created
    wrong_model = DocCommand("docs/gateway.md:9", 'modelplane chat assistant "Hi"')
    first = DocCommand(
        "examples/quickstart/README.md:26", "modelplane agents create assistant twice"
    )
    again = DocCommand("docs/agents.md:169", "modelplane agents create assistant twice")
    # when they are run as the module runs the docs
    assert _run(shell, first) is None
    failures = [_run(shell, wrong_model), _run(shell, again)]
    # then each fails, naming the document's line and what the command said
    assert failures[0] is not None and failures[0].startswith("docs/gateway.md:9: ")
    assert "The model 'assistant' does not exist" in failures[0]
    assert failures[1] is not None and failures[1].startswith("docs/agents.md:169: ")
    assert "already exists" in failures[1]
