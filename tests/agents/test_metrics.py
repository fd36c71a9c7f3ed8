"""The agent runtime's metrics: steps executed (not replayed), journal commit time, resume time, and
resident instances by status read at a scrape."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from modelplane.agents import Runtime

from ._harness import passivate_all, run, spec, url, wait_result, wait_status


def _sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def test_steps_commits_resumes_and_instances_are_reported(tmp_path: Path) -> None:
    steps = _sample("modelplane_agent_steps_total", result="ok")
    commits = _sample("modelplane_agent_journal_commit_duration_seconds_count")

    async def main() -> None:
        async with Runtime(url(tmp_path)) as rt:
            # given a counter of five steps, run to completion
            rt.define("default", "counter", spec("agent_handlers:counter"))
            rt.instances.create("default", "counter", "metrics-c1", {"steps": 5})
            await wait_status(rt, "counter", "metrics-c1")
            # then its five steps were executed and journaled
            assert _sample("modelplane_agent_steps_total", result="ok") == steps + 5
            committed = _sample("modelplane_agent_journal_commit_duration_seconds_count")
            assert committed >= commits + 5
            # and given a chat instance waiting for its next message, a scrape sees it idle
            rt.define("default", "chat", spec("agent_handlers:Chat"))
            rt.instances.create("default", "chat", "talk", None)
            await wait_status(rt, "chat", "talk", ("idle",))
            assert _sample("modelplane_agent_instances", status="idle") >= 1
            # when it is passivated and a message brings it back, the resume is timed
            await passivate_all(rt)
            resumes = _sample("modelplane_agent_resume_duration_seconds_count")
            rt.instances.send("default", "chat", "talk", "hi")
            await wait_result(rt, "chat", "talk", "echo: hi")
            assert _sample("modelplane_agent_resume_duration_seconds_count") > resumes

    run(main)
