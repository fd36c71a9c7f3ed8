"""On a machine with NVIDIA GPUs: print the ResourceSlice the NVML driver would publish, as JSON.

    pip install -e '.[gpu]' && python scripts/gpu_check.py

Exits 1 with the reason when NVML is missing or finds no GPU. Nothing is written anywhere; the
slice is also checked by the API's validation and by the allocator (one GPU for a claim).
"""

from __future__ import annotations

import json
import sys

from modelplane.api import validate
from modelplane.drivers import (
    NvmlUnavailable,
    gpu_device_class,
    load_nvml,
    local_node_name,
    nvml_pool,
)
from modelplane.scheduling import Inventory, allocate


def main() -> int:
    node = local_node_name()
    try:
        pool = nvml_pool(node, load_nvml())
    except NvmlUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if pool is None:
        print("error: NVML found no GPU without MIG mode on this machine", file=sys.stderr)
        return 1
    s = pool.slices[0]
    spec = {
        "driver": pool.driver,
        "pool": {"name": pool.name, "generation": 1, "resourceSliceCount": 1},
        **s["spec"],
    }
    obj = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": s["name"]},
        "spec": spec,
    }
    validate(obj)
    claim = {
        "metadata": {"name": "gpu-check", "namespace": "default"},
        "spec": {
            "devices": {
                "requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com"}}]
            }
        },
    }
    result = allocate(claim, Inventory.from_objects([obj], [gpu_device_class()]))
    print(json.dumps(obj, indent=2))
    print(
        json.dumps(
            {
                "allocation": result.results if result else None,
                "reason": None if result else getattr(result, "reason", ""),
            }
        )
    )
    return 0 if result else 1


if __name__ == "__main__":
    sys.exit(main())
