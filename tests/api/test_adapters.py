"""Model versions that are LoRA adapters (``adapterOf``): what is accepted and what is refused."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane import api
from modelplane.api import errors

DIGEST = "sha256:" + "a" * 64


def _model(*versions: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "smollm2", "namespace": "default"},
        "spec": {"versions": list(versions)},
    }


def _version(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "source": f"{name}/", "format": "safetensors", "digest": DIGEST, **extra}


def _causes(obj: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(errors.Invalid) as caught:
        api.validate(obj)
    return {c.field: c.message for c in caught.value.causes}


def test_an_adapter_of_a_base_version_is_accepted() -> None:
    obj = _model(_version("sql", format="peft", adapterOf="v1"), _version("v1"))
    out = api.validate(obj)
    assert out["spec"]["versions"][0]["adapterOf"] == "v1"
    assert out["spec"]["versions"][0]["format"] == "peft"


@pytest.mark.parametrize(
    ("versions", "field", "words"),
    [
        (
            [_version("sql", format="peft", adapterOf="v9"), _version("v1")],
            "spec.versions[0].adapterOf",
            "does not have",
        ),
        (
            [
                _version("a", format="peft", adapterOf="v1"),
                _version("b", format="peft", adapterOf="a"),
                _version("v1"),
            ],
            "spec.versions[1].adapterOf",
            "itself an adapter",
        ),
        (
            [_version("sql", format="peft"), _version("v1")],
            "spec.versions[0].adapterOf",
            "set adapterOf",
        ),
        (
            [_version("sql", format="gguf", adapterOf="v1"), _version("v1")],
            "spec.versions[0].format",
            "peft",
        ),
        (
            [_version("v1"), _version("sql", format="peft", adapterOf="v1")],
            "spec.versions[1].adapterOf",
            "list adapters before it",
        ),
        (
            [
                _version("sql", format="peft", adapterOf="up"),
                {"name": "up", "source": "https://api.example.com/v1", "format": "upstream"},
            ],
            "spec.versions[0].adapterOf",
            "upstream",
        ),
    ],
    ids=["unknown-base", "adapter-of-adapter", "peft-without-base", "wrong-format", "last", "up"],
)
def test_a_bad_adapter_is_refused_at_its_field(
    versions: list[dict[str, Any]], field: str, words: str
) -> None:
    causes = _causes(_model(*versions))
    assert field in causes, causes
    assert words in causes[field]
