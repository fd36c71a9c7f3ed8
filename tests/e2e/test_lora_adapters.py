"""LoRA adapters end to end: a peft adapter of SmolLM2 made in the test, imported as a Model
version (``adapterOf``), served through `modelplane up` next to its base, unloaded and reloaded by
editing the Model.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess
from tests.serving._lora import MAX_TOKENS, PROMPT, make_adapter, peft_answer

from modelplane.control import get_condition
from modelplane.serving import ArtifactStore

pytestmark = pytest.mark.slow

API = "/apis/modelplane.dev/v1alpha1/namespaces/default"


@pytest.fixture(scope="module")
def served(
    smollm2: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, Path, dict[str, Any]]]:
    folder, digest = smollm2
    tmp = tmp_path_factory.mktemp("lora")
    home = tmp / "home"
    store = ArtifactStore(home)
    gguf = store.import_path(next(folder.parent.glob("*.gguf")))
    store.adopt_conversion(gguf, folder)
    adapter = make_adapter(folder, tmp / "sql", seed=0)
    # as `modelplane models import` does: the adapter is found by digest from now on
    adapter_digest = store.import_path(adapter).digest
    model = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "smollm2", "namespace": "default"},
        "spec": {
            "versions": [
                {
                    "name": "sql",
                    "source": "sql/",
                    "format": "peft",
                    "adapterOf": "v1",
                    "digest": adapter_digest,
                },
                {"name": "v1", "source": "smollm2/", "format": "safetensors", "digest": digest},
            ]
        },
    }
    endpoint = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Endpoint",
        "metadata": {"name": "smollm2", "namespace": "default"},
        "spec": {"model": "smollm2"},
    }
    up = UpProcess(home).start()
    try:
        with httpx.Client(base_url=up.url, timeout=180) as client:
            for plural, obj in (("models", model), ("endpoints", endpoint)):
                r = client.post(f"{API}/{plural}", json=obj)
                assert r.status_code == 201, r.text
            wait_until(lambda: _ready(client), timeout=180, what="Endpoint smollm2 Ready")
            yield client, adapter, model
    finally:
        up.stop()


def _ready(client: httpx.Client) -> bool:
    status = client.get(f"{API}/endpoints/smollm2").json().get("status") or {}
    return (get_condition(status, "Ready") or {}).get("status") == "True"


def _complete(client: httpx.Client, model: str) -> httpx.Response:
    body = {"model": model, "prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0}
    return client.post("/v1/completions", json=body)


def _answer_once_registered(client: httpx.Client, model: str) -> str:
    """The text once the node agent registered the adapter with the replica (a 404 until then)."""

    def answered() -> str | None:
        r = _complete(client, model)
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        return str(r.json()["choices"][0]["text"])

    return wait_until(answered, timeout=60, what=f"an answer from {model}")


def _held(client: httpx.Client) -> list[str]:
    replicas = (client.get(f"{API}/endpoints/smollm2").json().get("status") or {}).get("replicas")
    return [a for r in replicas or [] for a in r.get("adapters") or []]


def _set_versions(client: httpx.Client, versions: list[dict[str, Any]]) -> None:
    current = client.get(f"{API}/models/smollm2").json()
    current["spec"]["versions"] = versions
    r = client.put(f"{API}/models/smollm2", json=current)
    assert r.status_code == 200, r.text


def test_adapter_answers_as_peft_does_and_unloads_and_reloads(
    served: tuple[httpx.Client, Path, dict[str, Any]], smollm2: tuple[Path, str]
) -> None:
    client, adapter, model = served
    # when the base model and its adapter answer the same prompt greedily through the gateway
    base = _answer_once_registered(client, "smollm2")
    by_endpoint = _answer_once_registered(client, "smollm2:sql")
    by_name = _answer_once_registered(client, "sql")
    # then the adapter answers as peft itself does, which is not what the base model says
    expected = peft_answer(smollm2[0], adapter)
    assert by_endpoint == by_name == expected
    assert base != expected
    # and the replica's status says it holds the adapter (what routing prefers)
    wait_until(lambda: _held(client) == ["sql"], timeout=30, what="status to list the adapter")
    # when the adapter is removed from the Model, the replica unloads it and its names are 404s
    versions = copy.deepcopy(model["spec"]["versions"])
    _set_versions(client, versions[1:])
    wait_until(lambda: _complete(client, "smollm2:sql").status_code == 404, timeout=60, what="404")
    wait_until(lambda: not _held(client), timeout=30, what="status to drop the adapter")
    assert _complete(client, "smollm2").status_code == 200
    # when it is added back, it is loaded again and answers as before
    _set_versions(client, versions)
    assert _answer_once_registered(client, "smollm2:sql") == expected
