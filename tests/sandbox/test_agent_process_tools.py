"""Process tools of an Agent: a program of its bundle in the process sandbox, called as a journaled
tool step; the one host its ``hosts`` grants is reached through the runtime's forwarder, any other
is refused, and each decision is in the instance's audit trail. A failing program is a tool error
the handler catches, and the instance goes on."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from tests.agents._harness import run, spec, url, wait_status

from modelplane.agents import Runtime
from modelplane.agents._bundles import BundleStore, digest_of, pack
from modelplane.agents._loader import AgentCode
from modelplane.egress import EgressRules
from modelplane.sandbox import ProcessSandbox

FETCH = Path(__file__).parents[2] / "examples" / "quickstart" / "agent" / "tools" / "fetch.py"

HANDLER = """
from modelplane.agents import StepFailed


async def handler(ctx, input):
    results = [await ctx.call_tool("fetch", "run", {"url": u}) for u in input["urls"]]
    try:
        await ctx.call_tool("broken", "run", {})
        broken = None
    except StepFailed as exc:
        broken = str(exc)
    return {"results": results, "broken": broken}
"""


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
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _bundle(tmp_path: Path) -> tuple[str, list[dict[str, Any]]]:
    """A bundle with the handler, fetch.py and a program that fails; their tools entries."""
    folder = tmp_path / "src"
    (folder / "tools").mkdir(parents=True)
    (folder / "process_tool_agent.py").write_text(HANDLER)
    shutil.copy(FETCH, folder / "tools" / "fetch.py")
    (folder / "tools" / "broken.sh").write_text("echo 'no such city' >&2; exit 3\n")
    tools = [
        {
            "name": "fetch",
            "transport": "process",
            "command": "python3",
            "args": ["tools/fetch.py"],
            "hosts": ["127.0.0.1"],
        },
        {"name": "broken", "transport": "process", "command": "sh", "args": ["tools/broken.sh"]},
    ]
    data = pack(folder)
    BundleStore(tmp_path / "home").put(digest_of(data), data)
    return digest_of(data), tools


def _run_agent(tmp_path: Path, urls: list[str], egress: EgressRules) -> tuple[Any, Any]:
    """The finished instance and its audit trail."""
    bundle, tools = _bundle(tmp_path)
    agent = spec("process_tool_agent:handler", bundle=bundle, tools=tools)
    code = AgentCode(packages=(), bundles=BundleStore(tmp_path / "home"))

    async def main() -> tuple[Any, Any]:
        async with Runtime(url(tmp_path), code=code, egress=egress) as rt:
            rt.define("default", "proc", agent)
            rt.instances.create("default", "proc", "p1", {"urls": urls})
            info = await wait_status(rt, "proc", "p1", timeout=60)
            return info, rt.instances.audit("default", "proc", "p1")

    result: tuple[Any, Any] = run(main)
    return result


def test_a_process_tool_reaches_its_granted_host_and_is_refused_another_both_audited(
    sandbox: ProcessSandbox, tmp_path: Path, granted_host: int
) -> None:
    # given a tool granted 127.0.0.1, on a platform whose egress rules allow loopback
    urls = [f"http://127.0.0.1:{granted_host}/", f"http://localhost:{granted_host}/"]
    # when the agent fetches from it, then from a name it was not granted
    info, audit = _run_agent(tmp_path, urls, EgressRules(allow_loopback=True))
    # then the first answered and the second was refused by the grant
    assert info["status"] == "completed", info
    reached, refused = info["result"]["results"]
    assert reached == {"status": 200, "body": "hello from the granted host"}
    assert "localhost" in refused["refused"] and "not granted" in refused["refused"]
    # and each decision is audited, after the tool call's own
    network = [(a["action"], a["detail"]["host"]) for a in audit if a["action"].startswith("net")]
    assert network == [
        ("network.allow", f"127.0.0.1:{granted_host}"),
        ("network.deny", f"localhost:{granted_host}"),
    ]
    mine = [a for a in audit if a["action"].startswith(("net", "tool"))]
    assert {a["actor"] for a in mine} == {"instance:default/proc/p1"}
    # and a program that exits non-zero is a tool error the handler caught
    assert "exited with status 3" in info["result"]["broken"]
    assert "no such city" in info["result"]["broken"]


def test_a_granted_host_the_egress_rules_refuse_is_refused_and_audited(
    sandbox: ProcessSandbox, tmp_path: Path, granted_host: int
) -> None:
    # given the default egress rules (no loopback), and the tool granted 127.0.0.1
    info, audit = _run_agent(tmp_path, [f"http://127.0.0.1:{granted_host}/"], EgressRules())
    # then the grant alone does not reach it
    (refused,) = info["result"]["results"]
    assert "egress rules" in refused["refused"], refused
    denials = [a["detail"]["reason"] for a in audit if a["action"] == "network.deny"]
    assert len(denials) == 1 and "loopback" in denials[0]


@pytest.mark.parametrize(
    ("tool", "field", "says"),
    [
        ({"command": "/usr/bin/curl"}, "command", "relative path inside the Agent's bundle"),
        ({"command": "../escape.py"}, "command", "without '..'"),
        ({"command": "python3", "env": {"A": "b"}}, "env", "no environment"),
        ({"command": "python3", "hosts": ["http://x/"]}, "hosts", "is not `host` or"),
    ],
)
def test_a_process_tool_that_names_a_host_path_or_env_is_refused(
    tool: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        spec("a:b", tools=[{"name": "t", "transport": "process", **tool}])
    assert field in str(caught.value) and says in str(caught.value)


def test_a_wasm_tool_may_not_be_granted_hosts() -> None:
    wasm = {"name": "t", "transport": "wasm", "module": "t.wat", "digest": "sha256:" + "0" * 64}
    with pytest.raises(ValidationError, match="WASI preview 1 has no sockets"):
        spec("a:b", tools=[{**wasm, "hosts": ["example.com"]}])
