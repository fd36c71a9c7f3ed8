"""End to end through a real `modelplane up`: a canary that answers worse, not slower, is rolled
back on its eval score; one that answers as well rolls forward.

Both versions of the Model are hosted upstreams (``modelplane.testing.FakeUpstream``, the stand-in
for a hosted provider) answering at the same speed; the Endpoint ships an eval set, the gateway
scores every answer while the rollout runs, and the rollout controller reads the scores with the
samples at ``MODELPLANE_GATEWAY_URL``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess
from tests.rollout.test_e2e import API, AUTH, _endpoint, _Load, _roll_out_v2

from modelplane.testing import FakeUpstream

pytestmark = pytest.mark.slow

GROUP = "modelplane.dev/v1alpha1"
#: the prompt the load sends, and what a right answer to it holds
CASE = {"prompt": "hi", "expect": "regex", "answer": "(?i)^hello"}


def _apply(client: httpx.Client, v1: FakeUpstream, v2: FakeUpstream) -> None:
    hosted = [{"name": f.name, "format": "upstream", "source": f.url} for f in (v1, v2)]
    model = {"apiVersion": GROUP, "kind": "Model", "metadata": {"name": "m"}}
    model["spec"] = {"versions": hosted}
    endpoint = {
        "apiVersion": GROUP,
        "kind": "Endpoint",
        "metadata": {"name": "chat"},
        "spec": {
            "model": "m",
            "traffic": [{"version": "v1", "weight": 100}],
            "rollout": {
                "steps": [25, 50, 100],
                "analysis": {
                    "interval": "1s",
                    "minSamples": 12,
                    "eval": {"sampleRate": 1.0, "cases": [CASE]},
                },
            },
        },
    }
    assert client.post(f"{API}/models", json=model).status_code == 201
    r = client.post(f"{API}/endpoints", json=endpoint)
    assert r.status_code == 201, r.text


def _split(status: dict[str, Any]) -> dict[str, int]:
    return {t["version"]: t["weight"] for t in status.get("traffic") or []}


def _finished(client: httpx.Client) -> bool:
    state = (_endpoint(client).get("status") or {}).get("rollout") or {}
    return state.get("phase") in ("Succeeded", "RolledBack")


def _roll_out_under_load(
    up: UpProcess, v1_reply: str, v2_reply: str
) -> tuple[dict[str, Any], list[int]]:
    """Apply the Model and Endpoint, want v2 under steady traffic, and wait for the outcome:
    the Endpoint as it then stands, and the status codes the clients got."""
    with (
        FakeUpstream("v1", reply=v1_reply) as v1,
        FakeUpstream("v2", reply=v2_reply) as v2,
        httpx.Client(base_url=up.url, timeout=10, headers=AUTH) as client,
    ):
        _apply(client, v1, v2)
        with _Load(up.url) as load:
            _roll_out_v2(client)
            wait_until(lambda: _finished(client), timeout=60, what="the rollout to finish")
        return _endpoint(client), load.codes


def test_a_canary_with_wrong_answers_at_the_same_speed_is_rolled_back_on_its_eval_score(
    up: UpProcess,
) -> None:
    # given v1 answering right and v2 answering wrong, both hosted and equally fast;
    # when v2 is wanted, under steady traffic
    endpoint, codes = _roll_out_under_load(up, "Hello! How can I help?", "Goodbye.")
    # then traffic is back on v1, and the status names the eval score with its figures
    status = endpoint["status"]
    assert status["rollout"]["phase"] == "RolledBack", status["rollout"]
    assert _split(status) == {"v1": 100}
    (cond,) = [c for c in status["conditions"] if c["type"] == "Rollout"]
    assert cond["status"] == "False" and cond["reason"] == "RolledBack"
    assert "canary v2 eval score 0 vs stable v1 1" in cond["message"], cond["message"]
    # and a Warning Event says so too
    with httpx.Client(base_url=up.url, timeout=10, headers=AUTH) as client:
        events = client.get(f"{API}/events").json()["items"]
    rolled = [e for e in events if e["reason"] == "RolledBack" and e["type"] == "Warning"]
    assert rolled and "eval score" in rolled[0]["message"]
    # and every client was answered (v2's answers were wrong, not failed)
    assert codes and all(c == 200 for c in codes), set(codes)


def test_a_canary_answering_as_well_as_the_stable_rolls_forward(up: UpProcess) -> None:
    # given v2 answering as rightly as v1 (in its own words);
    # when v2 is wanted, under steady traffic
    endpoint, codes = _roll_out_under_load(up, "Hello! How can I help?", "hello there")
    # then it was judged on its scores too, passed, and takes everything
    status = endpoint["status"]
    assert status["rollout"]["phase"] == "Succeeded", status["rollout"]
    assert _split(status) == {"v2": 100}
    assert "eval score 1 vs stable v1 1" in status["rollout"]["lastAnalysis"]["reason"]
    assert codes and all(c == 200 for c in codes), set(codes)
