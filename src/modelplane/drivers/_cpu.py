"""The CPU and memory driver: this machine's cores and memory as one consumable device.

Agent workers and CPU-only replicas claim a share of a host, not a whole device: the host is
published as one device ``host`` of driver :data:`CPU_DRIVER` with ``allowMultipleAllocations``
and two consumable capacities, ``cpu`` (cores) and ``memory`` (bytes). A claim asks for its
share with ``capacity.requests`` (``cpu: 500m``, ``memory: 1Gi``); one that asks for nothing
gets the request policy's default (one core, 1 GiB).
"""

from __future__ import annotations

import os
import platform
from typing import Any

from ._publish import DRA_API_VERSION, Pool

__all__ = ["CPU_DEVICE_CLASS", "CPU_DRIVER", "cpu_device_class", "cpu_pool", "host_memory_bytes"]

CPU_DRIVER = "cpu.modelplane.dev"
CPU_DEVICE_CLASS = "cpu.modelplane.dev"


def host_memory_bytes() -> int:
    """Physical memory of this machine, from ``sysconf`` (or ``/proc/meminfo``)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_device_class() -> dict[str, Any]:
    """The DeviceClass that selects hosts published by this driver."""
    return {
        "apiVersion": DRA_API_VERSION,
        "kind": "DeviceClass",
        "metadata": {"name": CPU_DEVICE_CLASS},
        "spec": {"selectors": [{"cel": {"expression": f"device.driver == '{CPU_DRIVER}'"}}]},
    }


def cpu_pool(node: str, *, cores: int | None = None, memory_bytes: int | None = None) -> Pool:
    """The pool of ``node``: one slice with the host device (defaults: this machine's figures)."""
    cores = cores if cores is not None else (os.cpu_count() or 1)
    memory = memory_bytes if memory_bytes is not None else host_memory_bytes()
    memory_mi = max(1, memory // (1024 * 1024))
    device = {
        "name": "host",
        "allowMultipleAllocations": True,
        "attributes": {
            "type": {"string": "cpu"},
            "architecture": {"string": platform.machine() or "unknown"},
            "cores": {"int": cores},
        },
        "capacity": {
            "cpu": {
                "value": str(cores),
                "requestPolicy": {"default": "1", "validRange": {"min": "10m", "step": "10m"}},
            },
            "memory": {
                "value": f"{memory_mi}Mi",
                "requestPolicy": {"default": "1Gi", "validRange": {"min": "1Mi", "step": "1Mi"}},
            },
        },
    }
    return Pool(
        CPU_DRIVER,
        node,
        [{"name": f"{node}-{CPU_DRIVER}", "spec": {"nodeName": node, "devices": [device]}}],
    )
