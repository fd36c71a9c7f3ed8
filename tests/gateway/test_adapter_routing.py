"""Requests for a LoRA adapter: its names resolve, and replicas holding it are preferred."""

from __future__ import annotations

import collections

from tests.control._wait import wait_until
from tests.gateway._env import DIGEST, Env

from modelplane.gateway import EndpointRoute
from modelplane.testing import FakeUpstream


def _serve_with_adapter(env: Env, fakes: list[FakeUpstream], holders: set[int]) -> None:
    """Model ``m`` (``v1`` and its adapter ``sql``), Endpoint ``ep`` on ``fakes``; the replicas
    at ``holders`` report holding ``sql`` as the node agent publishes it."""
    version = {"source": "/models/x", "format": "safetensors", "digest": DIGEST}
    env.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": "m", "namespace": "default"},
            "spec": {
                "versions": [
                    {**version, "name": "sql", "format": "peft", "adapterOf": "v1"},
                    {**version, "name": "v1"},
                ]
            },
        }
    )
    created = env.create(
        {
            "apiVersion": "modelplane.dev/v1alpha1",
            "kind": "Endpoint",
            "metadata": {"name": "ep", "namespace": "default"},
            "spec": {"model": "m"},
        }
    )
    created["status"] = {
        "replicas": [
            {
                "name": f"ep-v1-{i}",
                "version": "v1",
                "node": "local",
                "url": fake.url,
                "ready": True,
                **({"adapters": ["sql"]} if i in holders else {}),
            }
            for i, fake in enumerate(fakes)
        ]
    }
    env.store.update_status(created)
    env.wait_routed("ep", len(fakes))
    wait_until(lambda: env.gw.gateway.table.lookup("ep:sql"), what="the adapter's route")


def _served_by(env: Env, model: str, n: int) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for _ in range(n):
        r = env.chat(model)
        assert r.status_code == 200, r.text
        seen[r.headers["x-modelplane-replica"]] += 1
    return seen


def test_adapter_requests_go_to_the_replica_that_holds_it(env: Env) -> None:
    # given three replicas of the base version, of which only the second holds the adapter
    fakes = [env.fake(), env.fake(), env.fake()]
    _serve_with_adapter(env, fakes, holders={1})
    # when requests name the adapter as endpoint:adapter and by its own name
    by_endpoint = _served_by(env, "ep:sql", 6)
    by_name = _served_by(env, "sql", 6)
    # then all go to the holder, and the worker is asked for the adapter the client named
    assert by_endpoint == {"ep-v1-1": 6}
    assert by_name == {"ep-v1-1": 6}
    assert fakes[1].bodies[-1]["model"] == "sql"
    # while requests for the base model still spread over every replica
    assert len(_served_by(env, "ep", 6)) == 3


def test_adapter_requests_spread_when_no_replica_holds_it_yet(env: Env) -> None:
    fakes = [env.fake(), env.fake()]
    _serve_with_adapter(env, fakes, holders=set())
    route = env.gw.gateway.table.lookup("ep:sql")
    assert isinstance(route, EndpointRoute)
    assert route.adapter == "sql"
    assert [v.name for v in route.versions] == ["v1"]
    assert len(_served_by(env, "ep:sql", 6)) == 2


def test_a_name_that_is_no_adapter_is_a_404(env: Env) -> None:
    _serve_with_adapter(env, [env.fake()], holders={0})
    r = env.chat("ep:nope")
    assert r.status_code == 404
    assert "ep:nope" in r.json()["error"]["message"]
