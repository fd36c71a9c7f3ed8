"""The job runner on a real store: what keeps a gang from starting, and the reason in status.

The runs themselves (the sandbox, gloo, restarts) are in tests/e2e/test_jobs.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.control._wait import wait_until

from modelplane.agents import BundleStore, digest_of, pack
from modelplane.api import REPLICA_LABEL
from modelplane.jobs import JobRunner
from modelplane.sandbox import ProcessSandbox, SandboxUnavailable
from modelplane.store import Store, open_store

CLAIM = {"requests": [{"name": "cpu", "exactly": {"deviceClassName": "cpu.modelplane.dev"}}]}


def _require_sandbox() -> None:
    try:
        ProcessSandbox().run(["/bin/true"])
    except SandboxUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc}; CI=true requires the process sandbox")
        pytest.skip(str(exc))


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv and b"main.py" in argv:
            found.append(int(pid))
    return found


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    with open_store(sqlite_url) as s:
        yield s


@pytest.fixture
def bundle(tmp_path: Path) -> str:
    """A bundle holding ``main.py``, uploaded to the runner's home; its digest."""
    code = tmp_path / "code"
    code.mkdir()
    # sleeps until stopped, its argument in its command line (to find it among processes)
    (code / "main.py").write_text("import sys, time\nprint(sys.argv[1:])\ntime.sleep(300)\n")
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


def test_a_running_gang_that_loses_a_replicas_allocation_is_stopped_whole(
    store: Store, bundle: str, tmp_path: Path
) -> None:
    _require_sandbox()
    runner = JobRunner(store, "n1", tmp_path / "home")
    runner.start()
    try:
        # given a gang of two sleeping replicas, both placed on this node, running
        marker = "job-runner-test-sleeper"
        job = store.create(
            _job("sleepers", {"bundle": bundle, "command": ["python3", "main.py", marker]},
                 claim=CLAIM, restartPolicy="OnFailure")
        )  # fmt: skip
        _allocated_claim(store, job, 0, "n1")
        _allocated_claim(store, job, 1, "n1")
        wait_until(
            lambda: len(_processes_with(marker)) == 2, timeout=60, what="both replicas running"
        )
        assert _condition(store, "sleepers", "Running", "Started") is not None
        # when replica 1's claim loses its allocation (preempted, its device failed)
        claim = store.get("ResourceClaim", "default", "sleepers-claim-1")
        store.update_status({**claim, "status": {}})
        # then both replicas stop, and the Job waits to be placed again
        wait_until(lambda: not _processes_with(marker), timeout=60, what="no replica left")
        running = wait_until(
            lambda: _condition(store, "sleepers", "Running", "NotAdmitted"),
            timeout=30,
            what="Running=False NotAdmitted",
        )
        assert running["status"] == "False"
    finally:
        assert runner.stop(10)
