"""WebAssembly tools of an Agent: a module of its bundle, pinned by digest, called as a journaled
tool step in the WASM sandbox; a sandbox failure is a tool error the handler catches, and the
instance goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import wasmtime

from modelplane.agents import Runtime
from modelplane.agents._bundles import BundleStore, digest_of, pack
from modelplane.agents._loader import AgentCode
from modelplane.sandbox import digest_of as module_digest
from modelplane.sandbox.probes import ECHO_WAT, RUNAWAY_WAT

from ._harness import run, spec, url, wait_status

HANDLER = """
from modelplane.agents import StepFailed


async def handler(ctx, input):
    echoed = await ctx.call_tool("echo", "run", {"city": input["city"]})
    try:
        await ctx.call_tool("runaway", "run", {})
        stopped = None
    except StepFailed as exc:
        stopped = str(exc)
    return {"echoed": echoed, "stopped": stopped}
"""


def _bundle(tmp_path: Path) -> tuple[str, list[dict[str, Any]]]:
    """A bundle with the handler and two WAT tools; the Agent's tools entries for them."""
    folder = tmp_path / "src"
    (folder / "tools").mkdir(parents=True)
    (folder / "wasm_tool_agent.py").write_text(HANDLER)
    tools = []
    for name, source in (("echo", ECHO_WAT), ("runaway", RUNAWAY_WAT)):
        (folder / "tools" / f"{name}.wat").write_text(source)
        digest = module_digest(bytes(wasmtime.wat2wasm(source)))
        tools.append(
            {"name": name, "transport": "wasm", "module": f"tools/{name}.wat", "digest": digest}
        )
    data = pack(folder)
    BundleStore(tmp_path / "home").put(digest_of(data), data)
    return digest_of(data), tools


def test_an_agent_calls_a_wasm_tool_and_survives_one_that_runs_away(tmp_path: Path) -> None:
    bundle, tools = _bundle(tmp_path)
    agent = spec("wasm_tool_agent:handler", bundle=bundle, tools=tools)
    code = AgentCode(packages=(), bundles=BundleStore(tmp_path / "home"))

    async def main() -> None:
        async with Runtime(url(tmp_path), code=code) as rt:
            rt.define("default", "wasm", agent)
            rt.instances.create("default", "wasm", "w1", {"city": "Paris"})
            info = await wait_status(rt, "wasm", "w1", timeout=30)
            # the echo tool answered; the runaway one was stopped and the handler went on
            assert info["status"] == "completed", info
            assert info["result"]["echoed"] == {"city": "Paris"}
            assert "deadline" in info["result"]["stopped"]
            audit = rt.instances.audit("default", "wasm", "w1")
            tools_called = [a["detail"]["tool"] for a in audit if a["action"] == "tool.allow"]
            assert tools_called == ["run", "run"]

    run(main)


def test_a_module_that_is_not_the_pinned_digest_is_refused(tmp_path: Path) -> None:
    bundle, tools = _bundle(tmp_path)
    tools[0]["digest"] = "sha256:" + "0" * 64
    agent = spec("wasm_tool_agent:handler", bundle=bundle, tools=tools)
    code = AgentCode(packages=(), bundles=BundleStore(tmp_path / "home"))

    async def main() -> None:
        async with Runtime(url(tmp_path), code=code) as rt:
            rt.define("default", "wasm", agent)
            rt.instances.create("default", "wasm", "w2", {"city": "Paris"})
            info = await wait_status(rt, "wasm", "w2", timeout=30)
            assert info["status"] == "failed", info
            assert "digest mismatch" in str(info), info

    run(main)
