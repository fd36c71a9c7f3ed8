"""kubectl itself against a real ``modelplane up`` (SQLite).

Each test has a namespace of its own on one shared server, and a kubeconfig in its tmp_path.
Authentication is off: kubectl (client-go) sends no bearer token over plain HTTP, and ``up``
serves no TLS, so a token in the kubeconfig would never reach the server. Where kubectl is not installed the tests are skipped saying
so, except under ``CI=true``: our CI machine has it, and a skip there would hide a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.cli._platform import LineReader, UpServer, run_cli

KUBECTL = shutil.which("kubectl")

pytestmark = pytest.mark.skipif(
    KUBECTL is None and os.environ.get("CI") != "true",
    reason="kubectl is not installed: these tests run kubectl itself against modelplane up",
)

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpServer]:
    root = tmp_path_factory.mktemp("kubectl")
    server = UpServer(root / "home").start().wait_ready()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ns() -> str:
    return f"kubectl-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kubeconfig(platform: UpServer, tmp_path: Path, ns: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: modelplane
  cluster: {{server: "{platform.url}"}}
users:
- name: ops
  user: {{}}
contexts:
- name: modelplane
  context: {{cluster: modelplane, user: ops, namespace: {ns}}}
current-context: modelplane
"""
    )
    return path


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """``kubectl(...)``: run kubectl with this test's kubeconfig; fails on a non-zero exit
    unless ``check=False``."""

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None, "kubectl must be installed on CI"
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}
        done = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env, timeout=60)
        if check:
            assert done.returncode == 0, f"kubectl {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done

    return run


def endpoint(name: str, *, max_replicas: int = 1) -> str:
    return f"""apiVersion: modelplane.dev/v1alpha1
kind: Endpoint
metadata:
  name: {name}
  labels:
    team: search
spec:
  model: smollm2
  replicas:
    min: 1
    max: {max_replicas}
  routing:
    policy: least-request
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / f"manifest-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(text)
    return str(path)


def test_kubectl_apply_creates_then_leaves_unchanged_then_configures(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    # given a manifest
    manifest = write(tmp_path, endpoint("web"))

    # when it is applied, applied again, edited and applied
    first = kubectl("apply", "-f", manifest)
    again = kubectl("apply", "-f", manifest)
    edited = kubectl("apply", "-f", write(tmp_path, endpoint("web", max_replicas=3)))

    # then kubectl reports each as kube-apiserver would make it
    assert first.stdout.strip() == "endpoint.modelplane.dev/web created"
    assert again.stdout.strip() == "endpoint.modelplane.dev/web unchanged"
    assert edited.stdout.strip() == "endpoint.modelplane.dev/web configured"
    shown = kubectl("get", "endpoints.modelplane.dev", "web", "-o", "jsonpath={.spec.replicas.max}")
    assert shown.stdout == "3"
    annotations = kubectl(
        "get", "endpoints.modelplane.dev", "web", "-o", "jsonpath={.metadata.annotations}"
    )
    assert "kubectl.kubernetes.io/last-applied-configuration" in annotations.stdout


def test_kubectl_server_side_apply_records_its_fields_and_names_conflicts(
    kubectl: Kubectl, tmp_path: Path
) -> None:
    applied = kubectl("apply", "--server-side", "-f", write(tmp_path, endpoint("api")))
    assert applied.stdout.strip() == "endpoint.modelplane.dev/api serverside-applied"
    managed = kubectl(
        "get", "endpoints.modelplane.dev", "api", "--show-managed-fields",
        "-o", "jsonpath={.metadata.managedFields[0].manager}/{.metadata.managedFields[0].operation}",
    )  # fmt: skip
    assert managed.stdout == "kubectl/Apply"

    # when another manager applies another value of a field kubectl owns
    other = write(tmp_path, endpoint("api", max_replicas=4))
    refused = kubectl("apply", "--server-side", "--field-manager=ops-bot", "-f", other, check=False)

    # then it is refused naming the field and its manager, until forced
    assert refused.returncode != 0
    assert '.spec.replicas.max: conflict with "kubectl"' in refused.stderr
    kubectl("apply", "--server-side", "--field-manager=ops-bot", "--force-conflicts", "-f", other)
    shown = kubectl("get", "endpoints.modelplane.dev", "api", "-o", "jsonpath={.spec.replicas.max}")
    assert shown.stdout == "4"


def test_kubectl_get_prints_the_columns_of_modelplane_get(
    kubectl: Kubectl, tmp_path: Path, platform: UpServer, ns: str
) -> None:
    kubectl("apply", "-f", write(tmp_path, endpoint("web")))

    table = kubectl("get", "endpoints.modelplane.dev")

    ours = run_cli("--server", platform.url, "-n", ns, "get", "endpoints")
    assert ours.exit_code == 0, ours.output
    assert table.stdout.splitlines()[0].split() == ours.output.splitlines()[0].split()
    assert re.match(r"web\s+smollm2\s", table.stdout.splitlines()[1])


def test_kubectl_get_watch_prints_a_change(
    kubectl: Kubectl, kubeconfig: Path, tmp_path: Path
) -> None:
    kubectl("apply", "-f", write(tmp_path, endpoint("web")))
    assert KUBECTL is not None
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "HOME": str(tmp_path)}
    watch = subprocess.Popen(
        [KUBECTL, "get", "endpoints.modelplane.dev", "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        assert watch.stdout is not None
        lines = LineReader(watch.stdout)
        lines.until(lambda line: line.startswith("web "))

        kubectl("label", "endpoints.modelplane.dev", "web", "tier=gold")
        kubectl("apply", "-f", write(tmp_path, endpoint("web", max_replicas=2)))
        kubectl("apply", "-f", write(tmp_path, endpoint("late")))

        lines.until(lambda line: line.startswith("late "))
    finally:
        watch.terminate()
        watch.wait(10)


def test_kubectl_describe_shows_the_object(kubectl: Kubectl, tmp_path: Path) -> None:
    kubectl("apply", "-f", write(tmp_path, endpoint("web")))

    described = kubectl("describe", "endpoints.modelplane.dev", "web").stdout

    assert re.search(r"^Name:\s+web$", described, re.M)
    assert re.search(r"^Kind:\s+Endpoint$", described, re.M)
    assert re.search(r"Model:\s+smollm2", described)


def test_kubectl_delete_removes_the_object(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = write(tmp_path, endpoint("web"))
    kubectl("apply", "-f", manifest)

    deleted = kubectl("delete", "-f", manifest)

    assert deleted.stdout.strip() == 'endpoint.modelplane.dev "web" deleted'
    missing = kubectl("get", "endpoints.modelplane.dev", "web", check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr


def test_kubectl_explain_describes_a_field(kubectl: Kubectl) -> None:
    explained = kubectl("explain", "endpoint.spec").stdout

    assert re.search(r"^KIND:\s+Endpoint$", explained, re.M)
    assert re.search(r"^GROUP:\s+modelplane.dev$", explained, re.M)
    assert re.search(r"^\s+model\s+<string> -required-$", explained, re.M)


def test_kubectl_api_resources_lists_the_kinds(kubectl: Kubectl) -> None:
    listed = kubectl("api-resources", "--api-group=modelplane.dev").stdout

    rows = {line.split()[0]: line for line in listed.splitlines()[1:]}
    assert "endpoints" in rows and "Endpoint" in rows["endpoints"]
    assert "modelplane.dev/v1alpha1" in rows["models"]
