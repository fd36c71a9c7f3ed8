"""Valid objects of every kind, the starting point of the tests (each returns a fresh copy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"

DIGEST = "sha256:" + "ab" * 32
GROUP = "modelplane.dev/v1alpha1"


def model() -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Model",
        "metadata": {"name": "llama", "namespace": "team-a"},
        "spec": {
            "versions": [
                {"name": "v1", "source": "weights/v1.gguf", "format": "gguf", "digest": DIGEST},
                {
                    "name": "v2",
                    "source": "s3://models/v2",
                    "format": "safetensors",
                    "digest": DIGEST,
                },
            ]
        },
    }


def endpoint() -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Endpoint",
        "metadata": {"name": "chat"},
        "spec": {
            "model": "llama",
            "traffic": [{"version": "v1", "weight": 90}, {"version": "v2", "weight": 10}],
            "rollout": {"steps": [10, 50, 100], "analysis": {"metrics": {"ttftP99": "800ms"}}},
            "replicas": {"min": 1, "max": 4},
            "devices": {
                "requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}]
            },
            "slo": {"ttftP99": "500ms", "errorRate": 0.01},
            "limits": {"tokensPerMinute": 100000, "budget": {"amount": 50}},
        },
    }


def graph() -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Graph",
        "metadata": {"name": "router"},
        "spec": {
            "root": "root",
            "nodes": {
                "root": {
                    "type": "Sequence",
                    "steps": [{"endpoint": "guard"}, {"node": "split"}],
                },
                "split": {
                    "type": "Splitter",
                    "steps": [
                        {"endpoint": "small", "weight": 70},
                        {"endpoint": "large", "weight": 30},
                    ],
                },
            },
        },
    }


def agent() -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Agent",
        "metadata": {"name": "support"},
        "spec": {
            "entrypoint": "support_bot.agent:handle",
            "models": ["chat"],
            "tools": [
                {"name": "files", "transport": "stdio", "server": "mcp-files"},
                {"name": "search", "transport": "streamable-http", "url": "http://127.0.0.1:9/mcp"},
            ],
        },
    }


def policy() -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Policy",
        "metadata": {"name": "no-shell"},
        "spec": {
            "scope": "runtime",
            "cedar": 'forbid(principal, action == Action::"callTool", resource == Tool::"shell");',
            "entities": [{"uid": {"type": "Tool", "id": "shell"}, "attrs": {"risk": "high"}}],
        },
    }


def node() -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Node",
        "metadata": {"name": "gpu-node-01", "labels": {"kubernetes.io/hostname": "gpu-node-01"}},
        "spec": {"capacity": {"cpu": "64", "memory": "512Gi"}},
    }


def node_pool() -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "NodePool",
        "metadata": {"name": "h100"},
        "spec": {
            "deviceClassName": "gpu.nvidia.com",
            "template": {"devices": 8, "attributes": {"type": "gpu", "productName": "H100"}},
            "limits": {"nodes": 10, "devices": 80},
            "pricePerHour": 98.32,
            "consolidateAfter": "5m",
        },
    }


def secret() -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Secret",
        "metadata": {"name": "provider"},
        "type": "Opaque",
        "data": {"api-key": "c2stdGVzdA=="},
    }


def queue() -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Queue",
        "metadata": {"name": "research"},
        "spec": {
            "cohort": "ml",
            "quotas": [
                {"deviceClass": "gpu.nvidia.com", "nominal": 8, "borrowingLimit": 4},
                {"resource": "cpu", "nominal": "128"},
            ],
            "preemption": {"reclaimWithinCohort": "Any"},
        },
    }


def job() -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Job",
        "metadata": {"name": "train"},
        "spec": {
            "replicas": 4,
            "topology": {"required": "rack"},
            "claim": {
                "requests": [
                    {"name": "gpus", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 8}}
                ]
            },
            "queue": "research",
            "priority": 10,
        },
    }


def event() -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Event",
        "metadata": {"name": "chat.17f3a"},
        "involvedObject": {"apiVersion": GROUP, "kind": "Endpoint", "name": "chat"},
        "reason": "Unschedulable",
        "message": "0/3 nodes: 3 lacked a device matching the selector",
        "type": "Warning",
    }


def device_class() -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": "gpu.nvidia.com"},
        "spec": {"selectors": [{"cel": {"expression": "device.driver == 'gpu.nvidia.com'"}}]},
    }


def resource_slice() -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": "node-1-gpu"},
        "spec": {
            "driver": "gpu.nvidia.com",
            "nodeName": "node-1",
            "pool": {"name": "node-1", "generation": 1, "resourceSliceCount": 1},
            "devices": [
                {
                    "name": "gpu-0",
                    "attributes": {"index": {"int": 0}, "productName": {"string": "NVIDIA L4"}},
                    "capacity": {"memory": {"value": "24Gi"}},
                }
            ],
        },
    }


def resource_claim() -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": "two-gpus"},
        "spec": {
            "devices": {
                "requests": [
                    {"name": "gpus", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 2}}
                ],
                "constraints": [{"matchAttribute": "resource.kubernetes.io/pcieRoot"}],
            }
        },
    }


def inference_objective() -> dict[str, Any]:
    return {
        "apiVersion": "inference.networking.x-k8s.io/v1alpha2",
        "kind": "InferenceObjective",
        "metadata": {"name": "critical"},
        "spec": {"priority": 10, "poolRef": {"name": "chat"}},
    }


#: in the order of api.kinds()
def tool_server() -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "ToolServer",
        "metadata": {"name": "mcp-files"},
        "spec": {"command": "mcp-files", "args": ["--ro"], "env": {"LOG": "1"}},
    }


def relationship() -> dict[str, Any]:
    return {
        "apiVersion": GROUP,
        "kind": "Relationship",
        "metadata": {"name": "ml-team-uses-chat", "namespace": "team-a"},
        "spec": {
            "subject": {"kind": "Group", "name": "ml-team"},
            "relation": "can-use",
            "object": {"kind": "Endpoint", "name": "chat", "namespace": "team-a"},
        },
    }


def http_route() -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "chat-route", "namespace": "default"},
        "spec": {
            "parentRefs": [{"name": "modelplane"}],
            "rules": [
                {
                    "matches": [{"headers": [{"name": "OpenAI-Project", "value": "canary"}]}],
                    "backendRefs": [
                        {"group": "modelplane.dev", "kind": "Endpoint", "name": "chat"}
                    ],
                },
                {
                    "backendRefs": [
                        {"kind": "Service", "name": "chat-v1", "port": 8000, "weight": 90},
                        {"kind": "Service", "name": "chat-v2", "port": 8000, "weight": 10},
                    ]
                },
            ],
        },
    }


def inference_pool() -> dict[str, Any]:
    return {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": "chat-pool", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"modelplane.dev/endpoint": "chat"}},
            "targetPorts": [{"number": 8000}],
        },
    }


ALL = {
    "Model": model,
    "Endpoint": endpoint,
    "Graph": graph,
    "Agent": agent,
    "ToolServer": tool_server,
    "Policy": policy,
    "Relationship": relationship,
    "Secret": secret,
    "DeviceClass": device_class,
    "ResourceSlice": resource_slice,
    "ResourceClaim": resource_claim,
    "HTTPRoute": http_route,
    "InferencePool": inference_pool,
    "InferenceObjective": inference_objective,
    "Node": node,
    "NodePool": node_pool,
    "Queue": queue,
    "Job": job,
    "Event": event,
}
