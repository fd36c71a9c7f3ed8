"""Commands that need no server (explain, apply --dry-run, version), and how errors are shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelplane.api import human_duration
from modelplane.store import redact_url as redact

from ._platform import free_port, run_cli

INVALID_MODEL = """\
apiVersion: modelplane.dev/v1alpha1
kind: Model
metadata:
  name: broken
spec:
  task: chatt
  versions:
  - name: v1
    format: upstream
    source: https://api.example.com/v1
"""

VALID_MODEL = """\
apiVersion: modelplane.dev/v1alpha1
kind: Model
metadata:
  name: fine
spec:
  versions:
  - name: v1
    format: upstream
    source: https://api.example.com/v1
"""


def test_explain_prints_the_fields_of_a_kind_without_a_server() -> None:
    result = run_cli("--server", f"http://127.0.0.1:{free_port()}", "explain", "model.spec")

    assert result.exit_code == 0, result.output
    assert "KIND:     Model" in result.stdout
    assert "versions" in result.stdout


def test_explain_of_an_unknown_field_names_the_valid_ones() -> None:
    result = run_cli("explain", "model.spec.flavour")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: field 'flavour' does not exist in Model.spec")
    assert "versions" in result.stderr
    assert "Traceback" not in result.output


def test_dry_run_reports_invalid_fields_with_file_line_and_column(tmp_path: Path) -> None:
    # given a folder with one valid and one invalid manifest
    (tmp_path / "a-invalid.yaml").write_text(INVALID_MODEL)
    (tmp_path / "b-valid.yaml").write_text(VALID_MODEL)

    # when it is validated (no server is running)
    result = run_cli("apply", "--dry-run", "-f", str(tmp_path))

    # then the invalid field is named with its place in the file, and the valid one passes
    assert result.exit_code == 1
    invalid = tmp_path / "a-invalid.yaml"
    assert f"error: model.modelplane.dev/broken ({invalid}:1:1)" in result.stderr
    assert "spec.task: must be one of" in result.stderr
    assert f"({invalid}:6:3)" in result.stderr
    assert "model.modelplane.dev/fine validated (dry run)" in result.stdout


def test_malformed_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("apiVersion: v1\nkind: [Model\n")

    result = run_cli("apply", "--dry-run", "-f", str(path))

    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}:")
    assert "malformed YAML" in result.stderr


def test_a_missing_manifest_path_is_an_error_naming_it(tmp_path: Path) -> None:
    result = run_cli("apply", "--dry-run", "-f", str(tmp_path / "nope.yaml"))

    assert result.exit_code == 1
    assert "nope.yaml: no such file or folder" in result.stderr


def test_an_unreachable_server_is_one_error_line_saying_what_to_do() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = run_cli("--server", url, "get", "models")

    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot reach the Modelplane server at {url}: is `modelplane up` running?"
        " set --server or MODELPLANE_SERVER\n"
    )


def test_the_server_may_be_given_by_environment_variable() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = run_cli("get", "models", env={"MODELPLANE_SERVER": url})

    assert result.exit_code == 1
    assert url in result.stderr


def test_version_says_when_the_server_is_unreachable_and_still_succeeds() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = run_cli("version", "--server", url)

    assert result.exit_code == 0
    assert "Client Version: 0.1.0" in result.stdout
    assert f"unreachable at {url}" in result.stdout


def test_an_unknown_kind_is_an_error_listing_the_known_kinds() -> None:
    result = run_cli("get", "gizmos")

    assert result.exit_code == 1
    assert "'gizmos'" in result.stderr
    assert "Model, Endpoint" in result.stderr


def test_a_command_line_mistake_exits_2_with_a_hint() -> None:
    result = run_cli("get", "models", "--colour")

    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: No such option '--colour'.",
        "Try 'modelplane get -h' for help.",
    ]


def test_names_across_all_namespaces_are_refused() -> None:
    result = run_cli("get", "model", "a", "-A")

    assert result.exit_code == 2
    assert "across all namespaces" in result.stderr


def test_the_bench_command_is_wired_to_the_store_benchmark() -> None:
    result = run_cli("bench", "--help")

    assert result.exit_code == 0
    assert "store" in result.stdout


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (200, "3m20s"),
        (180, "3m"),
        (45 * 60, "45m"),
        (2 * 3600, "120m"),
        (5 * 3600, "5h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (30 * 3600, "30h"),
        (4 * 86400, "4d"),
        (4 * 86400 + 3 * 3600, "4d3h"),
        (100 * 86400, "100d"),
        (3 * 365 * 86400, "3y"),
        (-5, "<invalid>"),
    ],
)
def test_ages_read_like_kubectl(seconds: int, shown: str) -> None:
    assert human_duration(seconds) == shown


def test_store_urls_are_shown_without_passwords() -> None:
    assert redact("postgresql://mp:s3cret@db:5432/mp") == "postgresql://mp:***@db:5432/mp"
    assert "s3cret" not in redact("postgresql://db/mp?user=mp&password=s3cret")
    assert redact("sqlite:///home/me/.modelplane/modelplane.db") == (
        "sqlite:///home/me/.modelplane/modelplane.db"
    )


def test_bench_store_prints_its_figures_as_json_on_the_last_line() -> None:
    result = run_cli("bench", "store", "-o", "json", "--quick", "--no-postgres", "--watchers", "2")

    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout.splitlines()[-1])
    assert figures["benchmark"] == "store"
    assert figures["sqlite"]["updates_per_s"] > 0
