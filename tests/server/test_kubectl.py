"""kubectl itself against a real ``modelplane up`` (SQLite).

Each test has a namespace of its own on one shared server, and a kubeconfig in its tmp_path.
Most tests run with authentication off over plain HTTP; the last ones run against an ``up`` with
``--token-file`` serving HTTPS (kubectl, like client-go, sends a bearer token only over HTTPS),
its certificate issued by a CA made in the test. Where kubectl is not installed the tests are
skipped saying so, except under ``CI=true``: our CI machine has it, and a skip there would hide a
failure.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.cli._platform import LineReader, UpServer, run_cli, wait_for

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


# -- with authentication, over HTTPS ----------------------------------------------------------------

TENANT_TOKEN = "tenant-token-" + uuid.uuid4().hex
ADMIN_TOKEN = "admin-token-" + uuid.uuid4().hex
#: the namespaces the tenant is a member of (a tenant reaches only its own), one per test
TENANT_NAMESPACES = [f"kubectl-tenant-{i}-{uuid.uuid4().hex[:8]}" for i in range(2)]


@dataclass(frozen=True)
class Pki:
    """A CA, and the server certificate it issued for 127.0.0.1 and localhost (PEM files)."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(folder: Path) -> Pki:
    """A CA and a server certificate signed by it, made here (nothing fetched, nothing shared)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("modelplane test CA"))
        .issuer_name(_name("modelplane test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("modelplane up"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server-key.pem")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def secure_platform(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[UpServer]:
    """``up`` with bearer tokens (a tenant, an administrator), serving HTTPS."""
    root = tmp_path_factory.mktemp("kubectl-tls")
    tokens = root / "tokens.csv"
    member_of = ",".join(f"modelplane:namespace:{n}" for n in TENANT_NAMESPACES)
    tokens.write_text(
        f'{TENANT_TOKEN},alice,u1,"{member_of}"\n{ADMIN_TOKEN},ops,u2,"system:masters"\n'
    )
    # up's own -f apply reaches it over HTTPS too: it must trust the certificate it serves
    initial = root / "initial.yaml"
    initial.write_text(endpoint("from-up"))
    server = UpServer(
        root / "home",
        "--token-file", str(tokens),
        "-f", str(initial),
        "--tls-cert-file", str(pki.cert_file),
        "--tls-private-key-file", str(pki.key_file),
        ca_file=str(pki.ca_file),
    )  # fmt: skip
    server.start().wait_ready()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tenant_kubectl(secure_platform: UpServer, pki: Pki, tmp_path: Path, ns: str) -> Kubectl:
    """kubectl as the tenant: a kubeconfig with the CA's data and a token user."""
    ca_data = base64.b64encode(pki.ca_file.read_bytes()).decode()
    path = tmp_path / "kubeconfig"
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: modelplane
  cluster: {{server: "{secure_platform.url}", certificate-authority-data: "{ca_data}"}}
users:
- name: alice
  user: {{token: "{TENANT_TOKEN}"}}
contexts:
- name: modelplane
  context: {{cluster: modelplane, user: alice, namespace: {ns}}}
current-context: modelplane
"""
    )

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None, "kubectl must be installed on CI"
        env = {**os.environ, "KUBECONFIG": str(path), "HOME": str(tmp_path)}
        done = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env, timeout=60)
        if check:
            assert done.returncode == 0, f"kubectl {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done

    return run


def test_up_with_tls_prints_an_https_address_and_applies_its_manifests_over_it(
    secure_platform: UpServer, pki: Pki
) -> None:
    assert secure_platform.url.startswith("https://")
    assert f"API:      {secure_platform.url}" in secure_platform.stdout
    admin = ("--server", secure_platform.url, "--token", ADMIN_TOKEN)
    admin += ("--certificate-authority", str(pki.ca_file))

    def applied() -> bool:
        shown = run_cli(*admin, "-n", "default", "get", "endpoints", "-o", "name")
        return shown.stdout == "endpoint.modelplane.dev/from-up\n"

    wait_for("up's -f manifest to be applied", applied)
    assert "endpoint.modelplane.dev/from-up created" in secure_platform.stdout


@pytest.mark.parametrize("ns", TENANT_NAMESPACES[:1])
def test_kubectl_works_as_a_tenant_over_https_with_a_token(
    tenant_kubectl: Kubectl, tmp_path: Path
) -> None:
    # given kubectl trusting the CA and holding a tenant's token
    manifest = write(tmp_path, endpoint("web"))

    # when it applies, reads and deletes an Endpoint
    created = tenant_kubectl("apply", "-f", manifest)
    shown = tenant_kubectl("get", "endpoints.modelplane.dev", "web", "-o", "name")
    deleted = tenant_kubectl("delete", "-f", manifest)

    # then each worked, as the tenant
    assert created.stdout.strip() == "endpoint.modelplane.dev/web created"
    assert shown.stdout.strip() == "endpoint.modelplane.dev/web"
    assert deleted.stdout.strip() == 'endpoint.modelplane.dev "web" deleted'


def test_a_tenant_cannot_write_an_admin_only_kind_with_kubectl(
    tenant_kubectl: Kubectl, tmp_path: Path
) -> None:
    tool_server = f"""apiVersion: modelplane.dev/v1alpha1
kind: ToolServer
metadata:
  name: shell-{uuid.uuid4().hex[:6]}
spec:
  command: /bin/sh
"""
    refused = tenant_kubectl("apply", "-f", write(tmp_path, tool_server), check=False)

    assert refused.returncode != 0
    assert "Forbidden" in refused.stderr or "forbidden" in refused.stderr
    assert "system:masters" in refused.stderr


def test_kubectl_with_an_unknown_token_is_refused_over_https(
    secure_platform: UpServer, pki: Pki, tmp_path: Path
) -> None:
    path = tmp_path / "kubeconfig"
    ca_data = base64.b64encode(pki.ca_file.read_bytes()).decode()
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: m
  cluster: {{server: "{secure_platform.url}", certificate-authority-data: "{ca_data}"}}
users:
- name: nobody
  user: {{token: "not-a-known-token"}}
contexts:
- name: m
  context: {{cluster: m, user: nobody}}
current-context: m
"""
    )
    assert KUBECTL is not None
    env = {**os.environ, "KUBECONFIG": str(path), "HOME": str(tmp_path)}
    done = subprocess.run(
        [KUBECTL, "get", "endpoints.modelplane.dev"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip

    assert done.returncode != 0
    assert "Unauthorized" in done.stderr or "provide credentials" in done.stderr, done.stderr


@pytest.mark.parametrize("ns", TENANT_NAMESPACES[1:])
def test_the_cli_trusts_the_servers_ca_when_told_and_only_then(
    secure_platform: UpServer, pki: Pki, ns: str, tmp_path: Path
) -> None:
    manifest = write(tmp_path, endpoint("cli-web"))
    common = ("--server", secure_platform.url, "--token", TENANT_TOKEN, "-n", ns)

    # without the CA: one error line saying what to do
    untrusted = run_cli(*common, "apply", "-f", manifest)
    assert untrusted.exit_code == 1
    assert "is not trusted" in untrusted.stderr and "--certificate-authority" in untrusted.stderr
    assert "Traceback" not in untrusted.output

    # with --certificate-authority, and with MODELPLANE_CA_FILE
    flagged = run_cli(*common, "--certificate-authority", str(pki.ca_file), "apply", "-f", manifest)
    assert (flagged.exit_code, flagged.stdout) == (
        0,
        "endpoint.modelplane.dev/cli-web created\n",
    ), flagged.output
    by_env = run_cli(
        *common, "get", "endpoints", "-o", "name", env={"MODELPLANE_CA_FILE": str(pki.ca_file)}
    )
    assert by_env.stdout == "endpoint.modelplane.dev/cli-web\n", by_env.output
