"""Each kind: valid objects pass with their defaults; each broken rule names its field and the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from modelplane import api
from modelplane.api import errors

from . import _objects

Mutation = Callable[[dict[str, Any]], None]


def _invalid(obj: dict[str, Any]) -> errors.Invalid:
    with pytest.raises(errors.Invalid) as caught:
        api.validate(obj)
    return caught.value


@pytest.mark.parametrize("kind", list(_objects.ALL))
def test_valid_object_of_each_kind_is_accepted(kind: str) -> None:
    obj = _objects.ALL[kind]()
    out = api.validate(obj)
    assert out["kind"] == kind
    assert out["metadata"]["name"] == obj["metadata"]["name"]


def _set(path: str, value: Any) -> Mutation:
    """A mutation setting a dotted path (``spec.traffic.1.weight``; digits index lists)."""

    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = obj
        for part in parents:
            target = target[part]
        target[last] = value

    return mutate


def _delete(path: str) -> Mutation:
    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = obj
        for part in parents:
            target = target[part]
        del target[last]

    return mutate


BAD: list[tuple[str, Mutation, str, str]] = [
    # kind, mutation, field path, words the message must contain
    ("Model", _delete("spec.versions.0.digest"), "spec.versions[0].digest", "sha256sum"),
    ("Model", _set("spec.versions.0.digest", "sha256:abc"), "spec.versions[0].digest", "64"),
    ("Model", _set("spec.versions.0.format", "pytorch"), "spec.versions[0].format", "allowPickle"),
    ("Model", _set("spec.versions.1.name", "v1"), "spec.versions[1].name", "duplicate"),
    ("Model", _set("spec.task", "chatting"), "spec.task", "'chat', 'completion' or 'embedding'"),
    ("Model", _set("spec.versions", []), "spec.versions", "at least 1"),
    ("Model", _set("spec.versions.0.format", "upstream"), "spec.versions[0].source", "https://"),
    (
        "Endpoint",
        _set("spec.traffic.1.weight", 0),
        "spec.traffic",
        "weights sum to 90; they must sum to 100",
    ),
    ("Endpoint", _set("spec.traffic.1.weight", 150), "spec.traffic[1].weight", "at most 100"),
    ("Endpoint", _set("spec.traffic.1.version", "v1"), "spec.traffic[1].version", "twice"),
    (
        "Endpoint",
        _set("spec.tarffic", []),
        "spec.tarffic",
        "unknown field 'tarffic'; did you mean 'traffic'?",
    ),
    ("Endpoint", _set("spec.rollout.steps", [50, 10]), "spec.rollout.steps[1]", "ascend"),
    (
        "Endpoint",
        _set("spec.rollout.steps", [0, 100]),
        "spec.rollout.steps[0]",
        "between 1 and 100",
    ),
    ("Endpoint", _set("spec.replicas.min", 5), "spec.replicas.min", "must not exceed max (4)"),
    ("Endpoint", _set("spec.replicas.min", 0), "spec.replicas.scaleToZero", "scaleToZero: true"),
    ("Endpoint", _set("spec.slo.ttftP99", "fast"), "spec.slo.ttftP99", "500ms"),
    ("Endpoint", _set("spec.slo.errorRate", 2), "spec.slo.errorRate", "at most 1"),
    (
        "Endpoint",
        _set("spec.routing", {"policy": "random"}),
        "spec.routing.policy",
        "least-request",
    ),
    ("Endpoint", _delete("spec.model"), "spec.model", "required"),
    ("Endpoint", _set("spec.model", "Not_A_Name"), "spec.model", "lowercase"),
    (
        "Endpoint",
        _set("spec.devices.requests.0.exactly.cuont", 2),
        "spec.devices.requests[0].exactly.cuont",
        "did you mean 'count'?",
    ),
    ("Graph", _set("spec.root", "start"), "spec.root", "the nodes are: root, split"),
    (
        "Graph",
        _set("spec.nodes.split.steps.0.weight", 60),
        "spec.nodes[split].steps",
        "weights sum to 90",
    ),
    (
        "Graph",
        _set("spec.nodes.root.steps.1.node", "nowhere"),
        "spec.nodes[root].steps[1].node",
        "names no node",
    ),
    (
        "Graph",
        _set("spec.nodes.split.steps.0.node", "root"),
        "spec.nodes[split].steps[0]",
        "exactly one of",
    ),
    ("Graph", _set("spec.nodes.root.type", "Loop"), "spec.nodes[root].type", "'Sequence'"),
    (
        "Graph",
        _set("spec.nodes.split.steps.1", {"node": "root", "weight": 30}),
        "spec.nodes[root]",
        "cycle",
    ),
    (
        "Graph",
        _set("spec.nodes.root.steps.0.weight", 5),
        "spec.nodes[root].steps[0].weight",
        "Splitter",
    ),
    (
        "Agent",
        _set("spec.entrypoint", "support_bot.agent"),
        "spec.entrypoint",
        "package.module:handler",
    ),
    ("Agent", _delete("spec.tools.0.server"), "spec.tools[0].server", "ToolServer"),
    ("Agent", _set("spec.tools.0.command", "/bin/sh"), "spec.tools[0].command", "ToolServer"),
    ("Agent", _set("spec.bundle", "sha256:abc"), "spec.bundle", "64"),
    ("Agent", _set("spec.tools.1.url", "ftp://x"), "spec.tools[1].url", "http"),
    ("Agent", _set("spec.tools.1.name", "files"), "spec.tools[1].name", "duplicate"),
    ("Agent", _set("spec.idleTimeout", "5 minutes"), "spec.idleTimeout", "duration"),
    ("Agent", _set("spec.retry", {"maxAttempts": 0}), "spec.retry.maxAttempts", "at least 1"),
    ("Policy", _set("spec.cedar", "  \n"), "spec.cedar", "permit"),
    ("Policy", _set("spec.scope", "always"), "spec.scope", "'admission' or 'runtime'"),
    (
        "Policy",
        _set("spec.entities.0.uid", {"type": "Tool"}),
        "spec.entities[0].uid.id",
        "required",
    ),
    ("Node", _set("spec.capacity.memory", "lots"), "spec.capacity[memory]", "80Gi"),
    ("Node", _set("spec.unschedulable", "maybe"), "spec.unschedulable", "true or false"),
    ("Node", _set("metadata.labels.rack", 7), "metadata.labels[rack]", "string"),
    (
        "Queue",
        _set("spec.quotas.0.resource", "cpu"),
        "spec.quotas[0]",
        "exactly one of deviceClass or resource",
    ),
    ("Queue", _set("spec.quotas.1.nominal", "-3"), "spec.quotas[1].nominal", "negative"),
    (
        "Queue",
        _set("spec.preemption", {"withinQueue": "Any"}),
        "spec.preemption.withinQueue",
        "'Never'",
    ),
    (
        "Queue",
        _set("spec.quotas.1", {"deviceClass": "gpu.nvidia.com", "nominal": 1}),
        "spec.quotas[1]",
        "merge",
    ),
    ("Job", _set("spec.replicas", 0), "spec.replicas", "at least 1"),
    (
        "Job",
        _set("spec.topology", {"required": "rack", "preferred": "host"}),
        "spec.topology.preferred",
        "only one",
    ),
    (
        "Job",
        _set("spec.topology", {"required": "zone"}),
        "spec.topology.required",
        "'host', 'rack' or 'block'",
    ),
    ("Event", _set("type", "Error"), "type", "'Normal' or 'Warning'"),
    ("Event", _delete("involvedObject"), "involvedObject", "required"),
    ("Event", _set("count", 0), "count", "at least 1"),
    (
        "DeviceClass",
        _set("spec.selectors.0.cel.expression", ""),
        "spec.selectors[0].cel.expression",
        "empty",
    ),
    ("ResourceSlice", _set("spec.allNodes", True), "spec.allNodes", "exactly one of nodeName"),
    ("ResourceSlice", _delete("spec.nodeName"), "spec", "set: none"),
    (
        "ResourceSlice",
        _set("spec.devices.0.attributes.index", {"int": 0, "string": "0"}),
        "spec.devices[0].attributes[index]",
        "set: int, string",
    ),
    (
        "ResourceSlice",
        _set("spec.devices.0.capacity.memory.value", "24GB"),
        "spec.devices[0].capacity[memory].value",
        "24GB",
    ),
    (
        "ResourceSlice",
        _delete("spec.pool.resourceSliceCount"),
        "spec.pool.resourceSliceCount",
        "required",
    ),
    (
        "ResourceSlice",
        lambda o: o["spec"]["devices"].append({"name": "gpu-0"}),
        "spec.devices[1].name",
        "duplicate device name 'gpu-0'",
    ),
    (
        "ResourceClaim",
        _set("spec.devices.requests.0.firstAvailable", [{"name": "a", "deviceClassName": "x"}]),
        "spec.devices.requests[0]",
        "exactly one of `exactly` or `firstAvailable`",
    ),
    (
        "ResourceClaim",
        _set("spec.devices.constraints.0.requests", ["gpu"]),
        "spec.devices.constraints[0].requests[0]",
        "known: gpus",
    ),
    (
        "ResourceClaim",
        _set("spec.devices.constraints.0.matchAttribute", "pcieRoot"),
        "spec.devices.constraints[0].matchAttribute",
        "domain",
    ),
    (
        "ResourceClaim",
        _set("spec.devices.requests.0.exactly.allocationMode", "Some"),
        "spec.devices.requests[0].exactly.allocationMode",
        "'ExactCount' or 'All'",
    ),
    (
        "ResourceClaim",
        _set("spec.devices.requests.0.exactly.allocationMode", "All"),
        "spec.devices.requests[0].exactly.count",
        "ExactCount",
    ),
]


@pytest.mark.parametrize(
    ("kind", "mutate", "field", "words"), BAD, ids=[f"{b[0]}-{b[2]}" for b in BAD]
)
def test_broken_rule_is_reported_at_its_field_with_a_fix(
    kind: str, mutate: Mutation, field: str, words: str
) -> None:
    obj = _objects.ALL[kind]()
    mutate(obj)
    error = _invalid(obj)
    fields = {c.field: c.message for c in error.causes}
    assert field in fields, f"causes: {fields}"
    assert words in fields[field]
    assert error.details["kind"] == kind


def test_model_defaults_task_to_chat_and_pickle_to_refused() -> None:
    out = api.validate(_objects.model())
    assert out["spec"]["task"] == "chat"
    assert out["spec"]["versions"][0]["allowPickle"] is False


def test_pytorch_model_is_accepted_when_pickle_is_allowed_explicitly() -> None:
    obj = _objects.model()
    obj["spec"]["versions"][0].update(format="pytorch", allowPickle=True)
    assert api.validate(obj)["spec"]["versions"][0]["format"] == "pytorch"


def test_upstream_model_needs_no_digest() -> None:
    obj = _objects.model()
    obj["spec"]["versions"] = [
        {
            "name": "gpt",
            "source": "https://api.example.com/v1",
            "format": "upstream",
            "apiKeySecretRef": {"name": "provider", "key": "api-key"},
        }
    ]
    assert "digest" not in api.validate(obj)["spec"]["versions"][0]


def test_endpoint_defaults_are_spelled_out() -> None:
    obj = _objects.endpoint()
    for field in ("traffic", "rollout", "replicas", "routing", "devices", "slo", "limits"):
        obj["spec"].pop(field, None)
    spec = api.validate(obj)["spec"]
    assert spec["traffic"] == []  # empty: all traffic to the Model's last version
    assert spec["replicas"] == {"min": 1, "max": 1, "scaleToZero": False}
    assert spec["routing"] == {"policy": "least-request"}


def test_endpoint_replica_max_defaults_to_min() -> None:
    obj = _objects.endpoint()
    obj["spec"]["replicas"] = {"min": 3}
    assert api.validate(obj)["spec"]["replicas"]["max"] == 3


def test_endpoint_rollout_defaults_to_automatic_rollback() -> None:
    obj = _objects.endpoint()
    obj["spec"]["rollout"] = {}
    rollout = api.validate(obj)["spec"]["rollout"]
    assert rollout["autoRollback"] is True
    assert rollout["steps"] == [10, 50, 100]
    assert rollout["analysis"]["minSamples"] == 100


def test_endpoint_may_scale_to_zero_when_asked() -> None:
    obj = _objects.endpoint()
    obj["spec"]["replicas"] = {"min": 0, "scaleToZero": True}
    assert api.validate(obj)["spec"]["replicas"] == {"min": 0, "max": 1, "scaleToZero": True}


def test_agent_defaults_idle_timeout_and_retries() -> None:
    spec = api.validate(_objects.agent())["spec"]
    assert spec["idleTimeout"] == "5m"
    assert spec["retry"]["maxAttempts"] == 3
    assert spec["retry"]["backoff"] == {"initial": "1s", "max": "1m", "multiplier": 2.0}


def test_queue_and_job_defaults() -> None:
    queue = api.validate(_objects.queue())["spec"]
    assert queue["weight"] == 1
    assert queue["preemption"] == {"withinQueue": "Never", "reclaimWithinCohort": "Any"}
    job = api.validate(_objects.job())["spec"]
    assert job["gang"] is True


def test_event_has_kubernetes_top_level_fields_and_defaults() -> None:
    out = api.validate(_objects.event())
    assert "spec" not in out
    assert out["involvedObject"]["kind"] == "Endpoint"
    assert out["count"] == 1
    assert out["metadata"]["namespace"] == "default"


def test_graph_root_defaults_to_the_node_named_root() -> None:
    obj = _objects.graph()
    del obj["spec"]["root"]
    assert api.validate(obj)["spec"]["root"] == "root"


def test_every_problem_of_an_object_is_reported_at_once() -> None:
    obj = _objects.endpoint()
    obj["spec"]["traffic"][1]["weight"] = "ten"
    obj["spec"]["slo"]["ttftP99"] = "soon"
    obj["spec"]["colour"] = "blue"
    fields = {c.field for c in _invalid(obj).causes}
    assert {"spec.traffic[1].weight", "spec.slo.ttftP99", "spec.colour"} <= fields


def test_a_broken_sibling_does_not_hide_the_traffic_sum() -> None:
    obj = _objects.endpoint()
    obj["spec"]["traffic"][0]["weight"] = 80
    obj["spec"]["devices"]["requests"][0]["exactly"]["count"] = 0
    fields = {c.field for c in _invalid(obj).causes}
    assert fields == {"spec.traffic", "spec.devices.requests[0].exactly.count"}
