"""apply, get, describe, delete and version against a real ``modelplane up`` (shared by the module)."""

from __future__ import annotations

import hashlib
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml
from click.testing import Result
from tests.server.conftest import serving

from modelplane.cli._apply import apply_manifests, read_manifests
from modelplane.cli._client import Client
from modelplane.cli._context import Settings
from modelplane.server import create_app
from modelplane.store import open_store

from ._platform import LineReader, UpServer, spawn, wait_for

Mp = Callable[..., Result]

GROUP = "modelplane.dev/v1alpha1"


def upstream_model(name: str, *, task: str = "chat", labels: str = "{}") -> str:
    return f"""\
apiVersion: {GROUP}
kind: Model
metadata:
  name: {name}
  labels: {labels}
spec:
  task: {task}
  versions:
  - name: v1
    format: upstream
    source: https://api.example.com/v1
"""


def local_model(name: str, source: str, digest: str) -> str:
    return f"""\
apiVersion: {GROUP}
kind: Model
metadata:
  name: {name}
spec:
  versions:
  - name: v1
    format: safetensors
    source: {source}
    digest: {digest}
"""


def models_url(platform: UpServer, ns: str, name: str = "") -> str:
    url = f"{platform.url}/apis/{GROUP}/namespaces/{ns}/models"
    return f"{url}/{name}" if name else url


def get_json(mp: Mp, *args: str) -> dict:
    result = mp("get", *args, "-o", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def ready_condition(mp: Mp, name: str) -> dict | None:
    result = mp("get", "model", name, "-o", "json")
    if result.exit_code != 0:
        return None
    for condition in json.loads(result.stdout).get("status", {}).get("conditions", []):
        if condition["type"] == "Ready":
            return condition
    return None


# -- apply ----------------------------------------------------------------------------------------


def test_apply_creates_then_leaves_unchanged_then_configures(mp: Mp, tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(upstream_model("chat"))

    created = mp("apply", "-f", str(path))
    again = mp("apply", "-f", str(path))
    path.write_text(upstream_model("chat", task="completion"))
    changed = mp("apply", "-f", str(path))

    assert (created.exit_code, created.stdout) == (0, "model.modelplane.dev/chat created\n")
    assert (again.exit_code, again.stdout) == (0, "model.modelplane.dev/chat unchanged\n")
    assert (changed.exit_code, changed.stdout) == (0, "model.modelplane.dev/chat configured\n")
    stored = get_json(mp, "model", "chat")
    assert stored["spec"]["task"] == "completion"
    assert stored["metadata"]["generation"] == 2


def test_apply_reports_an_invalid_object_with_its_line_and_applies_the_rest(
    mp: Mp, tmp_path: Path
) -> None:
    # given a folder (with a subfolder) holding two valid manifests and an invalid one
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text(upstream_model("first"))
    (tmp_path / "b-bad.yaml").write_text(upstream_model("bad", task="chatt"))
    (tmp_path / "sub" / "c.yml").write_text(upstream_model("third"))

    # when the folder is applied
    result = mp("apply", "-f", str(tmp_path))

    # then the invalid field is named with file:line:col, the others are created, exit code 1
    assert result.exit_code == 1
    bad = tmp_path / "b-bad.yaml"
    assert f'error: model.modelplane.dev/bad ({bad}:1:1): Model "bad" is invalid' in result.stderr
    assert "spec.task: must be one of" in result.stderr
    assert f"({bad}:7:3)" in result.stderr
    assert result.stdout.splitlines() == [
        "model.modelplane.dev/first created",
        "model.modelplane.dev/third created",
    ]
    assert "Traceback" not in result.output
    names = mp("get", "models", "-o", "name").stdout.split()
    assert names == ["model.modelplane.dev/first", "model.modelplane.dev/third"]


def test_apply_reads_several_documents_from_stdin(mp: Mp) -> None:
    text = upstream_model("one") + "---\n" + upstream_model("two")

    result = mp("apply", "-f", "-", input=text)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "model.modelplane.dev/one created",
        "model.modelplane.dev/two created",
    ]


def test_relative_artifact_paths_are_found_in_the_servers_model_roots_not_beside_the_manifest(
    mp: Mp, tmp_path: Path, ns: str, model_root: Path
) -> None:
    # given an artifact in the folder the operator lets the server read models from
    (model_root / ns).mkdir()
    (model_root / ns / "w.safetensors").write_bytes(b"weights")
    digest = "sha256:" + hashlib.sha256(b"weights").hexdigest()
    # and a manifest elsewhere naming it relative to that root (and a decoy beside the manifest)
    (tmp_path / ns).mkdir()
    (tmp_path / ns / "w.safetensors").write_bytes(b"decoy")
    (tmp_path / "model.yaml").write_text(local_model("local", f"{ns}/w.safetensors", digest))

    # when it is applied
    result = mp("apply", "-f", str(tmp_path / "model.yaml"))

    # then no client folder is recorded, and the controller verifies the root's artifact
    assert result.exit_code == 0, result.output
    annotations = get_json(mp, "model", "local")["metadata"].get("annotations") or {}
    assert "modelplane.dev/source-dir" not in annotations
    ready = wait_for("the Model to be verified", lambda: ready_condition(mp, "local"))
    assert (ready["status"], ready["reason"]) == ("True", "DigestVerified")


class _CountingRequests:
    """ASGI middleware: every HTTP request the server receives, as (method, path)."""

    def __init__(self, app: Any, seen: list[tuple[str, str]]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append((scope["method"], scope["path"]))
        await self.app(scope, receive, send)


def test_apply_sends_one_request_per_object_whether_it_creates_changes_or_not(
    tmp_path: Path,
) -> None:
    # given a server that counts the requests it receives, and ten objects in one manifest
    seen: list[tuple[str, str]] = []
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    app = create_app(store)
    app.add_middleware(_CountingRequests, seen=seen)
    path = tmp_path / "models.yaml"
    names = [f"m{i}" for i in range(10)]
    try:
        with serving(app) as url, Client(url) as client:
            s = Settings(server=url)
            for task, action in (
                ("chat", "created"),
                ("chat", "unchanged"),
                ("completion", "configured"),
            ):
                path.write_text("---\n".join(upstream_model(n, task=task) for n in names))
                seen.clear()
                outcomes: list[Any] = []
                apply_manifests(client, read_manifests([str(path)])[0], s, report=outcomes.append)

                # then each object took one server-side apply, and says what it did
                assert [o.action for o in outcomes] == [action] * len(names)
                assert len(seen) == len(names), seen
                assert {method for method, _ in seen} == {"PATCH"}
    finally:
        store.close()


def test_a_field_another_manager_set_is_a_conflict_naming_its_line_until_forced(
    mp: Mp, platform: UpServer, ns: str, tmp_path: Path
) -> None:
    # given a Model applied, then its task changed by another writer (kubectl edit, say)
    path = tmp_path / "model.yaml"
    path.write_text(upstream_model("contested"))
    assert mp("apply", "-f", str(path)).exit_code == 0
    edited = httpx.patch(
        models_url(platform, ns, "contested"),
        params={"fieldManager": "kubectl-edit"},
        json={"spec": {"task": "completion"}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert edited.status_code == 200, edited.text

    # when the manifest is applied again with another value of that field
    path.write_text(upstream_model("contested", task="embedding"))
    refused = mp("apply", "-f", str(path))

    # then it is refused, naming the field, its line, the other manager and the way out
    assert refused.exit_code == 1
    assert "1 conflict" in refused.stderr and "--force-conflicts" in refused.stderr
    assert f'.spec.task: conflict with "kubectl-edit" ({path}:7:3)' in refused.stderr
    assert get_json(mp, "model", "contested")["spec"]["task"] == "completion"

    # and with --force-conflicts the manifest's value wins
    forced = mp("apply", "-f", str(path), "--force-conflicts")
    assert (forced.exit_code, forced.stdout) == (0, "model.modelplane.dev/contested configured\n")
    assert get_json(mp, "model", "contested")["spec"]["task"] == "embedding"


def test_a_label_left_out_of_the_manifest_is_removed_on_the_next_apply(
    mp: Mp, tmp_path: Path
) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(upstream_model("labelled", labels="{team: a, tier: gold}"))
    mp("apply", "-f", str(path))

    path.write_text(upstream_model("labelled", labels="{team: a}"))
    result = mp("apply", "-f", str(path))

    assert result.stdout == "model.modelplane.dev/labelled configured\n"
    assert get_json(mp, "model", "labelled")["metadata"]["labels"] == {"team": "a"}


def test_a_server_dry_run_reports_what_would_happen_and_stores_nothing(
    mp: Mp, tmp_path: Path
) -> None:
    # given one valid and one invalid manifest (an error only the server knows: the merged object)
    (tmp_path / "a.yaml").write_text(upstream_model("trial"))
    (tmp_path / "b.yaml").write_text(upstream_model("wrong", task="chatt"))

    # when they are applied with --dry-run=server
    result = mp("apply", "-f", str(tmp_path), "--dry-run=server")

    # then the valid one would be created, the invalid one is named with its line; nothing stored
    assert result.exit_code == 1
    assert result.stdout == "model.modelplane.dev/trial created (server dry run)\n"
    assert f"({tmp_path / 'b.yaml'}:7:3)" in result.stderr
    assert mp("get", "models", "-o", "name").stdout == ""


# -- get ------------------------------------------------------------------------------------------


def test_get_prints_a_table_with_the_kind_columns_ready_and_age(mp: Mp) -> None:
    mp("apply", "-f", "-", input=upstream_model("alpha") + "---\n" + upstream_model("beta"))
    wait_for("alpha to be ready", lambda: ready_condition(mp, "alpha"))
    wait_for("beta to be ready", lambda: ready_condition(mp, "beta"))

    result = mp("get", "models")

    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "TASK", "LATEST", "READY", "AGE"]
    assert [row.split()[:4] for row in rows] == [
        ["alpha", "chat", "v1", "True"],
        ["beta", "chat", "v1", "True"],
    ]
    assert all(row.split()[4].endswith("s") for row in rows)
    assert all(line == line.rstrip() for line in result.stdout.splitlines())


def test_get_output_formats(mp: Mp, ns: str) -> None:
    mp("apply", "-f", "-", input=upstream_model("alpha") + "---\n" + upstream_model("beta"))

    one = get_json(mp, "model", "alpha")
    many = get_json(mp, "models")
    as_yaml = yaml.safe_load(mp("get", "mdl", "-o", "yaml").stdout)
    names = mp("get", "models", "-o", "name").stdout

    assert (one["kind"], one["metadata"]["name"], one["metadata"]["namespace"]) == (
        "Model",
        "alpha",
        ns,
    )
    assert many["kind"] == "List"
    assert [o["metadata"]["name"] for o in many["items"]] == ["alpha", "beta"]
    assert as_yaml["kind"] == "List" and len(as_yaml["items"]) == 2
    assert names == "model.modelplane.dev/alpha\nmodel.modelplane.dev/beta\n"


def test_get_with_a_label_selector_shows_only_matching_objects(mp: Mp) -> None:
    mp(
        "apply",
        "-f",
        "-",
        input=upstream_model("gpu", labels="{tier: gpu}")
        + "---\n"
        + upstream_model("cpu", labels="{tier: cpu}"),
    )

    result = mp("get", "models", "-l", "tier=gpu", "-o", "name")

    assert result.stdout == "model.modelplane.dev/gpu\n"


def test_get_all_namespaces_adds_the_namespace_column(mp: Mp, ns: str) -> None:
    mp("apply", "-f", "-", input=upstream_model("everywhere"))

    result = mp("get", "models", "-A")

    header, *rows = result.stdout.splitlines()
    assert header.split()[:2] == ["NAMESPACE", "NAME"]
    assert [ns, "everywhere"] in [row.split()[:2] for row in rows]


def test_get_of_several_kinds_prints_a_table_per_kind(mp: Mp) -> None:
    mp("apply", "-f", "-", input=upstream_model("both"))
    wait_for("an event about the model", lambda: mp("get", "events", "-o", "name").stdout)

    result = mp("get", "models,events")

    assert result.exit_code == 0, result.output
    tables = result.stdout.split("\n\n")
    assert len(tables) == 2
    assert "model.modelplane.dev/both" in tables[0]
    assert tables[1].startswith("NAME") and "event.modelplane.dev/both." in tables[1]


def test_get_of_a_missing_object_is_an_error(mp: Mp, ns: str) -> None:
    result = mp("get", "model", "ghost")

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and "ghost" in result.stderr


def test_get_watch_streams_a_row_per_change_until_interrupted(
    mp: Mp, platform: UpServer, ns: str
) -> None:
    # given a watcher (a real process) that printed the existing model
    mp("apply", "-f", "-", input=upstream_model("before"))
    watcher = spawn(["--server", platform.url, "-n", ns, "get", "models", "-w"])
    try:
        assert watcher.stdout is not None
        lines = LineReader(watcher.stdout)
        lines.until(lambda line: line.startswith("before"))

        # when a model is created
        mp("apply", "-f", "-", input=upstream_model("after"))

        # then a row for it arrives, and Ctrl-C ends the watch cleanly
        row = lines.until(lambda line: line.startswith("after"))
        assert row.split()[:2] == ["after", "chat"]
        assert lines.lines[0].split()[:2] == ["NAME", "TASK"]
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(15) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(10)


def test_get_watch_ends_on_ctrl_c_even_when_started_with_sigint_ignored(
    mp: Mp, platform: UpServer, ns: str
) -> None:
    # given a watcher started as a shell without job control starts `cmd &`: SIGINT ignored
    mp("apply", "-f", "-", input=upstream_model("present"))
    args = ["--server", platform.url, "-n", ns, "get", "models", "-w"]
    watcher = spawn(args, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert watcher.stdout is not None
        LineReader(watcher.stdout).until(lambda line: line.startswith("present"))
        # when it gets SIGINT, then it ends cleanly all the same (as kubectl does)
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(15) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(10)


def test_get_watch_only_prints_changes_not_the_existing_objects(
    mp: Mp, platform: UpServer, ns: str
) -> None:
    # given an existing model and a watcher of changes only
    mp("apply", "-f", "-", input=upstream_model("old"))
    args = ["--server", platform.url, "-n", ns, "get", "models", "--watch-only", "-o", "name"]
    watcher = spawn(args)
    try:
        assert watcher.stdout is not None
        lines = LineReader(watcher.stdout)

        # when another model keeps changing (until the watcher, connecting meanwhile, sees it)
        seq = iter(range(1_000_000))

        def change_is_printed() -> str | None:
            mp("apply", "-f", "-", input=upstream_model("new", labels=f"{{seq: '{next(seq)}'}}"))
            return lines.next(timeout=0.5)

        wait_for("a change to be printed", change_is_printed)

        # then only the changing model is printed, never the untouched one
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(15) == 0
        lines.drain()
        assert set(lines.lines) == {"model.modelplane.dev/new"}
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(10)


# -- describe -------------------------------------------------------------------------------------


def test_describe_shows_spec_conditions_and_events(mp: Mp, model_root: Path, ns: str) -> None:
    # given a model whose artifact does not match its digest
    artifact = model_root / f"{ns}.bin"
    artifact.write_bytes(b"not the weights")
    wrong = "sha256:" + "0" * 64
    mp("apply", "-f", "-", input=local_model("mismatch", str(artifact), wrong))
    wait_for("the Model to be refused", lambda: ready_condition(mp, "mismatch"))
    wait_for("an event about it", lambda: mp("get", "events", "-o", "name").stdout)

    # when it is described
    result = mp("describe", "model", "mismatch")

    # then the metadata, the spec, the Ready condition and the event are shown
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Name:             mismatch" in text
    assert f"Namespace:        {ns}" in text
    assert f"    digest: {wrong}" in text
    conditions = text.split("Conditions:\n", 1)[1].split("Events:", 1)[0].splitlines()
    assert conditions[0].split() == ["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]
    assert conditions[1].split()[:3] == ["Ready", "False", "DigestMismatch"]
    events = text.split("Events:\n", 1)[1].splitlines()
    assert events[0].split() == ["TYPE", "REASON", "AGE", "COUNT", "FROM", "MESSAGE"]
    assert events[1].split()[:2] == ["Warning", "DigestMismatch"]


def test_describe_of_a_missing_object_is_an_error(mp: Mp) -> None:
    result = mp("describe", "model", "ghost")

    assert result.exit_code == 1
    assert "ghost" in result.stderr


# -- delete ---------------------------------------------------------------------------------------


def test_delete_removes_objects_and_reports_missing_ones(mp: Mp) -> None:
    mp("apply", "-f", "-", input=upstream_model("doomed"))

    result = mp("delete", "model", "doomed", "ghost")

    assert result.exit_code == 1
    assert result.stdout == "model.modelplane.dev/doomed deleted\n"
    assert "ghost" in result.stderr
    assert mp("get", "model", "doomed").exit_code == 1


def test_delete_by_manifest(mp: Mp, tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(upstream_model("m1") + "---\n" + upstream_model("m2"))
    mp("apply", "-f", str(path))

    result = mp("delete", "-f", str(path))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "model.modelplane.dev/m1 deleted",
        "model.modelplane.dev/m2 deleted",
    ]
    assert mp("get", "models", "-o", "name").stdout == ""


def test_delete_wait_returns_once_the_finalizers_are_gone(
    mp: Mp, platform: UpServer, ns: str
) -> None:
    # given a model held by a finalizer
    held = upstream_model("held").replace("  labels: {}\n", "  finalizers: [example.com/hold]\n")
    mp("apply", "-f", "-", input=held)

    # when it is deleted with --wait (a real process)
    deleter = spawn(["--server", platform.url, "-n", ns, "delete", "model", "held", "--wait"])
    try:
        wait_for(
            "the deletion mark",
            lambda: get_json(mp, "model", "held")["metadata"].get("deletionTimestamp"),
        )
        assert deleter.poll() is None, "delete --wait returned while the finalizer remained"

        # and the finalizer is removed
        patch = {"metadata": {"finalizers": []}}
        response = httpx.patch(
            models_url(platform, ns, "held"),
            content=json.dumps(patch),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status_code == 200, response.text

        # then the command returns, having seen the object go
        out, err = deleter.communicate(timeout=15)
        assert deleter.returncode == 0, err
        assert out.decode() == "model.modelplane.dev/held deleted\n"
    finally:
        if deleter.poll() is None:
            deleter.kill()
            deleter.wait(10)
    assert mp("get", "model", "held").exit_code == 1


# -- version --------------------------------------------------------------------------------------


def test_version_shows_the_server_and_its_store(mp: Mp, platform: UpServer) -> None:
    result = mp("version")

    assert result.exit_code == 0
    assert "Client Version: 0.1.0" in result.stdout
    assert "Server Version: 0.1.0 (store: sqlite)" in result.stdout


def test_the_namespace_may_follow_the_command_as_in_kubectl(mp: Mp, ns: str) -> None:
    mp("apply", "-f", "-", input=upstream_model("here"))

    # the fixture put -n before the command; one after it wins
    elsewhere = mp("get", "models", "-n", "default", "-o", "name")
    here = mp("get", "models", "--namespace", ns, "-o", "name")

    assert "model.modelplane.dev/here" not in elsewhere.stdout
    assert here.stdout == "model.modelplane.dev/here\n"


def test_cluster_scoped_objects_ignore_the_namespace(mp: Mp, ns: str) -> None:
    # a DeviceClass as a Kubernetes cluster serves it; names are cluster-wide, so make it unique
    device_class = f"""\
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata:
  name: gpu.{ns}.example.com
spec:
  selectors:
  - cel:
      expression: device.driver == 'gpu.example.com'
"""
    created = mp("apply", "-f", "-", input=device_class)
    again = mp("apply", "-f", "-", input=device_class)
    table = mp("get", "deviceclass", f"gpu.{ns}.example.com")

    assert created.stdout == f"deviceclass.resource.k8s.io/gpu.{ns}.example.com created\n"
    assert again.stdout == f"deviceclass.resource.k8s.io/gpu.{ns}.example.com unchanged\n"
    header, row = table.stdout.splitlines()
    assert header.split() == ["NAME", "AGE"]
    assert row.split()[0] == f"gpu.{ns}.example.com"


def test_apply_refuses_an_object_of_another_namespace_than_the_one_given(mp: Mp, ns: str) -> None:
    elsewhere = upstream_model("stray").replace(
        "  name: stray\n", "  name: stray\n  namespace: other\n"
    )

    result = mp("apply", "-f", "-", input=elsewhere)

    assert result.exit_code == 1
    assert "does not match --namespace" in result.stderr
    assert "--namespace=other" in result.stderr
