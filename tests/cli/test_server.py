"""``modelplane server`` and ``modelplane node`` alone (SQLite, one process each), and the plan of
``up --scale-out``; the scaled-out shape on PostgreSQL is tests/e2e/test_scaleout.py."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from tests.e2e._proc import free_port

from modelplane.cli import cli
from modelplane.cli._launch import _service_account_key, plan
from modelplane.cli._options import UpOptions
from modelplane.server import ServiceAccountTokens
from modelplane.store import open_store

from ._platform import clean_env, modelplane_command, run_cli, wait_for


def _start(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    command = modelplane_command(*args, "--port", str(port), "--home", str(tmp_path / "home"))
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env()
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}: {proc.communicate()[0]}")
        try:
            return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(f"{args[0]} ready", ready, timeout=60)
    return proc, url


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, out


def test_a_server_alone_leads_says_so_in_metrics_and_drains_on_sigterm(tmp_path: Path) -> None:
    proc, url = _start(tmp_path, "server", "--lease-duration", "3")
    try:
        leads = re.compile(r"^modelplane_controller_leader\{[^}]*\} 1$", re.M)
        wait_for("the lease", lambda: leads.search(httpx.get(f"{url}/metrics").text))
        assert httpx.get(f"{url}/apis/modelplane.dev/v1alpha1/models").status_code == 200
        assert "/metrics" in httpx.get(f"{url}/openapi.json", timeout=30).json()["paths"]
    finally:
        code, out = _stop(proc)
    assert code == 0, out
    assert "Modelplane server is up" in out
    assert out.rstrip().endswith("Modelplane stopped.")


def test_a_node_publishes_its_node_answers_probes_and_stops_on_sigterm(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'mp.db'}"
    args = ("node", "--node-name", "gpu-box-7", "--database-url", db)
    proc, url = _start(tmp_path, *args)
    try:
        assert httpx.get(f"{url}/healthz").text == "ok"
        assert 'modelplane_ready{node="gpu-box-7"} 1' in httpx.get(f"{url}/metrics").text
    finally:
        code, out = _stop(proc)
    assert code == 0, out
    assert f"Modelplane node gpu-box-7 is up; probes at {url}" in out
    assert out.rstrip().endswith("Modelplane node stopped.")
    store = open_store(db, encryption_key_file=str(tmp_path / "home" / "encryption.key"))
    try:
        assert store.get("Node", "", "gpu-box-7")["metadata"]["name"] == "gpu-box-7"
    finally:
        store.close()


def _options(**changes: object) -> UpOptions:
    base: dict[str, object] = dict(
        host="127.0.0.1", port=8470, home="h", database_url="postgresql://db/x",
        tls_cert_file=None, tls_private_key_file=None, encryption_key_file=None,
        upstream_allow=("api.example.com",), allow_loopback_upstreams=False, paths=("m.yaml",),
        inventories=(), model_roots=(), model_signing_key=None, max_body_bytes=None,
        audit_retention=None, log_level="warning", servers=2, gateways=2, agent_workers=1,
    )  # fmt: skip
    base.update(changes)
    return UpOptions(**base)  # type: ignore[arg-type]


def test_the_scale_out_plan_counts_ports_up_and_passes_each_process_its_options() -> None:
    auth = {"token_file": "tokens", "oidc_issuer_url": None, "oidc_client_id": None}
    children = plan(_options(), auth)
    assert [(c.name, c.url) for c in children] == [
        ("server-1", "http://127.0.0.1:8470"),
        ("server-2", "http://127.0.0.1:8471"),
        ("node", "http://127.0.0.1:8472"),
        ("gateway-1", "http://127.0.0.1:8473"),
        ("gateway-2", "http://127.0.0.1:8474"),
        ("agent-worker-1", "http://127.0.0.1:8475"),
    ]
    by = {c.name: c.args for c in children}
    assert by["server-1"][-2:] == ["-f", "m.yaml"] and "-f" not in by["server-2"]
    for name in ("server-1", "server-2", "gateway-1"):
        assert by[name][by[name].index("--token-file") + 1] == "tokens"
        assert "--upstream-allow" in by[name]
    assert "--token-file" not in by["node"] and "--token-file" not in by["agent-worker-1"]
    worker = by["agent-worker-1"]
    assert worker[worker.index("--model-base-url") + 1] == "http://127.0.0.1:8473"
    assert worker[worker.index("--port") + 1] == "8475"  # its probes


def test_with_authentication_every_process_but_the_node_shares_one_service_account_key(
    tmp_path: Path,
) -> None:
    # given up --scale-out with a token file and no key of its own
    home = tmp_path / "home"
    auth = {"token_file": "tokens", "oidc_issuer_url": None}
    key = _service_account_key(home, auth)
    # then a key is made in the home, readable by its owner only, and kept across starts
    assert key == str(home / "service-account.key")
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    made = Path(key).read_bytes()
    assert _service_account_key(home, auth) == key and Path(key).read_bytes() == made
    # and the servers, gateways and agent workers are all given it (the node calls no model)
    children = plan(_options(home=str(home)), {**auth, "service_account_key_file": key})
    for child in children:
        given = "--service-account-key-file" in child.args
        assert given == (child.name != "node"), child
    # and the tokens one signs, another verifies (the agent worker signs, a gateway verifies)
    signer, verifier = ServiceAccountTokens.from_file(key), ServiceAccountTokens.from_file(key)
    token = signer.token("team-a", "assistant")
    assert verifier.principal(token).name == "system:serviceaccount:team-a:assistant"


def test_without_authentication_no_service_account_key_is_made(tmp_path: Path) -> None:
    assert _service_account_key(tmp_path, {"token_file": None, "oidc_issuer_url": None}) is None
    assert not (tmp_path / "service-account.key").exists()


@pytest.mark.parametrize("count", [0, 1])
def test_port_0_gives_each_process_a_free_port_of_its_own(count: int) -> None:
    children = plan(_options(port=0, servers=2, gateways=count), {})
    urls = [c.url for c in children if c.url]
    assert len(urls) == 3 + count + 1 and len(set(urls)) == len(urls)  # and one agent worker
    assert all(not u.endswith(":0") for u in urls)


def test_a_node_name_that_is_no_dns_name_is_refused(tmp_path: Path) -> None:
    result = run_cli("node", "--node-name", "GPU_Box", "--home", str(tmp_path))
    assert result.exit_code == 2
    assert "--node-name" in result.output and "RFC 1123 subdomain" in result.output


def test_a_node_on_a_busy_port_says_so(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        command = modelplane_command("node", "--port", str(port), "--home", str(tmp_path))
        command += ["--database-url", f"sqlite:///{tmp_path / 'mp.db'}"]
        result = subprocess.run(
            command, capture_output=True, text=True, env=clean_env(), timeout=60
        )
    assert result.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_counts_of_scale_out_are_refused_without_it(tmp_path: Path) -> None:
    result = run_cli("up", "--gateways", "3", "--home", str(tmp_path))
    assert result.exit_code == 2
    assert "--gateways go with --scale-out" in result.output


@pytest.mark.parametrize("url", [None, "sqlite:///x.db"])
def test_scale_out_needs_postgresql(url: str | None, tmp_path: Path) -> None:
    args = ["up", "--scale-out", "--home", str(tmp_path)]
    args += ["--database-url", url] if url else []
    env = {"MODELPLANE_DATABASE_URL": ""}
    result = CliRunner().invoke(cli, args, env=env, standalone_mode=False)
    assert isinstance(result.exception, Exception)
    assert "--scale-out needs --database-url postgresql://" in str(result.exception)


def test_gauges_are_written_in_prometheus_text_one_type_line_per_metric() -> None:
    from modelplane.cli._probes import render_gauges

    text = render_gauges({'a{x="1"}': 1.0, 'a{x="2"}': 0.0, "b": 2.5})
    assert text == '# TYPE a gauge\na{x="1"} 1\na{x="2"} 0\n# TYPE b gauge\nb 2.5\n'
