"""MCP tools for real (the example stdio server, official SDK) and models through a fake
OpenAI-compatible upstream (a hosted provider stands outside the project)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelplane.agents import Decision, InstanceRef, ManualClock, Runtime
from modelplane.api._toolserver import ToolServerSpec

from ._harness import passivate_all, run, spec, url, wait_result, wait_status

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "agent"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


def _geo(log: Path) -> dict[str, Any]:
    """The Agent's side of the tool: it names the operator's ToolServer ``geo``."""
    return {"name": "geo", "transport": "stdio", "server": "geo"}


def _catalogue(log: Path) -> Callable[[str], ToolServerSpec | None]:
    """The operator's side: ToolServer ``geo`` starts the example server, logging its calls."""
    geo = ToolServerSpec(
        command=sys.executable,
        args=[str(EXAMPLES / "mcp_server.py")],
        env={"MCP_EXAMPLE_CALL_LOG": str(log)},
    )
    return {"geo": geo}.get


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_tool_calls_reach_the_real_mcp_server_once_even_across_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    agent = spec("tool_handlers:geographer", tools=[_geo(log)])

    async def main() -> None:
        # given an instance that called two MCP tools and now waits for a person
        async with Runtime(url(tmp_path), tool_servers=_catalogue(log)) as rt:
            rt.define("default", "geo", agent)
            rt.instances.create("default", "geo", "g1", {"country": "Japan"})
            info = await wait_status(rt, "geo", "g1", ("waiting_input",), timeout=30)
            assert info["prompt"] == "is {'result': 'Tokyo'} right?"
        # when the runtime is gone and a new one replays the turn to deliver the answer
        async with Runtime(url(tmp_path), tool_servers=_catalogue(log)) as rt:
            rt.define("default", "geo", agent)
            rt.instances.give_input("default", "geo", "g1", "yes")
            info = await wait_status(rt, "geo", "g1", timeout=30)
            # then the journaled results came back and the server ran each tool exactly once
            assert info["status"] == "completed", info
            assert info["result"] == {
                "capital": {"result": "Tokyo"},
                "sum": {"result": 5},
                "answer": "yes",
            }
            assert _calls(log) == ['lookup_capital {"country": "Japan"}', 'add {"a": 2, "b": 3}']
            # and each call's authorization is in the audit trail, once
            audit = rt.instances.audit("default", "geo", "g1")
            decisions = [(a["action"], a["detail"]["tool"]) for a in audit if "tool" in a["action"]]
            assert decisions == [("tool.allow", "lookup_capital"), ("tool.allow", "add")]
            assert all(
                a["actor"] == "instance:default/geo/g1" for a in audit if "tool" in a["action"]
            )

    run(main)


def test_a_denied_tool_call_fails_with_the_reason_audited_and_never_reaches_the_server(
    tmp_path: Path,
) -> None:
    log = tmp_path / "calls.log"

    def authorize(
        instance: InstanceRef, server: str, tool: str, arguments: Mapping[str, Any]
    ) -> Decision:
        if tool == "lookup_capital" and arguments.get("country") == "Kenya":
            return Decision(False, "policy geo-restricted: lookups for Kenya need approval")
        return Decision(True, "allowed by the test policy")

    async def main() -> None:
        # given an authorization hook that denies lookups for Kenya
        async with Runtime(url(tmp_path), authorizer=authorize, tool_servers=_catalogue(log)) as rt:
            rt.define("default", "geo", spec("tool_handlers:geographer", tools=[_geo(log)]))
            # when an instance asks for it
            rt.instances.create("default", "geo", "k1", {"country": "Kenya"})
            info = await wait_status(rt, "geo", "k1", timeout=30)
            # then it fails with the reason, the denial is audited, and the server never ran
            assert info["status"] == "failed"
            assert "denied: policy geo-restricted: lookups for Kenya need approval" in info["error"]
            audit = rt.instances.audit("default", "geo", "k1")
            denied = [a for a in audit if a["action"] == "tool.deny"]
            assert len(denied) == 1
            assert denied[0]["detail"] == {
                "server": "geo",
                "tool": "lookup_capital",
                "arguments": {"country": "Kenya"},
                "reason": "policy geo-restricted: lookups for Kenya need approval",
            }
            assert _calls(log) == []

    run(main)


class _Upstream:
    """A fake OpenAI-compatible provider on a free loopback port; records every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                upstream.requests.append({"path": self.path, "body": body})
                last = next(m for m in reversed(body["messages"]) if m["role"] == "user")
                reply = {
                    "id": f"chatcmpl-{len(upstream.requests)}",
                    "object": "chat.completion",
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": f"re: {last['content']}"},
                            "finish_reason": "stop",
                        }
                    ],
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    yield server
    server.close()


def test_example_assistant_talks_to_the_model_uses_the_tool_and_sleeps_durably(
    tmp_path: Path, upstream: _Upstream
) -> None:
    log = tmp_path / "calls.log"
    clock = ManualClock()
    agent = spec("assistant:Assistant", models=["smollm2"], tools=[_geo(log)])

    async def main() -> None:
        # given the example assistant, a model behind the gateway URL and the example MCP server
        async with Runtime(
            url(tmp_path),
            clock=clock,
            model_base_url=upstream.url,
            tool_servers=_catalogue(log),
        ) as rt:
            rt.define("default", "assistant", agent)
            rt.instances.create("default", "assistant", "a1", {"model": "smollm2", "pause": 60})
            await wait_status(rt, "assistant", "a1", ("idle",))
            # when a person asks a question
            rt.instances.send("default", "assistant", "a1", "What is the capital of Japan?")
            # then the turn calls the tool and the model, then sleeps on its durable timer
            info = await wait_status(rt, "assistant", "a1", ("waiting",), timeout=30)
            assert info["wakeAt"] == clock.now() + 60
            await passivate_all(rt)
        assert len(upstream.requests) == 1
        request = upstream.requests[0]
        assert request["path"] == "/v1/chat/completions"
        assert request["body"]["model"] == "smollm2" and request["body"]["max_tokens"] == 64
        assert "the capital of Japan is Tokyo" in request["body"]["messages"][0]["content"]
        assert request["body"]["messages"][-1] == {
            "role": "user",
            "content": "What is the capital of Japan?",
        }
        # and after a restart, when the timer is due, the turn ends without calling either again
        async with Runtime(
            url(tmp_path),
            clock=clock,
            model_base_url=upstream.url,
            tool_servers=_catalogue(log),
        ) as rt:
            rt.define("default", "assistant", agent)
            clock.advance(61)
            info = await wait_result(
                rt, "assistant", "a1", {"answer": "re: What is the capital of Japan?", "turn": 1}
            )
            assert info["status"] == "idle"
            assert rt.instances.get("default", "assistant", "a1")["memoryLength"] == 2
        assert len(upstream.requests) == 1
        assert _calls(log) == ['lookup_capital {"country": "japan"}']

    run(main)
