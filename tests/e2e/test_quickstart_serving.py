"""The quickstart, end to end: `modelplane up -f examples/quickstart/` serves SmolLM2 through /v1.

One real `modelplane up` for the module (its home seeded with the imported model, as `./dev up`
does), real worker processes, HTTP over loopback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess

from modelplane.cli import cli
from modelplane.control import get_condition
from modelplane.serving import ArtifactStore

pytestmark = pytest.mark.slow

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"
API = "/apis/modelplane.dev/v1alpha1/namespaces/default"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def up(smollm2: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    # the home holds the model as `modelplane models import --from-pip ... --to-safetensors` left it
    folder, _ = smollm2
    home = tmp_path_factory.mktemp("quickstart") / "home"
    store = ArtifactStore(home)
    gguf = store.import_path(next(folder.parent.glob("*.gguf")))
    store.adopt_conversion(gguf, folder)
    proc = UpProcess(home, extra=["-f", str(QUICKSTART)]).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def client(up: UpProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=up.url, timeout=120) as c:
        yield c


def _ready(client: httpx.Client, path: str) -> dict[str, Any] | None:
    r = client.get(f"{API}/{path}")
    if r.status_code != 200:
        return None
    condition = get_condition(r.json().get("status") or {}, "Ready") or {}
    return condition if condition.get("status") == "True" else None


@pytest.fixture(scope="module")
def serving(client: httpx.Client) -> httpx.Client:
    """The client, once the quickstart's SmolLM2 Endpoint has a ready replica."""
    wait_until(lambda: _ready(client, "endpoints/smollm2"), timeout=90, what="smollm2 Ready")
    return client


def test_quickstart_model_is_ready_verified_from_the_artifact_store(serving: httpx.Client) -> None:
    # given the quickstart applied, whose Model's source is not on disk but was imported by digest
    # then the Model controller verified the stored copy and reports the Model Ready
    condition = wait_until(lambda: _ready(serving, "models/smollm2"), what="Model smollm2 Ready")
    assert condition["status"] == "True"
    # and the scale-to-zero Endpoint is ready without a replica
    polish = serving.get(f"{API}/endpoints/smollm2-polish").json()
    assert (get_condition(polish["status"], "Ready") or {}).get("status") == "True"
    # and the scheduler allocated the device demo's claim a GPU of the simulated node
    claim_path = "/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/quickstart-gpu"

    def allocation() -> dict[str, Any] | None:
        found = (serving.get(claim_path).json().get("status") or {}).get("allocation")
        return found if isinstance(found, dict) else None

    (result,) = wait_until(allocation, what="the claim allocated")["devices"]["results"]
    assert result["pool"] == "sim-gpu-node"


def test_chat_completion_from_smollm2_answers_a_factual_question(serving: httpx.Client) -> None:
    # when a client asks SmolLM2 a factual question, greedily, on the API's own port
    body = {"model": "smollm2", "messages": QUESTION, "temperature": 0, "max_tokens": 24}
    r = serving.post("/v1/chat/completions", json=body)
    # then the answer names Paris, served by the Endpoint's replica
    assert r.status_code == 200, r.text
    assert "Paris" in r.json()["choices"][0]["message"]["content"]
    assert r.headers["x-modelplane-endpoint"] == "smollm2"
    assert r.json()["usage"]["completion_tokens"] > 0


def test_streamed_chat_completion_yields_sse_chunks_ending_with_done(
    serving: httpx.Client,
) -> None:
    # when the same question is asked with stream: true
    body = {
        "model": "smollm2",
        "messages": QUESTION,
        "temperature": 0,
        "max_tokens": 24,
        "stream": True,
    }
    with serving.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
    # then the chunks carry the answer piece by piece, and the stream ends with [DONE]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert len(chunks) > 2
    assert "Paris" in text


def test_graph_chains_two_endpoints_through_the_same_port(serving: httpx.Client) -> None:
    # given the Graph draft-then-polish: smollm2, then smollm2-polish (scaled to zero until asked)
    since = time.time()
    body = {"model": "draft-then-polish", "messages": QUESTION, "temperature": 0, "max_tokens": 16}
    # when a client asks the Graph's model name
    r = serving.post("/v1/chat/completions", json=body)
    # then it answers (the second step's cold start was held, not failed) as the Graph
    assert r.status_code == 200, r.text
    assert r.headers["x-modelplane-graph"] == "draft-then-polish"
    assert r.json()["model"] == "draft-then-polish"
    # and the polish step, told by its system message how to rewrite the draft, keeps the fact
    assert "Paris" in r.json()["choices"][0]["message"]["content"]
    # and both steps ran: each endpoint served one successful request during the call
    for endpoint in ("smollm2", "smollm2-polish"):
        samples = serving.get(
            "/v1/_modelplane/samples", params={"endpoint": endpoint, "since": since}
        ).json()["versions"]
        served = [s for per_version in samples.values() for s in per_version if not s["error"]]
        assert len(served) == 1, (endpoint, samples)
    # and the usage counts both steps' tokens: more than the draft alone (greedy, so the same
    # request straight to the draft's endpoint gives the draft's tokens)
    draft = serving.post("/v1/chat/completions", json={**body, "model": "smollm2"})
    assert r.json()["usage"]["completion_tokens"] > draft.json()["usage"]["completion_tokens"]


def test_the_readmes_first_command_answers_paris_with_the_models_own_sampling(
    serving: httpx.Client, up: UpProcess
) -> None:
    # when a new user runs the README's first command as written (no temperature, no length)
    result = CliRunner().invoke(
        cli, ["--server", up.url, "chat", "smollm2", "What is the capital of France?"]
    )
    # then the model's generation config (greedy for SmolLM2) gives a short, right answer
    assert result.exit_code == 0, result.output
    assert "Paris" in result.output
    assert len(result.output) < 400, result.output
