"""The OpenAI surface: routes, shapes, streaming, and errors in OpenAI's shape."""

from __future__ import annotations

import orjson
from tests.gateway._env import Env


def _error(response_json: dict[str, object]) -> dict[str, object]:
    error = response_json["error"]
    assert isinstance(error, dict)
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_chat_completion_is_proxied_to_a_replica(env: Env) -> None:
    # given an endpoint with one replica
    fake = env.fake("w1", reply="Paris is the capital of France.")
    env.endpoint("chat", {"v1": [fake]})
    # when a client asks for a chat completion
    r = env.chat("chat", "capital of France?")
    # then the replica's answer comes back, with where it was served
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Paris is the capital of France."
    assert r.headers["x-modelplane-version"] == "v1"
    assert fake.bodies[-1]["messages"][0]["content"] == "capital of France?"


def test_streamed_chat_is_relayed_as_sse_ending_with_done(env: Env) -> None:
    fake = env.fake("w1", reply="one two three four", chunks=4)
    env.endpoint("chat", {"v1": [fake]})
    body = {"model": "chat", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with env.client.stream("POST", "/chat/completions", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    text = "".join(orjson.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == "one two three four"


def test_completions_and_embeddings_are_proxied(env: Env) -> None:
    fake = env.fake("w1", reply="done")
    env.endpoint("text", {"v1": [fake]})
    r = env.client.post("/completions", json={"model": "text", "prompt": "say"})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "done"
    r = env.client.post("/embeddings", json={"model": "text", "input": ["a", "b"]})
    assert r.status_code == 200 and len(r.json()["data"]) == 2


def test_models_lists_endpoints_and_graphs_in_openai_list_shape(env: Env) -> None:
    fake = env.fake()
    env.endpoint("alpha", {"v1": [fake]})
    env.endpoint("beta", {"v1": [fake]}, namespace="team-a")
    env.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Graph",
            "metadata": {"name": "pipeline"},
            "spec": {"nodes": {"root": {"type": "Sequence", "steps": [{"endpoint": "alpha"}]}}},
        }
    )
    env.wait_routed("alpha", 1)

    def listed() -> list[str]:
        body = env.client.get("/models").json()
        assert body["object"] == "list"
        return [m["id"] for m in body["data"]]

    from tests.control._wait import wait_until

    ids = wait_until(lambda: listed() if "pipeline" in listed() else None, what="graph listed")
    assert ids == ["alpha", "pipeline", "team-a/beta"]


def test_unknown_model_is_404_listing_what_exists(env: Env) -> None:
    env.endpoint("alpha", {"v1": [env.fake()]})
    r = env.chat("nope")
    assert r.status_code == 404
    error = _error(r.json())
    assert error["code"] == "model_not_found" and error["param"] == "model"
    assert "alpha" in str(error["message"])


def test_malformed_requests_are_400_naming_the_field(env: Env) -> None:
    env.endpoint("alpha", {"v1": [env.fake()]})
    r = env.client.post("/chat/completions", content=b"{not json")
    assert r.status_code == 400 and _error(r.json())["code"] == "invalid_json"
    r = env.client.post("/chat/completions", json={"messages": []})
    assert r.status_code == 400 and _error(r.json())["param"] == "model"
    r = env.client.post("/chat/completions", json={"model": "alpha", "messages": "hi"})
    assert r.status_code == 400 and _error(r.json())["param"] == "messages"
    r = env.chat("alpha", max_tokens=-1)
    assert r.status_code == 400 and _error(r.json())["param"] == "max_tokens"


def test_oversized_request_is_413(env: Env) -> None:
    env.endpoint("alpha", {"v1": [env.fake()]})
    r = env.chat("alpha", "x" * (env.gw.gateway.max_body_bytes + 10))
    assert r.status_code == 413
    assert _error(r.json())["code"] == "request_too_large"


def test_unknown_path_is_404_in_openai_shape(env: Env) -> None:
    r = env.client.get("/nothing-here")
    assert r.status_code == 404
    assert "chat/completions" in str(_error(r.json())["message"])
