"""``modelplane.testing``: the fake OpenAI provider a user's tests (and ours) start in place of one."""

from __future__ import annotations

import subprocess
import sys

import httpx

from modelplane.testing import FakeUpstream

_CHAT = {"model": "m", "messages": [{"role": "user", "content": "ping"}]}


def test_a_users_test_starts_the_fake_provider_from_modelplane_testing_and_steers_it() -> None:
    # given the fake provider, imported from the public testing package, answering "pong"
    with FakeUpstream("provider", reply="pong") as provider:
        # when a chat completion is posted to it
        ok = httpx.post(f"{provider.url}/chat/completions", json=_CHAT, timeout=10)
        # and the test then makes it fail
        provider.mode = "fail"
        failed = httpx.post(f"{provider.url}/chat/completions", json=_CHAT, timeout=10)
    # then the first call got the reply in OpenAI's shape, the second a 500,
    assert ok.status_code == 200
    assert ok.json()["choices"][0]["message"]["content"] == "pong"
    assert failed.status_code == 500
    # and the fake kept the bodies it received, for the test to assert on
    assert provider.bodies[-1]["messages"][0]["content"] == "ping"


def test_python_m_modelplane_testing_upstream_prints_its_url_and_answers() -> None:
    # given the fake run as its own process, as the gateway benchmark runs it
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelplane.testing.upstream", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # when its first line (the base URL) is read and a completion posted there
        url = proc.stdout.readline().strip()
        answer = httpx.post(f"{url}/chat/completions", json=_CHAT, timeout=10)
    finally:
        proc.terminate()
        proc.wait(10)
    # then it answered as an OpenAI provider does
    assert url.startswith("http://127.0.0.1:")
    assert answer.status_code == 200
    assert answer.json()["object"] == "chat.completion"
