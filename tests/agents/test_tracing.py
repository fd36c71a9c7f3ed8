"""The agent runtime's spans: one per turn, one per step that runs, and the model call's W3C trace
context sent to the gateway, recorded by the real SDK's in-memory exporter."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.gateway._spans import exporter

from modelplane.agents import Runtime
from modelplane.testing import FakeUpstream

from ._harness import run, spec, url, wait_status


def test_a_turn_is_one_span_with_a_span_per_step_and_its_model_call_in_the_same_trace(
    tmp_path: Path,
) -> None:
    spans: InMemorySpanExporter = exporter()
    with FakeUpstream() as fake:

        async def main() -> None:
            base = fake.base
            async with Runtime(url(tmp_path), model_base_url=base) as rt:
                # given an agent that calls a model in its turn
                rt.define("default", "asker", spec("agent_handlers:model_user"))
                # when an instance runs its first turn
                rt.instances.create("default", "asker", "t1", "hello")
                info = await wait_status(rt, "asker", "t1")
                assert info["status"] == "completed", info

        run(main)
        sent = fake.headers[-1]
    finished = spans.get_finished_spans()
    (turn,) = [s for s in finished if s.name == "invoke_agent asker"]
    attrs = dict(turn.attributes or {})
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["gen_ai.agent.id"] == "default/asker/t1"
    # then the model step is a span under the turn
    assert turn.context is not None
    (step,) = [s for s in finished if s.name == "step model:smollm2"]
    assert step.parent is not None and step.parent.span_id == turn.context.span_id
    # and the request to the gateway carried the step's trace context
    _, trace_id, parent_id, _ = sent["traceparent"].split("-")
    assert step.context is not None
    assert trace_id == f"{turn.context.trace_id:032x}"
    assert parent_id == f"{step.context.span_id:016x}"
