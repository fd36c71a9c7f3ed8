"""The devices of the machine ``modelplane up`` runs on, published as a background service."""

from __future__ import annotations

import logging
import re
import socket
import threading
from typing import Any

from modelplane.api import METRICS_URL_ANNOTATION, TOPOLOGY_LABELS
from modelplane.store import Store

from ._cpu import cpu_device_class, cpu_pool
from ._nvml import NvmlUnavailable, gpu_device_class, load_nvml, nvml_pool
from ._publish import Publication, PublishReport, publish

__all__ = ["LocalDevices", "local_node_name", "local_publication"]

log = logging.getLogger("modelplane.drivers")


def local_node_name(hostname: str | None = None) -> str:
    """This host's name as a Node name: lower case, DNS-label characters only."""
    raw = (hostname or socket.gethostname()).lower()
    name = re.sub(r"[^a-z0-9.-]+", "-", raw).strip("-.")
    return name[:253] or "localhost"


def local_publication(
    node: str, nvml: Any | None = None, *, metrics_url: str | None = None
) -> Publication:
    """The CPU/memory pool of this host, plus its NVIDIA GPUs when NVML finds any.

    ``nvml`` is the ``pynvml`` module or a stand-in; None loads ``pynvml`` if installed.
    ``metrics_url``: where this node's ``/metrics`` is served (``modelplane node``'s probe
    address), written on the Node for Prometheus' service discovery.
    """
    annotations = {METRICS_URL_ANNOTATION: metrics_url} if metrics_url else {}
    pub = Publication(
        publisher=f"local.{node}",
        pools=[cpu_pool(node)],
        device_classes=[cpu_device_class()],
        nodes=[
            {
                "metadata": {
                    "name": node,
                    "labels": {TOPOLOGY_LABELS["host"]: node},
                    "annotations": annotations,
                }
            }
        ],
        ready={node: ("DevicesPublished", "the node's devices are published by modelplane up")},
    )
    try:
        gpus = nvml_pool(node, nvml if nvml is not None else load_nvml())
    except NvmlUnavailable as exc:
        log.info("no NVIDIA GPUs published: %s", exc)
        gpus = None
    if gpus is not None:
        pub.pools.append(gpus)
        pub.device_classes.append(gpu_device_class())
    return pub


class LocalDevices:
    """Publishes this host's Node and device slices now and every ``interval`` seconds.

    A service of ``modelplane up`` (``start()``/``stop(timeout)``): republishing writes only
    what changed, so a GPU that vanished, or memory that grew, shows up within ``interval``.
    """

    def __init__(
        self,
        store: Store,
        *,
        node: str | None = None,
        nvml: Any | None = None,
        interval: float = 30.0,
    ) -> None:
        self.store = store
        self.node = node or local_node_name()
        self.nvml = nvml
        self.interval = interval
        self.last_report: PublishReport | None = None
        #: set before :meth:`start` by ``modelplane node`` once its probes listen
        self.metrics_url: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish_once(self) -> PublishReport:
        self.last_report = publish(
            self.store, local_publication(self.node, self.nvml, metrics_url=self.metrics_url)
        )
        return self.last_report

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="local-devices", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.publish_once()
            except Exception as exc:  # the store is down or busy: keep trying, say why
                log.warning("publishing the devices of %s failed: %s", self.node, exc)
            self._stop.wait(self.interval)

    def stop(self, timeout: float) -> bool:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True
