"""The durable runtime on a real SQLite file: steps, replay, timers, messages, input, faults."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import agent_handlers as h  # type: ignore[import-not-found]
import pytest

from modelplane.agents import ManualClock, Runtime
from modelplane.api.errors import NotFound

from ._harness import passivate_all, run, spec, url, wait_result, wait_status


def test_counter_completes_with_every_step_journaled(tmp_path: Path) -> None:
    async def main() -> None:
        async with Runtime(url(tmp_path)) as rt:
            rt.define("default", "counter", spec("agent_handlers:counter"))
            rt.instances.create("default", "counter", "c1", {"steps": 5})
            info = await wait_status(rt, "counter", "c1")
            assert info["status"] == "completed"
            assert info["result"] == {"total": 5}
            assert info["state"] == {"done": 5}
            kinds = [r["kind"] for r in rt.instances.journal("default", "counter", "c1")]
            assert kinds == ["start"] + ["step"] * 5

    run(main)


def test_completed_step_is_not_run_again_after_a_crash(tmp_path: Path) -> None:
    # given an instance whose first 3 steps are journaled when its runtime goes away mid-run
    async def first() -> None:
        async with Runtime(url(tmp_path)) as rt:
            rt.define("default", "asker", spec("agent_handlers:keys"))
            rt.define("default", "counter", spec("agent_handlers:counter"))
            rt.instances.create("default", "counter", "c2", {"steps": 3})
            await wait_status(rt, "counter", "c2")

    run(first)
    # simulate a crash after 3 steps: drop the completion, as if the process died before it
    conn = sqlite3.connect(tmp_path / "agents.db")
    conn.execute("UPDATE agent_instances SET status='running', result=NULL, finished=NULL")
    conn.commit()
    conn.close()
    calls_before = dict(h.CALLS)

    # when a new runtime recovers it
    async def second() -> None:
        async with Runtime(url(tmp_path)) as rt:
            rt.define("default", "counter", spec("agent_handlers:counter"))
            info = await wait_status(rt, "counter", "c2")
            assert info["result"] == {"total": 3}

    run(second)
    # then no step function ran again
    assert {k: v for k, v in h.CALLS.items() if k.startswith("c2/")} == {
        k: v for k, v in calls_before.items() if k.startswith("c2/")
    }


def test_timer_fires_after_restart(tmp_path: Path) -> None:
    clock = ManualClock()

    async def first() -> None:
        async with Runtime(url(tmp_path), clock=clock) as rt:
            rt.define("default", "sleeper", spec("agent_handlers:sleeper"))
            rt.instances.create("default", "sleeper", "s1", {"seconds": 3600})
            info = await wait_status(rt, "sleeper", "s1", ("waiting",))
            assert info["wakeAt"] == pytest.approx(clock.now() + 3600)

    run(first)  # the runtime stops while the timer is pending
    clock.advance(7200)

    async def second() -> None:
        async with Runtime(url(tmp_path), clock=clock) as rt:
            rt.define("default", "sleeper", spec("agent_handlers:sleeper"))
            info = await wait_status(rt, "sleeper", "s1")
            assert info["status"] == "completed"
            assert info["result"]["slept"] >= 3600

    run(second)


def test_wait_for_input_resumes_days_later(tmp_path: Path) -> None:
    clock = ManualClock()

    async def main() -> None:
        async with Runtime(url(tmp_path), clock=clock) as rt:
            d = spec("agent_handlers:asker", idleTimeout="1m")
            rt.define("default", "asker", d)
            rt.instances.create("default", "asker", "a1", None)
            info = await wait_status(rt, "asker", "a1", ("waiting_input",))
            assert info["prompt"] == "approve the refund?"
            clock.advance(3 * 24 * 3600)  # three days: long past idleTimeout
            rt._sweep()
            assert not rt.resident  # passivated
            rt.instances.give_input("default", "asker", "a1", "yes", actor="alice")
            info = await wait_status(rt, "asker", "a1")
            assert info["result"]["answer"] == "yes"
            actions = [a["action"] for a in rt.instances.audit("default", "asker", "a1")]
            assert actions == ["create", "input"]

    run(main)


def test_messages_are_received_in_order_exactly_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with Runtime(url(tmp_path)) as rt:
            rt.define("default", "echo", spec("agent_handlers:echo"))
            rt.instances.create("default", "echo", "e1", {"messages": 3})
            for i in range(3):
                rt.instances.send("default", "echo", "e1", {"n": i})
            info = await wait_status(rt, "echo", "e1")
            assert info["result"] == [{"n": 0}, {"n": 1}, {"n": 2}]

    run(main)


def test_instance_to_instance_message_is_delivered(tmp_path: Path) -> None:
    async def main() -> None:
        async with Runtime(url(tmp_path)) as rt:
            rt.define("default", "echo", spec("agent_handlers:echo"))
            rt.define("default", "sender", spec("agent_handlers:sender"))
            rt.instances.create("default", "echo", "rx", {"messages": 1})
            rt.instances.create("default", "sender", "tx", {"to": "echo/rx"})
            info = await wait_status(rt, "echo", "rx")
            assert info["result"] == [{"hello": "tx"}]

    run(main)


def test_message_to_an_unknown_instance_is_not_found(tmp_path: Path) -> None:
    async def main() -> None:
        async with Runtime(url(tmp_path)) as rt:
            with pytest.raises(NotFound, match="default/echo/nobody not found"):
                rt.instances.send("default", "echo", "nobody", "hi")
            rt.define("default", "sender", spec("agent_handlers:sender"))
            rt.instances.create("default", "sender", "tx2", {"to": "echo/nobody"})
            info = await wait_status(rt, "sender", "tx2")
            assert info["status"] == "failed"
            assert "no agent instance default/echo/nobody" in info["error"]

    run(main)


def test_failed_step_is_retried_with_the_retry_policy(tmp_path: Path) -> None:
    async def main() -> None:
        async with Runtime(url(tmp_path)) as rt:
            rt.define("default", "flaky", spec("agent_handlers:flaky"))
            rt.instances.create("default", "flaky", "f1", {"failures": 2})
            rt.instances.create("default", "flaky", "f2", {"failures": 5})
            ok = await wait_status(rt, "flaky", "f1")
            bad = await wait_status(rt, "flaky", "f2")
            assert ok["status"] == "completed" and ok["result"] == "ok"
            assert bad["status"] == "failed"
            assert "step 'flaky' failed after 3 attempt(s): ConnectionError" in bad["error"]

    run(main)


def test_handler_raising_fails_the_instance_with_its_error_after_retries(tmp_path: Path) -> None:
    async def main() -> None:
        async with Runtime(url(tmp_path)) as rt:
            rt.define("default", "raiser", spec("agent_handlers:raiser"))
            rt.instances.create("default", "raiser", "r1", None)
            info = await wait_status(rt, "raiser", "r1")
            assert info["status"] == "failed"
            assert "3 attempt(s)" in info["error"] and "the order has no items" in info["error"]
            assert h.CALLS["r1/before"] == 1  # the journaled step did not run on the retries

    run(main)


def test_non_serialisable_values_fail_with_the_step_named(tmp_path: Path) -> None:
    async def main() -> None:
        async with Runtime(url(tmp_path)) as rt:
            rt.define("default", "bad_state", spec("agent_handlers:bad_state"))
            rt.define("default", "bad_result", spec("agent_handlers:bad_result"))
            rt.instances.create("default", "bad_state", "b1", None)
            rt.instances.create("default", "bad_result", "b2", None)
            state = await wait_status(rt, "bad_state", "b1")
            result = await wait_status(rt, "bad_result", "b2")
            assert "state['when'] (set after step 'load') is not serialisable" in state["error"]
            assert "the result of step 'fetch' is not serialisable" in result["error"]

    run(main)


def test_corrupt_journal_record_marks_only_that_instance(tmp_path: Path) -> None:
    clock = ManualClock()

    async def first() -> None:
        async with Runtime(url(tmp_path), clock=clock) as rt:
            rt.define("default", "sleeper", spec("agent_handlers:sleeper"))
            for name in ("ok", "bad"):
                rt.instances.create("default", "sleeper", name, {"seconds": 60})
                await wait_status(rt, "sleeper", name, ("waiting",))

    run(first)
    conn = sqlite3.connect(tmp_path / "agents.db")
    conn.execute(
        "UPDATE agent_journal SET data = CAST('{\"x\":1}' AS BLOB) WHERE kind = 'start' AND iid ="
        " (SELECT iid FROM agent_instances WHERE name = 'bad')"
    )
    conn.commit()
    conn.close()
    clock.advance(120)

    async def second() -> None:
        async with Runtime(url(tmp_path), clock=clock) as rt:
            rt.define("default", "sleeper", spec("agent_handlers:sleeper"))
            bad = await wait_status(rt, "sleeper", "bad")
            ok = await wait_status(rt, "sleeper", "ok")
            assert bad["status"] == "corrupt"
            assert "journal record 1 (start '') fails its checksum" in bad["error"]
            assert ok["status"] == "completed"

    run(second)


def test_idempotency_key_and_random_are_stable_across_a_retry(tmp_path: Path) -> None:
    async def main() -> None:
        async with Runtime(url(tmp_path)) as rt:
            rt.define("default", "keys", spec("agent_handlers:keys"))
            rt.instances.create("default", "keys", "k1", {"crash": True})
            info = await wait_status(rt, "keys", "k1")
            assert info["status"] == "completed"
            a, b = info["result"]["keys"]
            assert a != b and a.endswith("-t0-k1") and b.endswith("-t0-k2")
            assert h.CALLS["k1/one"] == 1 and h.CALLS["k1/crash"] == 2

    run(main)


def test_conversation_resumes_from_snapshot_after_passivation(tmp_path: Path) -> None:
    async def main() -> None:
        async with Runtime(url(tmp_path)) as rt:
            rt.define("default", "chat", spec("agent_handlers:Chat"))
            rt.instances.create("default", "chat", "talk", None)
            await wait_status(rt, "chat", "talk", ("idle",))
            for i in range(3):
                rt.instances.send("default", "chat", "talk", f"hi {i}")
                await wait_result(rt, "chat", "talk", f"echo: hi {i}")
                await passivate_all(rt)
            info = rt.instances.get("default", "chat", "talk")
            assert info["state"] == {"turns": 3} and info["memoryLength"] == 6
            assert info["result"] == "echo: hi 2"
            # the journal was compacted behind the snapshot of each finished turn
            assert rt.instances.journal("default", "chat", "talk") == []

    run(main)


def test_new_version_migrates_a_live_instance_with_the_hook(tmp_path: Path) -> None:
    async def main() -> None:
        async with Runtime(url(tmp_path)) as rt:
            rt.define("default", "chat", spec("agent_handlers:Chat"), version="1")
            rt.instances.create("default", "chat", "m1", None, version="1")
            await wait_status(rt, "chat", "m1", ("idle",))
            await passivate_all(rt)
            rt.define("default", "chat", spec("agent_handlers:Chat"), version="2")
            rt.instances.send("default", "chat", "m1", "after upgrade")
            await wait_result(rt, "chat", "m1", "echo: after upgrade")
            info = rt.instances.get("default", "chat", "m1")
            assert info["version"] == "2"
            assert info["state"] == {"turns": 1, "migrated": "1->2"}

    run(main)


def test_cancel_stops_a_waiting_instance(tmp_path: Path) -> None:
    async def main() -> None:
        async with Runtime(url(tmp_path)) as rt:
            rt.define("default", "echo", spec("agent_handlers:echo"))
            rt.instances.create("default", "echo", "x1", {"messages": 5})
            await wait_status(rt, "echo", "x1", ("waiting",))
            rt.instances.cancel("default", "echo", "x1", actor="bob")
            info = await wait_status(rt, "echo", "x1")
            assert info["status"] == "cancelled"

    run(main)


def test_list_is_paged_and_filtered_by_status(tmp_path: Path) -> None:
    async def main() -> None:
        async with Runtime(url(tmp_path)) as rt:
            rt.define("default", "echo", spec("agent_handlers:echo"))
            for i in range(5):
                rt.instances.create("default", "echo", f"l{i}", {"messages": 0 if i < 2 else 1})
            await wait_status(rt, "echo", "l0")
            await wait_status(rt, "echo", "l1")
            for i in range(2, 5):
                await wait_status(rt, "echo", f"l{i}", ("waiting",))
            page, token = rt.instances.list("default", "echo", limit=3)
            assert [i["id"] for i in page] == ["l0", "l1", "l2"] and token == "l2"
            rest, token = rt.instances.list("default", "echo", limit=3, continue_token=token)
            assert [i["id"] for i in rest] == ["l3", "l4"] and token is None
            waiting, _ = rt.instances.list("default", "echo", status="waiting")
            assert [i["id"] for i in waiting] == ["l2", "l3", "l4"]

    run(main)
