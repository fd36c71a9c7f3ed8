"""``modelplane up``: starting, stopping, refusing to start, authentication, ``-f``, PostgreSQL."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from ._platform import UpServer, port_is_free, run_cli, wait_for

MODEL = """\
apiVersion: modelplane.dev/v1alpha1
kind: Model
metadata:
  name: {name}
spec:
  versions:
  - name: v1
    format: upstream
    source: https://api.example.com/v1
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_up_says_where_it_listens_and_stops_cleanly_on_a_signal(
    tmp_path: Path, sig: signal.Signals
) -> None:
    # given a running platform
    home = tmp_path / "home"
    up = UpServer(home).start().wait_ready()

    # when it is interrupted
    code = up.stop(sig, timeout=15)

    # then it exits 0, having said where everything was, and the port is free again
    assert code == 0, up.stderr
    out = up.stdout
    assert f"API:      {up.url}\n" in out
    assert f"OpenAPI:  {up.url}/openapi.json\n" in out
    assert f"Store:    sqlite://{home}/modelplane.db\n" in out
    assert f"Home:     {home}\n" in out
    assert "Press Ctrl-C to stop." in out
    assert "Traceback" not in up.stderr
    assert port_is_free(up.port)


def test_up_on_a_busy_port_says_so_in_one_sentence(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        up = UpServer(tmp_path / "home", port=port).start()
        code = up.wait_exit()

    assert code == 1
    lines = up.stderr.strip().splitlines()
    assert len(lines) == 1, up.stderr
    assert lines[0].startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "--port" in lines[0]


def test_up_on_a_corrupt_database_says_so_in_one_sentence(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "modelplane.db").write_bytes(b"this is not a SQLite database" * 200)

    up = UpServer(home).start()
    code = up.wait_exit()

    assert code == 1
    lines = up.stderr.strip().splitlines()
    assert len(lines) == 1, up.stderr
    assert lines[0].startswith("error: ") and "modelplane.db" in lines[0]


def test_up_with_a_token_file_requires_one_of_its_tokens(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(
        "# who may use the API\ns3cret-token,alice,uid-1,modelplane:namespace:default\n"
    )
    up = UpServer(tmp_path / "home", "--token-file", str(tokens)).start().wait_ready()
    try:
        without = run_cli("--server", up.url, "get", "models")
        wrong = run_cli("--server", up.url, "--token", "guess", "get", "models")
        with_token = run_cli("--server", up.url, "--token", "s3cret-token", "get", "models")
        with_file = run_cli(
            "get", "models", env={"MODELPLANE_SERVER": up.url, "MODELPLANE_TOKEN_FILE": str(tokens)}
        )
        # a token file named on the command line beats a token from the environment
        file_over_env = run_cli(
            "--server",
            up.url,
            "get",
            "models",
            "--token-file",
            str(tokens),
            env={"MODELPLANE_TOKEN": "stale"},
        )
    finally:
        up.stop()

    assert without.exit_code == 1
    assert without.stderr.startswith("error: ")
    assert "token" in without.stderr and "--token" in without.stderr  # says what to pass
    assert wrong.exit_code == 1
    assert "token" in wrong.stderr
    assert (with_token.exit_code, with_token.stderr) == (
        0,
        "No resources found in default namespace.\n",
    )
    assert with_file.exit_code == 0, with_file.stderr
    assert file_over_env.exit_code == 0, file_over_env.stderr


def test_up_applies_the_given_manifests_once_it_listens(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "a.yaml").write_text(MODEL.format(name="preloaded"))
    up = UpServer(tmp_path / "home", "-f", str(manifests)).start().wait_ready()
    try:
        listed = wait_for(
            "the manifest to be applied",
            lambda: run_cli("--server", up.url, "get", "models", "-o", "name").stdout,
        )
    finally:
        up.stop()

    assert listed == "model.modelplane.dev/preloaded\n"
    assert "model.modelplane.dev/preloaded created" in up.stdout


@pytest.mark.postgres
def test_up_on_postgresql_serves_the_same_commands(tmp_path: Path, pg_url: str) -> None:
    up = UpServer(tmp_path / "home", "--database-url", pg_url).start().wait_ready()
    try:
        applied = run_cli("--server", up.url, "apply", "-f", "-", input=MODEL.format(name="pg"))
        listed = run_cli("--server", up.url, "get", "models", "-o", "name")
        version = run_cli("--server", up.url, "version")
    finally:
        code = up.stop()

    assert applied.stdout == "model.modelplane.dev/pg created\n", applied.output
    assert listed.stdout == "model.modelplane.dev/pg\n"
    assert "(store: postgresql)" in version.stdout
    assert "Store:    postgresql://" in up.stdout
    assert code == 0
