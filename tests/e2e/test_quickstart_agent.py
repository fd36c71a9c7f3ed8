"""The quickstart's durable agent, end to end, across a kill -9 of the platform.

One real `modelplane up -f examples/quickstart/` (its home seeded with the imported SmolLM2, as
`./dev up` does): `up -f` uploads the assistant Agent's folder as a bundle, the runtime imports it
from there, and it calls the MCP server shipped in it through the ToolServer `geo` (a real stdio
process, official SDK) and SmolLM2 through the gateway, then sleeps on a durable timer. The platform is killed with SIGKILL during that sleep and started again on the same
home; the turn finishes without running the tool or the model again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess

from modelplane.control import get_condition
from modelplane.serving import ArtifactStore

pytestmark = pytest.mark.slow

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"
INSTANCES = "/agents/default/assistant/instances"
QUESTION = "What is the capital of France?"
#: the assistant answers this long after the question (the tool and the model run meanwhile): long
#: enough that the kill lands in the sleep, and the rest of it passes during the restart
PAUSE_S = 15.0
AUTH = {"Authorization": "Bearer tenant-token"}
#: an administrator, to read the audit log
OPS = {"Authorization": "Bearer ops-token"}


def _seeded_home(smollm2: tuple[Path, str], root: Path) -> Path:
    """A home holding the model as `modelplane models import --from-pip ... --to-safetensors`."""
    folder, _ = smollm2
    home = root / "home"
    store = ArtifactStore(home)
    store.adopt_conversion(store.import_path(next(folder.parent.glob("*.gguf"))), folder)
    return home


def _endpoint_ready(client: httpx.Client) -> bool:
    r = client.get("/apis/modelplane.dev/v1alpha1/namespaces/default/endpoints/smollm2")
    ready = get_condition((r.json().get("status") or {}) if r.status_code == 200 else {}, "Ready")
    return (ready or {}).get("status") == "True"


def _get(client: httpx.Client, path: str) -> Any:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return r.json()


def _model_callers(url: str) -> list[str]:
    """Who called the model ``smollm2``, by the gateway's audit records (allowed calls)."""
    query = "/audit/records?category=model&namespace=default&decision=allow"
    with httpx.Client(base_url=url, timeout=30, headers=OPS) as ops:
        items = _get(ops, query)["items"]
    return [i["principal"] for i in items if i["resource"] == "Endpoint/default/smollm2"]


def _steps(journal: list[dict[str, Any]]) -> list[str]:
    return [f"{e['kind']}:{e['name']}" for e in journal if e["kind"] in ("step", "authz", "timer")]


def _orphans_of(proc: psutil.Process) -> list[psutil.Process]:
    """What `up` started (model workers run in sessions of their own and outlive a kill -9)."""
    children: list[psutil.Process] = proc.children(recursive=True)
    return children


def test_quickstart_agent_resumes_its_turn_after_kill_9_without_repeating_tool_or_model(
    smollm2: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "mcp-calls.log"
    monkeypatch.setenv("MCP_EXAMPLE_CALL_LOG", str(calls))  # the MCP server logs each real call
    # with authentication on and only a tenant's token: up's own clients (the -f apply uploading
    # the agent's bundle, the agent calling the model) must authenticate as up itself
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(
        "tenant-token,tenant,uid-1,modelplane:namespace:default\n"
        'ops-token,ops,uid-0,"system:masters"\n'
    )
    extra = ["-f", str(QUICKSTART), "--token-file", str(tokens)]
    up = UpProcess(_seeded_home(smollm2, tmp_path), extra=extra)
    leftovers: list[psutil.Process] = []
    try:
        with httpx.Client(base_url=up.start().url, timeout=30, headers=AUTH) as client:
            # given the quickstart up, SmolLM2 served, and an assistant instance
            wait_until(lambda: _endpoint_ready(client), timeout=90, what="smollm2 Ready")
            warm = {
                "model": "smollm2",
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 4,
            }
            assert client.post("/v1/chat/completions", json=warm, timeout=60).status_code == 200
            r = client.post(INSTANCES, json={"id": "chat", "input": {"pause": PAUSE_S}})
            assert r.status_code == 201, r.text
            # when it is asked a question
            r = client.post(f"{INSTANCES}/chat/messages", json={"payload": QUESTION})
            assert r.status_code == 202, r.text

            # then it calls the MCP tool and the model, and sleeps on its durable timer
            def sleeping() -> list[dict[str, Any]] | None:
                journal = _get(client, f"{INSTANCES}/chat/journal")["items"]
                return journal if any(e["kind"] == "timer" for e in journal) else None

            before = _steps(wait_until(sleeping, timeout=45, what="the assistant sleeping"))
            info = _get(client, f"{INSTANCES}/chat")
            assert info["status"] == "waiting" and info["wakeAt"] > time.time(), info
            wake_at = float(info["wakeAt"])
            assert before == [
                "authz:geo.lookup_capital",
                "step:tool:geo.lookup_capital",
                "step:model:smollm2",
                "timer:",
            ]
            # and the model call reached the gateway as the Agent's own service account (its
            # limits, budget and audit), not as up's process
            # (the audit log commits in batches: wait for both records)
            calls_as = wait_until(
                lambda: c if len(c := _model_callers(up.url)) >= 2 else None,
                timeout=30,
                what="two model calls in the audit log",
            )
            assert calls_as == ["tenant", "system:serviceaccount:default:assistant"], calls_as
            assert up.proc is not None
            leftovers = _orphans_of(psutil.Process(up.proc.pid))

        # when the platform is killed with SIGKILL during the sleep, and started on the same home
        up.kill()
        restarted = time.time()
        with httpx.Client(base_url=up.start().url, timeout=30, headers=AUTH) as client:
            # then the instance resumes and finishes the turn once the timer is due
            def answered() -> dict[str, Any] | None:
                info: dict[str, Any] = _get(client, f"{INSTANCES}/chat")
                return info if info["status"] != "waiting" and info["result"] else None

            info = wait_until(answered, timeout=45, what="the turn finished after the restart")
            assert info["status"] == "idle", info
            assert info["updated"] >= wake_at  # not before its timer was due
            # and the answer, from the model's single call, is in its result, state and memory
            assert "Paris" in info["result"]["answer"], info
            assert info["state"]["answer"] == info["result"]["answer"]
            assert info["state"]["turns"] == 1
            assert info["memoryLength"] == 2  # the question and the answer, each once
            # and the MCP server ran the tool exactly once, across the crash
            assert calls.read_text().splitlines() == ['lookup_capital {"country": "france"}']
            # and no request reached the model after the restart (the journaled answer was used)
            samples = _get(client, f"/v1/_modelplane/samples?endpoint=smollm2&since={restarted}")
            assert [s for v in samples["versions"].values() for s in v] == []
            # and the tool-call decision is in the audit trail, once
            audit = _get(client, f"{INSTANCES}/chat/audit")["items"]
            decisions = [a for a in audit if a["action"].startswith("tool.")]
            assert [(a["action"], a["detail"]["tool"]) for a in decisions] == [
                ("tool.allow", "lookup_capital")
            ]
            assert decisions[0]["actor"] == "instance:default/assistant/chat"
            # and the finished turn's records are compacted behind its snapshot
            assert _steps(_get(client, f"{INSTANCES}/chat/journal")["items"]) == []
    finally:
        up.stop()
        for proc in leftovers:
            if proc.is_running():
                proc.kill()
