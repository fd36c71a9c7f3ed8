"""Jobs on a real `modelplane up`: replicas start together as sandboxed processes, all or nothing.

One platform runs three Jobs, applied by `up -f` as a user applies them (each folder packed as
the Job's bundle): the example `examples/jobs/allreduce/` (two replicas all-reduce a tensor over
torch.distributed/gloo), a gang that cannot be placed, and a gang whose rank 1 always fails.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.control._wait import wait_until
from tests.e2e._proc import UpProcess

from modelplane.sandbox import ProcessSandbox, SandboxUnavailable

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "jobs" / "allreduce"
JOBS = "/apis/modelplane.dev/v1alpha1/namespaces/default/jobs"

_TOO_BIG = """\
apiVersion: modelplane.dev/v1alpha1
kind: Job
metadata: {name: toobig}
spec:
  replicas: 2
  claim:
    requests:
      - name: cpu
        exactly:
          deviceClassName: cpu.modelplane.dev
          capacity: {requests: {cpu: "512"}}
  template: {command: [python3, allreduce.py]}
"""
_FLAKY = """\
apiVersion: modelplane.dev/v1alpha1
kind: Job
metadata: {name: flaky}
spec:
  replicas: 2
  restartPolicy: OnFailure
  backoffLimit: 1
  template:
    command: [python3, allreduce.py]
    env: {FAIL_RANK: "1"}
"""


def _require_sandbox() -> None:
    try:
        ProcessSandbox().run(["/bin/true"])
    except SandboxUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc}; CI=true requires the process sandbox")
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    """`modelplane up -f` of the example and of the two other Jobs; a client and the home."""
    pytest.importorskip("torch")
    _require_sandbox()
    work = tmp_path_factory.mktemp("jobs")
    more = work / "more"
    more.mkdir()
    shutil.copyfile(EXAMPLE / "allreduce.py", more / "allreduce.py")
    (more / "toobig.yaml").write_text(_TOO_BIG)
    (more / "flaky.yaml").write_text(_FLAKY)
    up = UpProcess(work / "home", extra=["-f", str(EXAMPLE), "-f", str(more)])
    try:
        with httpx.Client(base_url=up.start().url, timeout=30) as client:
            yield client, up.home
    finally:
        up.stop()


def _condition(job: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in (job.get("status") or {}).get("conditions") or [] if c["type"] == kind]
    return found[0] if found else {}


def _wait_for(client: httpx.Client, name: str, kind: str, timeout: float) -> dict[str, Any]:
    """The Job once its condition ``kind`` is True."""

    def done() -> dict[str, Any] | None:
        r = client.get(f"{JOBS}/{name}")
        if r.status_code != 200:
            return None
        job: dict[str, Any] = r.json()
        return job if _condition(job, kind).get("status") == "True" else None

    return wait_until(done, timeout=timeout, what=f"Job {name} {kind}")


def _logs(home: Path, job: dict[str, Any], attempt: int) -> Path:
    uid = job["metadata"]["uid"][:8]
    return home / "jobs" / "default" / job["metadata"]["name"] / f"{uid}-{attempt}"


def test_the_allreduce_example_completes_with_the_sum_in_both_replicas_logs(
    platform: tuple[httpx.Client, Path],
) -> None:
    client, home = platform
    # given the example applied by `up -f`, its two replicas placed together
    # when it runs to the end
    job = _wait_for(client, "allreduce", "Complete", timeout=300)
    # then both replicas saw the all-reduced tensor: (1 + 2, 10 + 20)
    folder = _logs(home, job, 0)
    for rank in (0, 1):
        lines = (folder / f"replica-{rank}.log").read_text().splitlines()
        result = json.loads([line for line in lines if line.startswith("{")][-1])
        assert result == {"rank": rank, "worldSize": 2, "sum": [3.0, 30.0]}
    status = job["status"]
    # and the Job says where the logs are
    assert str(folder.relative_to(home)) in _condition(job, "Complete")["message"]
    assert _condition(job, "Admitted")["status"] == "True"
    assert status["succeeded"] == 2 and status["active"] == 0
    assert status["startTime"] <= status["completionTime"]
    assert status.get("restarts", 0) == 0


def test_a_gang_that_cannot_be_placed_starts_no_replica_and_says_why(
    platform: tuple[httpx.Client, Path],
) -> None:
    client, home = platform

    def refused() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"{JOBS}/toobig").json()
        running = _condition(job, "Running")
        return job if running.get("reason") == "NotAdmitted" else None

    job = wait_until(refused, timeout=60, what="Job toobig not admitted")
    admitted = _condition(job, "Admitted")
    assert admitted["status"] == "False", admitted
    assert admitted["message"] in _condition(job, "Running")["message"]
    assert "cpu" in admitted["message"] or "capacity" in admitted["message"], admitted
    # none of its replicas started: no folder, no claim allocated
    assert not (home / "jobs" / "default" / "toobig").exists()
    claims = client.get(
        "/apis/resource.k8s.io/v1/namespaces/default/resourceclaims",
    ).json()["items"]
    mine = [c for c in claims if c["metadata"]["name"].startswith("toobig-")]
    assert len(mine) == 2
    assert not any((c.get("status") or {}).get("allocation") for c in mine)


def test_a_failing_replica_stops_its_gang_which_restarts_until_the_backoff_limit(
    platform: tuple[httpx.Client, Path],
) -> None:
    client, home = platform
    # given a gang whose rank 1 exits 3 at once, OnFailure, backoffLimit 1
    job = _wait_for(client, "flaky", "Failed", timeout=300)
    failed = _condition(job, "Failed")
    # then it was restarted once, and failed with the replica and its status named
    assert failed["reason"] == "BackoffLimitExceeded", failed
    assert "replica 1 exited with status 3" in failed["message"], failed
    assert job["status"]["restarts"] == 1
    for attempt in (0, 1):
        folder = _logs(home, job, attempt)
        report = json.loads(
            (folder / "launcher.log").read_text().strip().splitlines()[-1],
        )
        # rank 0, blocked in its rendezvous, was stopped with its failing peer
        assert report["failed"] == 1 and report["exits"]["1"] == 3
        assert report["exits"]["0"] != 0
