"""Device drivers: what devices exist, published as ``resource.k8s.io/v1`` ResourceSlices.

This package owns turning hardware (or a description of it) into DeviceClasses, ResourceSlices
and Nodes in the store, as a DRA driver's kubelet plugin does: the NVML driver for real NVIDIA
GPUs (:func:`nvml_pool`), the CPU and memory driver for agent workers (:func:`cpu_pool`), the file
inventory for simulated clusters (:func:`load_inventory`, :func:`file_publication`), and
:func:`publish`, which writes a :class:`Publication` with pool generations and withdraws what is
no longer published. :class:`LocalDevices` is the service ``modelplane up`` runs for its host.
:class:`Accelerators` reads the GPUs' telemetry (NVML, or a model for simulated GPUs) for
``/metrics`` under OpenTelemetry ``hw.gpu.*`` and dcgm-exporter names.

It must not touch ResourceClaims or allocations (the scheduling controller owns those) and
imports no other subsystem.
"""

from ._cpu import CPU_DEVICE_CLASS, CPU_DRIVER, cpu_device_class, cpu_pool, host_memory_bytes
from ._file import file_publication, load_inventory
from ._local import LocalDevices, local_node_name, local_publication
from ._nvml import (
    GPU_DEVICE_CLASS,
    NVIDIA_DRIVER,
    NvmlUnavailable,
    gpu_device_class,
    load_nvml,
    nvml_devices,
    nvml_pool,
)
from ._publish import (
    DRA_API_VERSION,
    NODE_API_VERSION,
    PUBLISHER_LABEL,
    Pool,
    Publication,
    PublishReport,
    label_value,
    publish,
)
from ._telemetry import (
    AcceleratorReading,
    Accelerators,
    accelerator_registry,
    local_accelerators,
    nvml_readings,
    simulated_readings,
)

__all__ = [
    "CPU_DEVICE_CLASS",
    "CPU_DRIVER",
    "DRA_API_VERSION",
    "GPU_DEVICE_CLASS",
    "NODE_API_VERSION",
    "NVIDIA_DRIVER",
    "PUBLISHER_LABEL",
    "AcceleratorReading",
    "Accelerators",
    "LocalDevices",
    "NvmlUnavailable",
    "Pool",
    "Publication",
    "PublishReport",
    "accelerator_registry",
    "cpu_device_class",
    "cpu_pool",
    "file_publication",
    "gpu_device_class",
    "host_memory_bytes",
    "label_value",
    "load_inventory",
    "load_nvml",
    "local_accelerators",
    "local_node_name",
    "local_publication",
    "nvml_devices",
    "nvml_pool",
    "nvml_readings",
    "publish",
    "simulated_readings",
]
