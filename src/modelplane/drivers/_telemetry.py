"""Accelerator telemetry: per-GPU utilisation, memory, temperature, power and interconnect traffic.

Read on every scrape of ``/metrics`` (``modelplane up``'s and ``modelplane node``'s) from NVML for
this host's real GPUs, and from a model for the simulated GPUs of a file inventory (the slices
published as ``inventory``). Every reading is exported twice, so that both kinds of dashboard read
it unchanged:

* under OpenTelemetry's hardware semantic conventions (``hw.gpu.*``), as the OpenTelemetry
  collector's Prometheus exporter names them (dots to underscores, unit suffix, ``_total`` on
  counters): ``hw_gpu_utilization_ratio``, ``hw_gpu_memory_usage_bytes``,
  ``hw_gpu_memory_limit_bytes``, ``hw_gpu_memory_utilization_ratio``, ``hw_gpu_io_bytes_total``
  (``network_io_direction`` receive/transmit), ``hw_power_watts`` and ``hw_energy_joules_total``
  (``hw_type="gpu"``), and ``hw_temperature_celsius`` (a sensor: ``hw_type="temperature"``,
  ``hw_parent`` the GPU's ``hw_id``); labels ``hw_id`` (the UUID), ``hw_name``, ``hw_model``,
  ``hw_vendor``, ``hw_driver_version`` and ``host_name`` (the Node);
* under dcgm-exporter's names and units: ``DCGM_FI_DEV_GPU_UTIL`` (%), ``DCGM_FI_DEV_FB_USED`` and
  ``DCGM_FI_DEV_FB_FREE`` (MiB), ``DCGM_FI_DEV_GPU_TEMP`` (C), ``DCGM_FI_DEV_POWER_USAGE`` (W),
  ``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (mJ, a counter), ``DCGM_FI_PROF_PCIE_TX_BYTES`` and
  ``DCGM_FI_PROF_PCIE_RX_BYTES`` (bytes per second); labels ``gpu`` (the index), ``UUID``,
  ``device`` (``nvidia<index>``), ``modelName``, ``pci_bus_id``, ``Hostname`` and
  ``DCGM_FI_DRIVER_VERSION``.

A reading NVML cannot give (no power sensor, no PCIe counter) is left out rather than made up.

**The simulated model** (deterministic, driven by the allocations in the store): a GPU's
utilisation is the share of it that allocated ResourceClaims hold (a whole-GPU claim, or any
number of time-sliced shares, all of it; a MIG device its fraction of the GPU's memory), capped at
1; memory used is 90% of that share of the memory (what a serving engine reserves); power is 15%
of the device's ``modelplane.dev/powerWatts`` (default 400 W) idle, rising linearly to all of it
at full use; temperature is 30 C idle, rising linearly to 75 C; energy is power integrated over
the time between scrapes. No interconnect traffic is simulated.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from modelplane.api import PUBLISHER_LABEL, parse_quantity
from modelplane.store import Store

from ._nvml import NVIDIA_DRIVER, NvmlUnavailable, _call, _text, _version, load_nvml

__all__ = [
    "AcceleratorReading",
    "Accelerators",
    "accelerator_registry",
    "local_accelerators",
    "nvml_readings",
    "simulated_readings",
]

JSON = dict[str, Any]
_MIB = 1024 * 1024
#: the inventory publisher ``up --inventory`` writes slices as (``_publish.PUBLISHER_LABEL``)
INVENTORY_PUBLISHER = "inventory"
_IDLE_POWER_SHARE = 0.15
_DEFAULT_WATTS = 400.0
_IDLE_CELSIUS, _FULL_CELSIUS = 30.0, 75.0
_RESERVED_MEMORY = 0.9


@dataclass(frozen=True, slots=True)
class AcceleratorReading:
    """One GPU's telemetry at one instant; None where the source cannot tell."""

    node: str
    index: int
    uuid: str
    model: str
    driver_version: str
    pci_bus_id: str
    utilization: float  # 0..1
    memory_used: int  # bytes
    memory_total: int  # bytes
    temperature: float | None = None  # degrees Celsius
    power: float | None = None  # watts
    energy: float | None = None  # joules since an arbitrary start (a counter)
    pcie_tx: float | None = None  # bytes per second
    pcie_rx: float | None = None  # bytes per second
    vendor: str = "NVIDIA"


# -- sources ----------------------------------------------------------------------------------


def _optional(nvml: Any, name: str, *args: Any) -> Any:
    """An NVML reading this GPU may not support (``NOT_SUPPORTED``): None then."""
    try:
        return getattr(nvml, name)(*args)
    except Exception:
        return None


def nvml_readings(nvml: Any, node: str) -> list[AcceleratorReading]:
    """The telemetry of every GPU NVML reports on this host (MIG-enabled ones included)."""
    _call(nvml, "nvmlInit")
    try:
        driver = _version(_text(_call(nvml, "nvmlSystemGetDriverVersion")))
        out: list[AcceleratorReading] = []
        for i in range(int(_call(nvml, "nvmlDeviceGetCount"))):
            out.append(_nvml_reading(nvml, node, i, driver))
        return out
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def _nvml_reading(nvml: Any, node: str, i: int, driver: str) -> AcceleratorReading:
    handle = _call(nvml, "nvmlDeviceGetHandleByIndex", i)
    memory = _call(nvml, "nvmlDeviceGetMemoryInfo", handle)
    rates = _optional(nvml, "nvmlDeviceGetUtilizationRates", handle)
    # NVML_TEMPERATURE_GPU = 0; power in milliwatts, energy in millijoules, PCIe in KB/s
    temperature = _optional(nvml, "nvmlDeviceGetTemperature", handle, 0)
    power = _optional(nvml, "nvmlDeviceGetPowerUsage", handle)
    energy = _optional(nvml, "nvmlDeviceGetTotalEnergyConsumption", handle)
    tx = _optional(nvml, "nvmlDeviceGetPcieThroughput", handle, 0)  # NVML_PCIE_UTIL_TX_BYTES
    rx = _optional(nvml, "nvmlDeviceGetPcieThroughput", handle, 1)  # NVML_PCIE_UTIL_RX_BYTES
    pci = _optional(nvml, "nvmlDeviceGetPciInfo", handle)
    return AcceleratorReading(
        node=node,
        index=i,
        uuid=_text(_call(nvml, "nvmlDeviceGetUUID", handle)),
        model=_text(_call(nvml, "nvmlDeviceGetName", handle)),
        driver_version=driver,
        pci_bus_id=_text(getattr(pci, "busId", "")) if pci is not None else "",
        utilization=float(getattr(rates, "gpu", 0)) / 100 if rates is not None else 0.0,
        memory_used=int(memory.used),
        memory_total=int(memory.total),
        temperature=float(temperature) if temperature is not None else None,
        power=float(power) / 1000 if power is not None else None,
        energy=float(energy) / 1000 if energy is not None else None,
        pcie_tx=float(tx) * 1024 if tx is not None else None,
        pcie_rx=float(rx) * 1024 if rx is not None else None,
    )


def _attr(device: JSON, name: str) -> Any:
    value = (device.get("attributes") or {}).get(name) or {}
    for kind in ("string", "int", "version", "bool"):
        if kind in value:
            return value[kind]
    return None


def _memory(device: JSON) -> int:
    raw = ((device.get("capacity") or {}).get("memory") or {}).get("value")
    return int(parse_quantity(raw)) if raw is not None else 0


def _held(claims: Sequence[JSON]) -> dict[tuple[str, str], float]:
    """``{(pool, device): share held}``: what the allocated claims hold of each device."""
    held: dict[tuple[str, str], float] = {}
    for claim in claims:
        allocation = (claim.get("status") or {}).get("allocation") or {}
        for result in (allocation.get("devices") or {}).get("results") or []:
            if result.get("driver") != NVIDIA_DRIVER:
                continue
            key = (str(result.get("pool")), str(result.get("device")))
            held[key] = 1.0  # whole, or time-sliced: busy while any share runs
    return held


def simulated_readings(
    slices: Sequence[JSON],
    claims: Sequence[JSON],
) -> list[AcceleratorReading]:
    """The modelled telemetry of the whole GPUs in ``slices`` (see the module docstring).

    Energy is left out: :class:`Accelerators` integrates it between readings.
    """
    held = _held(claims)
    out: list[AcceleratorReading] = []
    for slice_ in slices:
        spec = slice_.get("spec") or {}
        if spec.get("driver") != NVIDIA_DRIVER:
            continue
        pool, node = str((spec.get("pool") or {}).get("name")), str(spec.get("nodeName") or "")
        devices = spec.get("devices") or []
        gpus = {_attr(d, "index"): d for d in devices if _attr(d, "type") == "gpu"}
        busy = {i: held.get((pool, str(d.get("name"))), 0.0) for i, d in gpus.items()}
        for d in devices:  # a MIG device holds its part of its parent GPU
            parent = gpus.get(_attr(d, "parentIndex"))
            if _attr(d, "type") == "mig" and parent is not None and _memory(parent):
                share = held.get((pool, str(d.get("name"))), 0.0)
                busy[_attr(d, "parentIndex")] += share * _memory(d) / _memory(parent)
        for index, d in sorted(gpus.items(), key=lambda item: int(item[0])):
            use = min(1.0, busy[index])
            watts = float(_attr(d, "modelplane.dev/powerWatts") or _DEFAULT_WATTS)
            total = _memory(d)
            out.append(
                AcceleratorReading(
                    node=node,
                    index=int(index),
                    uuid=str(_attr(d, "uuid") or f"{node}-{d.get('name')}"),
                    model=str(_attr(d, "productName") or "simulated GPU"),
                    driver_version=str(_attr(d, "driverVersion") or ""),
                    pci_bus_id=str(_attr(d, "pcieBusID") or ""),
                    utilization=use,
                    memory_used=int(total * _RESERVED_MEMORY * use),
                    memory_total=total,
                    temperature=_IDLE_CELSIUS + (_FULL_CELSIUS - _IDLE_CELSIUS) * use,
                    power=watts * (_IDLE_POWER_SHARE + (1 - _IDLE_POWER_SHARE) * use),
                )
            )
    return out


class Accelerators:
    """The accelerators one process reports: this host's GPUs through NVML (``nvml``: the
    ``pynvml`` module or a stand-in; None: none) and, with a ``store``, the simulated GPUs of its
    file inventory. :meth:`readings` is what a scrape shows; it keeps the counters that only
    exist between readings (a simulated GPU's energy, PCIe bytes as rate times interval)."""

    def __init__(
        self,
        node: str,
        *,
        nvml: Any | None = None,
        store: Store | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.nvml = nvml
        self.store = store
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, AcceleratorReading]] = {}
        #: ``{uuid: [energy J, PCIe bytes sent, received]}`` accumulated between readings
        self._totals: dict[str, list[float]] = {}

    def _sources(self) -> list[AcceleratorReading]:
        out: list[AcceleratorReading] = []
        if self.nvml is not None:
            with contextlib.suppress(NvmlUnavailable):  # no driver here: no real GPUs to show
                out.extend(nvml_readings(self.nvml, self.node))
        if self.store is not None:
            selector = f"{PUBLISHER_LABEL}={INVENTORY_PUBLISHER}"
            slices = self.store.list("ResourceSlice", label_selector=selector).items
            claims = self.store.list("ResourceClaim").items if slices else []
            out.extend(simulated_readings(slices, claims))
        return out

    def readings(self) -> list[AcceleratorReading]:
        """Every GPU's reading now, with energy and PCIe byte counters filled in."""
        now = self._clock()
        current = self._sources()
        with self._lock:
            out = [self._accumulate(r, now) for r in current]
            self._last = {r.uuid: (now, r) for r in current}
        return out

    def _accumulate(self, r: AcceleratorReading, now: float) -> AcceleratorReading:
        totals = self._totals.setdefault(r.uuid, [0.0, 0.0, 0.0])
        then, before = self._last.get(r.uuid, (now, r))
        elapsed = max(0.0, now - then)
        # the trapezium between two readings: a fair integral of what was sampled twice
        for i, (a, b) in enumerate(
            ((before.power, r.power), (before.pcie_tx, r.pcie_tx), (before.pcie_rx, r.pcie_rx))
        ):
            if a is not None and b is not None:
                totals[i] += (a + b) / 2 * elapsed
        if r.energy is None and r.power is not None:
            r = replace(r, energy=totals[0])
        return r

    def io_totals(self, uuid: str) -> tuple[float, float] | None:
        """(bytes sent, bytes received) over PCIe since the first reading; None if unknown."""
        with self._lock:
            last = self._last.get(uuid)
            if last is None or last[1].pcie_tx is None:
                return None
            totals = self._totals[uuid]
            return totals[1], totals[2]


# -- exposition -------------------------------------------------------------------------------

_HW = ["hw_id", "hw_name", "hw_model", "hw_vendor", "hw_driver_version", "host_name"]
_DCGM = ["gpu", "UUID", "device", "modelName", "pci_bus_id", "Hostname", "DCGM_FI_DRIVER_VERSION"]


def _hw(r: AcceleratorReading) -> list[str]:
    return [r.uuid, f"gpu-{r.index}", r.model, r.vendor, r.driver_version, r.node]


def _dcgm(r: AcceleratorReading) -> list[str]:
    return [
        str(r.index),
        r.uuid,
        f"nvidia{r.index}",
        r.model,
        r.pci_bus_id,
        r.node,
        r.driver_version,
    ]


class _Collector:
    """prometheus_client's custom-collector protocol over :meth:`Accelerators.readings`."""

    def __init__(self, accelerators: Accelerators) -> None:
        self.accelerators = accelerators

    def collect(self) -> Iterator[Metric]:
        readings = self.accelerators.readings()
        yield from _otel_families(readings, self.accelerators)
        yield from _dcgm_families(readings)


def _otel_families(readings: Sequence[AcceleratorReading], acc: Accelerators) -> Iterator[Metric]:
    util = GaugeMetricFamily(
        "hw_gpu_utilization_ratio", "Fraction of time the GPU was busy.", labels=[*_HW, "hw_type"]
    )
    used = GaugeMetricFamily("hw_gpu_memory_usage_bytes", "GPU memory used.", labels=_HW)
    limit = GaugeMetricFamily("hw_gpu_memory_limit_bytes", "Size of the GPU memory.", labels=_HW)
    mem_util = GaugeMetricFamily(
        "hw_gpu_memory_utilization_ratio", "Fraction of GPU memory used.", labels=_HW
    )
    power = GaugeMetricFamily(
        "hw_power_watts", "Instantaneous power drawn.", labels=[*_HW, "hw_type"]
    )
    energy = CounterMetricFamily(
        "hw_energy_joules", "Energy consumed by the component.", labels=[*_HW, "hw_type"]
    )
    temp = GaugeMetricFamily(
        "hw_temperature_celsius",
        "Temperature of the GPU's sensor.",
        labels=["hw_id", "hw_parent", "hw_type", "host_name"],
    )
    io = CounterMetricFamily(
        "hw_gpu_io_bytes",
        "Bytes moved over the GPU's PCIe link.",
        labels=[*_HW, "network_io_direction"],
    )
    for r in readings:
        labels = _hw(r)
        util.add_metric([*labels, "gpu"], r.utilization)
        used.add_metric(labels, r.memory_used)
        limit.add_metric(labels, r.memory_total)
        mem_util.add_metric(labels, r.memory_used / r.memory_total if r.memory_total else 0.0)
        if r.power is not None:
            power.add_metric([*labels, "gpu"], r.power)
        if r.energy is not None:
            energy.add_metric([*labels, "gpu"], r.energy)
        if r.temperature is not None:
            temp.add_metric([f"{r.uuid}/temperature", r.uuid, "temperature", r.node], r.temperature)
        totals = acc.io_totals(r.uuid)
        if totals is not None:
            io.add_metric([*labels, "transmit"], totals[0])
            io.add_metric([*labels, "receive"], totals[1])
    yield from (util, used, limit, mem_util, power, energy, temp, io)


def _dcgm_families(readings: Sequence[AcceleratorReading]) -> Iterator[Metric]:
    def gauge(name: str, doc: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=_DCGM)

    util = gauge("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).")
    fb_used = gauge("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).")
    fb_free = gauge("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).")
    temp = gauge("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).")
    power = gauge("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).")
    # dcgm-exporter declares it a counter without the _total suffix; text format 0.0.4 keeps it
    energy = gauge(
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ)."
    )
    tx = gauge("DCGM_FI_PROF_PCIE_TX_BYTES", "The rate of data transmitted over the PCIe bus.")
    rx = gauge("DCGM_FI_PROF_PCIE_RX_BYTES", "The rate of data received over the PCIe bus.")
    for r in readings:
        labels = _dcgm(r)
        util.add_metric(labels, round(r.utilization * 100))
        fb_used.add_metric(labels, r.memory_used // _MIB)
        fb_free.add_metric(labels, max(0, r.memory_total - r.memory_used) // _MIB)
        for family, value, scale in (
            (temp, r.temperature, 1.0),
            (power, r.power, 1.0),
            (energy, r.energy, 1000.0),
            (tx, r.pcie_tx, 1.0),
            (rx, r.pcie_rx, 1.0),
        ):
            if value is not None:
                family.add_metric(labels, value * scale)
    yield from (util, fb_used, fb_free, temp, power, energy, tx, rx)


def accelerator_registry(accelerators: Accelerators) -> CollectorRegistry:
    """A registry of its own holding ``accelerators``' families (rendered beside the process's)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(accelerators))  # type: ignore[arg-type]
    return registry


def local_accelerators(node: str, *, store: Store | None = None) -> Accelerators:
    """The accelerators of this host (through ``pynvml`` when installed) and, with ``store``, the
    simulated GPUs of its inventory: what ``modelplane up`` and ``modelplane node`` export."""
    try:
        nvml = load_nvml()
    except NvmlUnavailable:
        nvml = None
    return Accelerators(node, nvml=nvml, store=store)
