"""A worker loads, serves and unloads LoRA adapters at run time (real SmolLM2, adapters from peft)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelplane.serving import ArtifactStore

from ._lora import MAX_TOKENS, PROMPT, make_adapter, peft_answer
from .conftest import WorkerProcess

pytestmark = pytest.mark.slow

TOKEN = "test-token-for-the-adapter-routes"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def adapters(smollm2: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder, _ = smollm2
    tmp = tmp_path_factory.mktemp("adapters")
    home = tmp / "home"
    store = ArtifactStore(home)
    made = {
        name: make_adapter(folder, tmp / name, seed) for name, seed in (("sql", 0), ("poet", 1))
    }
    return {
        "home": home,
        "tmp": tmp,
        "folders": made,
        "digests": {name: store.import_path(path).digest for name, path in made.items()},
    }


@pytest.fixture(scope="module", params=["continuous", "rounds"])
def worker(
    request: pytest.FixtureRequest, smollm2: tuple[Path, str], adapters: dict[str, Any]
) -> Iterator[WorkerProcess]:
    folder, digest = smollm2
    args = ["--model-dir", str(folder), "--digest", digest, "--name", "smollm2"]
    args += ["--home", str(adapters["home"]), "--max-adapters", "1", "--batching", request.param]
    run = adapters["tmp"] / request.param  # a port file of its own
    run.mkdir()
    proc = WorkerProcess(
        "modelplane.serving.worker", args, run, env={"MODELPLANE_WORKER_TOKEN": TOKEN}
    )
    try:
        proc.wait_ready(timeout=120)
        yield proc
    finally:
        proc.stop()


def _base(worker: WorkerProcess) -> str:
    return worker.url.removesuffix("/v1")


def _complete(worker: WorkerProcess, model: str) -> httpx.Response:
    body = {"model": model, "prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0}
    return httpx.post(f"{worker.url}/completions", json=body, timeout=120)


def _text(worker: WorkerProcess, model: str) -> str:
    r = _complete(worker, model)
    assert r.status_code == 200, r.text
    return str(r.json()["choices"][0]["text"])


def _register(worker: WorkerProcess, adapters: dict[str, Any], name: str) -> None:
    r = httpx.put(
        f"{_base(worker)}/adapters/{name}",
        json={"digest": adapters["digests"][name]},
        headers=AUTH,
        timeout=30,
    )
    assert r.status_code == 200, r.text


def test_adapter_routes_refuse_a_caller_without_the_agents_token(
    worker: WorkerProcess, adapters: dict[str, Any]
) -> None:
    body = {"digest": adapters["digests"]["sql"]}
    r = httpx.put(f"{_base(worker)}/adapters/sql", json=body, timeout=30)
    assert r.status_code == 403
    wrong = {"authorization": "Bearer not-it"}
    r = httpx.put(f"{_base(worker)}/adapters/sql", json=body, headers=wrong, timeout=30)
    assert r.status_code == 403
    assert "sql" not in httpx.get(f"{_base(worker)}/health").json()["registeredAdapters"]


def test_an_unknown_digest_is_refused_and_nothing_registered(worker: WorkerProcess) -> None:
    body = {"digest": "sha256:" + "0" * 64}
    r = httpx.put(f"{_base(worker)}/adapters/ghost", json=body, headers=AUTH, timeout=30)
    assert r.status_code == 404
    assert "artifact store" in r.json()["error"]["message"]
    assert "ghost" not in httpx.get(f"{_base(worker)}/health").json()["registeredAdapters"]


def test_a_digest_that_is_not_one_is_refused_before_the_store_is_read(
    worker: WorkerProcess,
) -> None:
    body = {"digest": "sha256:../../models"}
    r = httpx.put(f"{_base(worker)}/adapters/ghost", json=body, headers=AUTH, timeout=30)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "digest"


def test_adapter_answers_as_peft_does_and_differs_from_the_base(
    worker: WorkerProcess, adapters: dict[str, Any], smollm2: tuple[Path, str]
) -> None:
    # given the adapter registered with the worker
    _register(worker, adapters, "sql")
    # when the base model and the adapter (by endpoint:adapter and by its own name) answer greedily
    base = _text(worker, "smollm2")
    by_endpoint = _text(worker, "smollm2:sql")
    by_name = _text(worker, "sql")
    # then the adapter's answer is peft's own for the same prompt, and not the base model's
    expected = peft_answer(smollm2[0], adapters["folders"]["sql"])
    assert by_endpoint == expected
    assert by_name == expected
    assert base != expected
    assert httpx.get(f"{_base(worker)}/health").json()["adapters"] == ["sql"]


def test_base_and_adapter_requests_batched_together_answer_as_alone(
    worker: WorkerProcess, adapters: dict[str, Any]
) -> None:
    _register(worker, adapters, "sql")
    alone = {m: _text(worker, m) for m in ("smollm2", "smollm2:sql")}
    models = ["smollm2", "smollm2:sql"] * 3
    with ThreadPoolExecutor(len(models)) as pool:
        together = list(pool.map(lambda m: _text(worker, m), models))
    assert together == [alone[m] for m in models]


def test_least_recently_used_adapter_is_unloaded_and_reloads_on_use(
    worker: WorkerProcess, adapters: dict[str, Any]
) -> None:
    # given two adapters and room for one (--max-adapters 1)
    _register(worker, adapters, "sql")
    _register(worker, adapters, "poet")
    sql = _text(worker, "smollm2:sql")
    # when the other adapter is used, the first is unloaded to make room
    poet = _text(worker, "smollm2:poet")
    assert poet != sql
    assert httpx.get(f"{_base(worker)}/health").json()["adapters"] == ["poet"]
    # then the first is loaded again on its next request and answers as before
    assert _text(worker, "smollm2:sql") == sql
    assert httpx.get(f"{_base(worker)}/health").json()["adapters"] == ["sql"]


def test_an_unregistered_adapter_is_a_404_not_the_base_models_answer(
    worker: WorkerProcess, adapters: dict[str, Any]
) -> None:
    _register(worker, adapters, "poet")
    r = httpx.delete(f"{_base(worker)}/adapters/poet", headers=AUTH, timeout=30)
    assert r.status_code == 200
    r = _complete(worker, "smollm2:poet")
    assert r.status_code == 404
    assert "does not serve" in r.json()["error"]["message"]
    assert r.json()["error"]["param"] == "model"
    assert "poet" not in httpx.get(f"{_base(worker)}/health").json()["registeredAdapters"]
