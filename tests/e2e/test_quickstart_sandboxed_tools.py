"""The quickstart agent's sandboxed tools on a real `modelplane up`: the WebAssembly word counter
and the process tool `fetch`, which reaches the one host its Agent grants (a loopback HTTP server
this test starts; the platform allows loopback explicitly) while another is refused, each
decision in the instance's audit trail.

`up -f examples/quickstart/agent/` applies the assistant alone: these messages are answered by the
tools, not the model (the model's part is tests/e2e/test_quickstart_agent.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.control._wait import wait_until
from tests.e2e._documented import extract
from tests.e2e._proc import UpProcess

from modelplane.sandbox import ProcessSandbox, SandboxUnavailable

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
AGENT = ROOT / "examples" / "quickstart" / "agent"
INSTANCES = "/agents/default/assistant/instances"
#: the docs' commands with the sandboxed tools (docs/agents.md), run here as a user runs them
DOCUMENTED = [c for c in extract() if "assistant tools" in c.command]


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the granted host"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def granted_host() -> Iterator[int]:
    """A loopback HTTP server; its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _require_sandbox() -> None:
    try:
        ProcessSandbox().run(["/bin/true"])
    except SandboxUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc}; CI=true requires the process sandbox")
        pytest.skip(str(exc))


def _ask(client: httpx.Client, message: str, turn: int) -> str:
    """Send ``message``; the answer of the instance's turn number ``turn``."""
    r = client.post(f"{INSTANCES}/sandboxed/messages", json={"payload": message})
    assert r.status_code == 202, r.text

    def answered() -> dict[str, Any] | None:
        info: dict[str, Any] = client.get(f"{INSTANCES}/sandboxed").json()
        done = info["status"] == "idle" and info["state"].get("turns") == turn
        return info if done else None

    info = wait_until(answered, timeout=60, what=f"the answer to {message!r}")
    return str(info["result"]["answer"])


def test_quickstart_agent_calls_its_wasm_and_process_tools_and_one_host_only(
    tmp_path: Path, granted_host: int
) -> None:
    _require_sandbox()
    up = UpProcess(tmp_path / "home", extra=["-f", str(AGENT), "--allow-loopback-upstreams"])
    try:
        with httpx.Client(base_url=up.start().url, timeout=30) as client:
            # given the quickstart's assistant, applied by `up -f`
            def created() -> bool:
                r = client.post(INSTANCES, json={"id": "sandboxed", "input": {"pause": 0}})
                return r.status_code == 201

            wait_until(created, timeout=30, what="the assistant instance created")
            # when it is asked to count words: the WebAssembly tool answers
            assert _ask(client, "count the words of this short sentence", 1) == "6 words"
            # when it fetches from the granted host: the process tool reaches it
            granted = f"http://127.0.0.1:{granted_host}/"
            assert _ask(client, f"fetch {granted}", 2) == "200: hello from the granted host"
            # when it fetches from a host it was not granted: refused
            refused = _ask(client, f"fetch http://localhost:{granted_host}/", 3)
            assert refused.startswith("refused:") and "not granted" in refused, refused
            # then the audit trail holds both tool calls and both network decisions
            audit = client.get(f"{INSTANCES}/sandboxed/audit").json()["items"]
            calls = [
                (a["action"], a["detail"]["server"]) for a in audit if a["action"] == "tool.allow"
            ]
            assert calls == [("tool.allow", s) for s in ("words", "fetch", "fetch")]
            network = [
                (a["action"], a["detail"]["host"])
                for a in audit
                if a["action"].startswith("network.")
            ]
            assert network == [
                ("network.allow", f"127.0.0.1:{granted_host}"),
                ("network.deny", f"localhost:{granted_host}"),
            ]
            # and the docs' commands do the same from the CLI
            _run_documented(up)
    finally:
        up.stop()


def _run_documented(up: UpProcess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPLANE_")}
    env["MODELPLANE_SERVER"] = up.url
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)

    def shell(command: str) -> str:
        argv = [
            "bash",
            "-c",
            command.replace("modelplane ", f"{sys.executable} -m modelplane.cli ", 1),
        ]
        done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        return done.stdout

    assert len(DOCUMENTED) == 4, DOCUMENTED
    *steps, audit = DOCUMENTED
    for step in steps:
        shell(step.text)

    # the audit shows the refusal once the fetch turn has run
    def refused() -> str | None:
        out = shell(audit.text)
        return out if "network.deny" in out else None

    out = wait_until(refused, timeout=60, what="the documented fetch refused and audited")
    assert "example.com:80" in out and "words" in out and "fetch" in out, out
