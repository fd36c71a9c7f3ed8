"""Reading manifests: documents, lists, files and folders; malformed input gets file:line:column."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from modelplane import api
from modelplane.api import errors

ENDPOINT = """\
apiVersion: modelplane.dev/v1alpha1
kind: Endpoint
metadata:
  name: {name}
spec:
  model: llama
"""


def test_documents_are_read_in_order_and_empty_ones_skipped() -> None:
    text = (
        "---\n"
        + ENDPOINT.format(name="a")
        + "---\n---\n# only a comment\n---\n"
        + ENDPOINT.format(name="b")
    )
    manifests = api.load_manifests(text, "two.yaml")
    assert [m.obj["metadata"]["name"] for m in manifests] == ["a", "b"]
    assert [m.index for m in manifests] == [0, 1]
    assert (manifests[0].line, manifests[0].column) == (2, 1)
    assert manifests[1].where == "two.yaml:12:1"


def test_json_is_read_as_well_even_with_tabs() -> None:
    text = '{\n\t"apiVersion": "modelplane.dev/v1alpha1",\n\t"kind": "Endpoint",\n\t"metadata": {"name": "j"}, "spec": {"model": "m"}}'
    (manifest,) = api.load_manifests(text, "e.json")
    assert manifest.obj["metadata"]["name"] == "j"
    assert api.validate(manifest.obj, manifest=manifest)["spec"]["model"] == "m"


def test_a_list_is_flattened_into_its_items() -> None:
    text = """\
apiVersion: v1
kind: List
items:
- apiVersion: modelplane.dev/v1alpha1
  kind: Endpoint
  metadata: {name: a}
  spec: {model: m}
- apiVersion: modelplane.dev/v1alpha1
  kind: Model
  metadata: {name: m}
  spec: {versions: [{name: v1, source: x, format: upstream}]}
"""
    manifests = api.load_manifests(text, "list.yaml")
    assert [m.obj["kind"] for m in manifests] == ["Endpoint", "Model"]
    assert [m.line for m in manifests] == [4, 8]


def test_items_of_a_typed_list_take_kind_and_api_version_from_it() -> None:
    text = """\
apiVersion: resource.k8s.io/v1
kind: DeviceClassList
items:
- metadata: {name: gpu.nvidia.com}
  spec: {}
"""
    (manifest,) = api.load_manifests(text)
    assert manifest.obj["kind"] == "DeviceClass"
    assert manifest.obj["apiVersion"] == "resource.k8s.io/v1"


def test_timestamps_stay_strings_as_on_the_wire() -> None:
    text = ENDPOINT.format(name="t").replace(
        "  name: t\n", "  name: t\n  creationTimestamp: 2025-01-01T00:00:00Z\n"
    )
    (manifest,) = api.load_manifests(text)
    assert manifest.obj["metadata"]["creationTimestamp"] == "2025-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("text", "where", "hint"),
    [
        ("kind: Endpoint\nspec:\n\tmodel: x\n", "bad.yaml:3:1", "tabs"),
        ("kind: Endpoint\nmetadata:\n  name: a\n   labels: b: c\n", "bad.yaml:4:", "indentation"),
        ('kind: "Endpoint\n', "bad.yaml:", "quote"),
        ("items: [a, b\n", "bad.yaml:2:1", ""),
        ("a: *undefined\n", "bad.yaml:1:4", "anchor"),
        ("a: !!python/object:os.system {}\n", "bad.yaml:1:4", "tags"),
        ("a: b\n\x07\n", "bad.yaml:2:1", "character"),
    ],
)
def test_malformed_yaml_is_a_bad_request_with_file_line_column_and_a_hint(
    text: str, where: str, hint: str
) -> None:
    with pytest.raises(errors.BadRequest) as caught:
        api.load_manifests(text, "bad.yaml")
    assert caught.value.message.startswith(where)
    assert hint in caught.value.message


def test_document_that_is_not_a_mapping_is_invalid_with_its_location() -> None:
    text = ENDPOINT.format(name="a") + "---\n- just\n- a list\n"
    with pytest.raises(errors.Invalid) as caught:
        api.load_manifests(text, "f.yaml")
    (cause,) = caught.value.causes
    assert cause.location == "f.yaml:8:1"
    assert "document 2 is a list" in cause.message


def test_document_without_kind_is_invalid_naming_what_to_add() -> None:
    with pytest.raises(errors.Invalid) as caught:
        api.load_manifests("apiVersion: modelplane.dev/v1alpha1\nmetadata: {name: a}\n", "f.yaml")
    (cause,) = caught.value.causes
    assert cause.field == "kind"
    assert "kind: Endpoint" in cause.message
    assert cause.location == "f.yaml:1:1"


def test_alias_bomb_is_refused_before_it_expands() -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(errors.BadRequest, match="expands to more than"):
        api.load_manifests("\n".join(lines) + "\n", "bomb.yaml")


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(errors.BadRequest, match="recursive"):
        api.load_manifests("a: &x [1, *x]\n", "loop.yaml")


def test_absurd_nesting_is_refused_not_crashed() -> None:
    with pytest.raises(errors.BadRequest, match="nested"):
        api.load_manifests("a: " + "[" * 3000 + "]" * 3000 + "\n", "deep.yaml")


def test_integer_too_long_to_convert_is_a_bad_request() -> None:
    with pytest.raises(errors.BadRequest, match="cannot read a value"):
        api.load_manifests("a: " + "9" * 5000 + "\n", "big.yaml")


def test_folders_are_read_recursively_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.yml").write_text(ENDPOINT.format(name="two"))
    (tmp_path / "a.yaml").write_text(ENDPOINT.format(name="one"))
    (tmp_path / "c.json").write_text(
        '{"apiVersion": "modelplane.dev/v1alpha1", "kind": "Endpoint",'
        ' "metadata": {"name": "three"}, "spec": {"model": "m"}}'
    )
    (tmp_path / "notes.txt").write_text("not a manifest")
    manifests = api.load_paths([tmp_path])
    assert [m.obj["metadata"]["name"] for m in manifests] == ["one", "two", "three"]
    assert manifests[1].source == str(tmp_path / "b" / "2.yml")


def test_dash_reads_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(ENDPOINT.format(name="piped")))
    (manifest,) = api.load_paths(["-"])
    assert manifest.source == "<stdin>"
    assert manifest.obj["metadata"]["name"] == "piped"


def test_missing_path_is_a_bad_request_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(errors.BadRequest, match=r"nope\.yaml: no such file"):
        api.load_paths([missing])


def test_file_that_is_not_utf8_is_a_bad_request(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"kind: Caf\xe9\n")
    with pytest.raises(errors.BadRequest, match="not UTF-8"):
        api.load_paths([path])


def test_empty_folder_is_a_bad_request(tmp_path: Path) -> None:
    with pytest.raises(errors.BadRequest, match="no manifests"):
        api.load_paths([tmp_path])


def test_relative_paths_resolve_against_the_manifest_folder(tmp_path: Path) -> None:
    folder = tmp_path / "deploy"
    folder.mkdir()
    (folder / "m.yaml").write_text(ENDPOINT.format(name="r"))
    (manifest,) = api.load_paths([folder / "m.yaml"])
    assert manifest.resolve_path("artifacts/v1.gguf") == str(folder / "artifacts" / "v1.gguf")
    assert manifest.resolve_path("/abs/v1.gguf") == "/abs/v1.gguf"
    assert manifest.resolve_path("s3://bucket/v1") == "s3://bucket/v1"
    (from_text,) = api.load_manifests(ENDPOINT.format(name="s"))
    assert from_text.resolve_path("artifacts/v1.gguf") == "artifacts/v1.gguf"
