"""Builders and waiting helpers shared by the store tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from modelplane.store import JSON, Watch, WatchEvent


def model(
    name: str, namespace: str = "default", labels: dict[str, str] | None = None, **spec: Any
) -> JSON:
    """A Model manifest as a client would send it."""
    meta: JSON = {"name": name, "namespace": namespace}
    if labels is not None:
        meta["labels"] = labels
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": meta,
        "spec": spec or {"task": "chat"},
    }


def node(name: str, **spec: Any) -> JSON:
    """A cluster-scoped object (no namespace)."""
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": spec or {"pool": "a"},
    }


def collect(watch: Watch, count: int, timeout: float = 10.0) -> list[WatchEvent]:
    """Read events until ``count`` have arrived or ``timeout`` passed (then return what came)."""
    events: list[WatchEvent] = []
    deadline = time.monotonic() + timeout
    while len(events) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        events.extend(watch.next_batch(remaining))
    return events


def wait_until(condition: Any, timeout: float = 10.0, interval: float = 0.01) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` passed; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def race(stores: tuple[Any, Any], contend: Callable[[Any, str], None], count: int = 6) -> None:
    """Run ``contend(store, name)`` in ``count`` threads at once, alternating between two store
    instances (two processes' views of one database), and wait for all of them."""
    threads = [
        threading.Thread(target=contend, args=(stores[i % 2], f"p{i}")) for i in range(count)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
