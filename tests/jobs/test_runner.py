"""The job runner on a real store: what keeps a gang from starting, and the reason in status.

The runs themselves (the sandbox, gloo, restarts) are in tests/e2e/test_jobs.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.control._wait import wait_until

from modelplane.agents import BundleStore, digest_of, pack
from modelplane.api import REPLICA_LABEL
from modelplane.jobs import JobRunner
from modelplane.store import Store, open_store

CLAIM = {"requests": [{"name": "cpu", "exactly": {"deviceClassName": "cpu.modelplane.dev"}}]}


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    with open_store(sqlite_url) as s:
        yield s


@pytest.fixture
def bundle(tmp_path: Path) -> str:
    """A bundle holding ``main.py``, uploaded to the runner's home; its digest."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "main.py").write_text("print('hello')\n")
    data = pack(code)
    BundleStore(tmp_path / "home").put(digest_of(data), data)
    return digest_of(data)


@pytest.fixture
def runner(store: Store, tmp_path: Path) -> Iterator[JobRunner]:
    r = JobRunner(store, "n1", tmp_path / "home")
    r.start()
    try:
        yield r
    finally:
        assert r.stop(10)


def _job(name: str, template: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": 2, "template": template, **spec},
    }


def _condition(store: Store, name: str, kind: str, saying: str = "") -> dict[str, Any] | None:
    """Condition ``kind`` of Job ``name`` once its reason or message holds ``saying``."""
    job = store.get("Job", "default", name)
    for c in (job.get("status") or {}).get("conditions") or []:
        if c["type"] == kind and saying in f"{c.get('reason')} {c.get('message')}":
            return dict(c)
    return None


def _allocated_claim(store: Store, job: dict[str, Any], index: int, node: str) -> None:
    meta = job["metadata"]
    claim = store.create(
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {
                "name": f"{meta['name']}-claim-{index}",
                "namespace": "default",
                "labels": {REPLICA_LABEL: str(index)},
                "ownerReferences": [
                    {"apiVersion": "modelplane.dev/v1alpha1", "kind": "Job",
                     "name": meta["name"], "uid": meta["uid"], "controller": True}
                ],
            },
            "spec": {"devices": CLAIM},
        }
    )  # fmt: skip
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    allocation = {"devices": {"results": []}, "nodeSelector": {"nodeSelectorTerms": [term]}}
    store.update_status({**claim, "status": {"allocation": allocation}})


def test_replicas_allocated_on_two_nodes_do_not_start_and_the_job_says_why(
    store: Store, runner: JobRunner, bundle: str, tmp_path: Path
) -> None:
    # given a gang whose two claims were allocated on two nodes
    job = store.create(
        _job("split", {"bundle": bundle, "command": ["python3", "main.py"]}, claim=CLAIM)
    )
    _allocated_claim(store, job, 0, "n1")
    _allocated_claim(store, job, 1, "n2")
    # then none starts: one sandbox's loopback cannot join two nodes
    running = wait_until(
        lambda: _condition(store, "split", "Running", "SpansNodes"),
        timeout=30,
        what="Running=False SpansNodes",
    )
    assert running["status"] == "False" and running["reason"] == "SpansNodes", running
    assert "topology.required: host" in running["message"]
    assert not (tmp_path / "home" / "jobs").exists()


def test_a_gang_with_one_claim_unallocated_does_not_start(
    store: Store, runner: JobRunner, bundle: str, tmp_path: Path
) -> None:
    job = store.create(
        _job("half", {"bundle": bundle, "command": ["python3", "main.py"]}, claim=CLAIM)
    )
    _allocated_claim(store, job, 0, "n1")  # replica 1 has no claim yet
    running = wait_until(
        lambda: _condition(store, "half", "Running", "replica 1"),
        timeout=30,
        what="Running=False naming replica 1",
    )
    assert running["reason"] == "NotAdmitted", running
    assert "replica 1 has no ResourceClaim yet" in running["message"]
    assert not (tmp_path / "home" / "jobs").exists()


def test_a_command_missing_from_its_bundle_or_a_bundle_not_uploaded_fails_the_job(
    store: Store, runner: JobRunner, bundle: str
) -> None:
    store.create(_job("missing", {"bundle": bundle, "command": ["train.sh"]}))
    store.create(_job("nobundle", {"bundle": "sha256:" + "0" * 64, "command": ["python3"]}))
    failed = wait_until(
        lambda: _condition(store, "missing", "Failed"), timeout=30, what="missing failed"
    )
    assert failed["reason"] == "CommandNotInBundle" and "train.sh" in failed["message"]
    failed = wait_until(
        lambda: _condition(store, "nobundle", "Failed"), timeout=30, what="nobundle failed"
    )
    assert failed["reason"] == "BundleNotFound", failed
