"""The NVML driver: real NVIDIA GPUs, published as NVIDIA's DRA driver publishes them.

Driver ``gpu.nvidia.com``, pool = node name, one device ``gpu-<index>`` per GPU with the
attribute names of NVIDIA's ``k8s-dra-driver-gpu`` (``type``, ``uuid``, ``minor``, ``index``,
``productName``, ``brand``, ``architecture``, ``cudaComputeCapability``, ``driverVersion`` and
``cudaDriverVersion`` as versions, ``pcieBusID``, ``resource.kubernetes.io/pcieRoot``) and the
``memory`` capacity in bytes. GPUs with MIG mode enabled are left out (NVIDIA's driver publishes
their MIG devices instead; that is not done here yet).

Where NVML reports them, each GPU also carries its power figures for the power controller:
``modelplane.dev/powerWatts`` (the default power limit), ``modelplane.dev/minPowerWatts`` (the
lowest limit it accepts); :func:`set_power_limits` sets the caps the controller planned.

NVML is reached through the ``pynvml`` module of ``nvidia-ml-py`` (``pip install
modelplane[gpu]``); any object with the same function names can stand in for it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Mapping
from typing import Any

from ._publish import DRA_API_VERSION, Pool

__all__ = [
    "GPU_DEVICE_CLASS",
    "NVIDIA_DRIVER",
    "NvmlUnavailable",
    "gpu_device_class",
    "load_nvml",
    "nvml_devices",
    "nvml_pool",
    "set_power_limits",
]

NVIDIA_DRIVER = "gpu.nvidia.com"
GPU_DEVICE_CLASS = "gpu.nvidia.com"
PCIE_ROOT = "resource.kubernetes.io/pcieRoot"

# NVML's enums, named as NVIDIA's go-nvlib names them.
_ARCHITECTURES = {
    2: "Kepler",
    3: "Maxwell",
    4: "Pascal",
    5: "Volta",
    6: "Turing",
    7: "Ampere",
    8: "Ada Lovelace",
    9: "Hopper",
    10: "Blackwell",
}
_BRANDS = {
    0: "Unknown",
    1: "Quadro",
    2: "Tesla",
    3: "NVS",
    4: "Grid",
    5: "GeForce",
    6: "Titan",
    7: "NvidiaVApps",
    8: "NvidiaVPC",
    9: "NvidiaVCS",
    10: "NvidiaVWS",
    11: "NvidiaCloudGaming",
    12: "QuadroRTX",
    13: "NvidiaRTX",
    14: "Nvidia",
    15: "GeForceRTX",
    16: "TitanRTX",
}


class NvmlUnavailable(RuntimeError):
    """NVML cannot be used here: not installed, no driver, or no GPU; the message says which."""


def load_nvml() -> Any:
    """The ``pynvml`` module, or :class:`NvmlUnavailable` when ``nvidia-ml-py`` is missing."""
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise NvmlUnavailable(
            "nvidia-ml-py is not installed; `pip install modelplane[gpu]` to publish NVIDIA GPUs"
        ) from None


def gpu_device_class() -> dict[str, Any]:
    """The ``gpu.nvidia.com`` DeviceClass: whole GPUs of NVIDIA's driver."""
    expr = (
        f"device.driver == '{NVIDIA_DRIVER}' && device.attributes['{NVIDIA_DRIVER}'].type == 'gpu'"
    )
    return {
        "apiVersion": DRA_API_VERSION,
        "kind": "DeviceClass",
        "metadata": {"name": GPU_DEVICE_CLASS},
        "spec": {"selectors": [{"cel": {"expression": expr}}]},
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _version(text: str) -> str:
    """``9.0`` -> ``9.0.0``, ``570.124.06`` -> ``570.124.6`` (semantic versions, as NVIDIA's)."""
    parts = [int(p) for p in text.strip().split(".")[:3] if p.strip().isdigit()]
    parts += [0] * (3 - len(parts))
    return ".".join(str(p) for p in parts)


def _bus_id(raw: str) -> str:
    """NVML's ``00000000:18:00.0`` as the kernel writes it: ``0000:18:00.0``."""
    domain, _, rest = raw.lower().partition(":")
    return f"{domain[-4:]}:{rest}" if rest else raw.lower()


def _pcie_root(bus_id: str) -> str:
    """The PCIe root complex of ``bus_id``, as Kubernetes' ``deviceattribute`` derives it.

    From sysfs where it exists (``/sys/devices/pci0000:00/...``), else from the bus ID's domain
    and bus (``pci0000:18``).
    """
    path = os.path.realpath(f"/sys/bus/pci/devices/{bus_id}")
    for part in path.split(os.sep):
        if part.startswith("pci") and ":" in part:
            return part
    domain, _, rest = bus_id.partition(":")
    return f"pci{domain}:{rest.split(':', 1)[0]}"


def _call(nvml: Any, name: str, *args: Any) -> Any:
    try:
        return getattr(nvml, name)(*args)
    except Exception as exc:  # NVMLError and friends: say which call failed
        raise NvmlUnavailable(f"NVML {name} failed: {exc}") from None


def nvml_devices(nvml: Any) -> list[dict[str, Any]]:
    """The GPUs NVML reports, as ResourceSlice devices (see the module docstring)."""
    _call(nvml, "nvmlInit")
    try:
        driver_version = _version(_text(_call(nvml, "nvmlSystemGetDriverVersion")))
        cuda = int(_call(nvml, "nvmlSystemGetCudaDriverVersion"))
        cuda_version = f"{cuda // 1000}.{(cuda % 1000) // 10}.0"
        devices: list[dict[str, Any]] = []
        for i in range(int(_call(nvml, "nvmlDeviceGetCount"))):
            handle = _call(nvml, "nvmlDeviceGetHandleByIndex", i)
            if _mig_enabled(nvml, handle):
                continue
            major, minor_cc = _call(nvml, "nvmlDeviceGetCudaComputeCapability", handle)
            pci = _call(nvml, "nvmlDeviceGetPciInfo", handle)
            bus_id = _bus_id(_text(getattr(pci, "busId", "")))
            memory = int(_call(nvml, "nvmlDeviceGetMemoryInfo", handle).total)
            arch = int(_call(nvml, "nvmlDeviceGetArchitecture", handle))
            brand = int(_call(nvml, "nvmlDeviceGetBrand", handle))
            devices.append(
                {
                    "name": f"gpu-{i}",
                    "attributes": {
                        "type": {"string": "gpu"},
                        "uuid": {"string": _text(_call(nvml, "nvmlDeviceGetUUID", handle))},
                        "minor": {"int": int(_call(nvml, "nvmlDeviceGetMinorNumber", handle))},
                        "index": {"int": i},
                        "productName": {"string": _text(_call(nvml, "nvmlDeviceGetName", handle))},
                        "brand": {"string": _BRANDS.get(brand, "Unknown")},
                        "architecture": {"string": _ARCHITECTURES.get(arch, "Unknown")},
                        "cudaComputeCapability": {"version": f"{int(major)}.{int(minor_cc)}.0"},
                        "driverVersion": {"version": driver_version},
                        "cudaDriverVersion": {"version": cuda_version},
                        "pcieBusID": {"string": bus_id},
                        PCIE_ROOT: {"string": _pcie_root(bus_id)},
                        **_power_attributes(nvml, handle),
                    },
                    "capacity": {"memory": {"value": str(memory)}},
                }
            )
        return devices
    finally:
        # shutting down a library that failed half-way: nothing to add
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def _mig_enabled(nvml: Any, handle: Any) -> bool:
    fn = getattr(nvml, "nvmlDeviceGetMigMode", None)
    if fn is None:
        return False
    try:
        current, _pending = fn(handle)
    except Exception:  # GPUs without MIG support answer NOT_SUPPORTED
        return False
    return bool(current)


def nvml_pool(node: str, nvml: Any) -> Pool | None:
    """The ``gpu.nvidia.com`` pool of ``node`` with the GPUs NVML reports; None without GPUs."""
    devices = nvml_devices(nvml)
    if not devices:
        return None
    return Pool(
        NVIDIA_DRIVER,
        node,
        [{"name": f"{node}-{NVIDIA_DRIVER}", "spec": {"nodeName": node, "devices": devices}}],
    )


def _power_attributes(nvml: Any, handle: Any) -> dict[str, Any]:
    """``powerWatts`` and ``minPowerWatts`` from NVML (in mW there); none where unsupported."""
    try:
        default_mw = int(nvml.nvmlDeviceGetPowerManagementDefaultLimit(handle))
        low_mw, _high_mw = nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle)
    except Exception:  # no such call in this NVML, or NOT_SUPPORTED on this GPU
        return {}
    return {
        "modelplane.dev/powerWatts": {"int": default_mw // 1000},
        "modelplane.dev/minPowerWatts": {"int": -(-int(low_mw) // 1000)},
    }


def set_power_limits(nvml: Any, caps: Mapping[str, float]) -> dict[str, int]:
    """Set the power limit of each GPU named in ``caps`` (``gpu-<index>``, as published) to its
    cap in watts, kept within what the GPU accepts. Returns the limits set, in milliwatts.

    Needs the rights NVML asks for (root, as ``nvidia-smi -pl`` does); a refusal is raised as
    :class:`NvmlUnavailable` naming the call.
    """
    _call(nvml, "nvmlInit")
    try:
        done: dict[str, int] = {}
        for name, watts in sorted(caps.items()):
            handle = _call(nvml, "nvmlDeviceGetHandleByIndex", int(name.removeprefix("gpu-")))
            low, high = _call(nvml, "nvmlDeviceGetPowerManagementLimitConstraints", handle)
            mw = min(max(int(watts * 1000), int(low)), int(high))
            _call(nvml, "nvmlDeviceSetPowerManagementLimit", handle, mw)
            done[name] = mw
        return done
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
