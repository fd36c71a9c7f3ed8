"""The job runner: starts a Job's replicas together in one sandbox, restarts or fails the gang.

A node-side service, level-triggered like the node agent: on every change of a Job, a
ResourceClaim, a ResourceSlice or a Node (and every :data:`TICK` seconds) it looks at each Job with
a ``spec.template`` and moves it one step:

* **Placed, all or nothing.** A Job with ``spec.claim`` runs once every replica's claim (made by
  the scheduler's job-claim controller) is allocated; until then nothing starts, and ``Running``
  is False with reason ``NotAdmitted`` and the scheduler's own message (``Admitted`` says
  ``Unschedulable`` and why, per node). A Job without a claim runs on the embedded platform's node
  only (``run_unplaced``), with no device.
* **One sandbox per gang.** The replicas of a Job are processes of one process sandbox
  (:class:`~modelplane.sandbox.ProcessSandbox`) on the node its claims were allocated on: the
  sandbox's network namespace has only a loopback, so ``MASTER_ADDR=127.0.0.1`` reaches rank 0
  and nothing outside the sandbox is reachable. Replicas allocated on several nodes do not start
  (``Running=False``, reason ``SpansNodes``): no grant of a raw TCP path between two sandboxes
  exists (docs/jobs.md says why). Each replica gets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` (as torchrun sets them) and its
  allocated devices (:func:`~modelplane.serving.visible_devices`).
* **Code from a bundle.** ``spec.template.bundle`` is read from the home's bundle store (uploaded
  by ``modelplane apply``); the command starts in its folder (read-only). ``python3`` is the
  system's interpreter with the packages installed beside the platform (``packages``) read-only
  on its path.
* **Restarts.** When a replica exits non-zero the others are stopped (the gang fails together).
  ``restartPolicy: Never`` fails the Job (``Failed``, reason ``ReplicaFailed``); ``OnFailure``
  starts the whole gang again after ``backoff_base * 2**n`` seconds (at most ``backoff_cap``),
  ``status.restarts`` counting, until ``backoffLimit`` restarts were spent (``Failed``, reason
  ``BackoffLimitExceeded``). Every replica exiting 0 completes it (``Complete``,
  ``completionTime``).
* **Logs.** ``$MODELPLANE_HOME/jobs/<namespace>/<job>/<uid8>-<attempt>/replica-<rank>.log``, one
  folder per start of the gang (``launcher.log`` beside them), copied there when the gang ends
  (the ``Complete`` or ``Failed`` condition names it); while it runs they grow in its staging
  folder (a fresh temporary folder holding a copy of the bundle, which the sandbox's own user can
  reach), named in the ``Running`` condition.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import subprocess
import sysconfig
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from modelplane.agents import BundleError, BundleStore
from modelplane.api import JOB_PYTHON, REPLICA_LABEL, SIMULATED_LABEL
from modelplane.api.errors import NotFound
from modelplane.control import Informer, commit_status, get_condition, now_rfc3339, set_condition
from modelplane.sandbox import ProcessGrants, ProcessLimits, ProcessSandbox, SandboxError
from modelplane.serving import allocation_node, visible_devices
from modelplane.store import Store

log = logging.getLogger("modelplane.jobs.runner")

JSON = dict[str, Any]

TICK = 0.5
#: the rendezvous port inside a gang's sandbox (its own network namespace: no one else's port)
MASTER_PORT = 29500
#: what a gang's sandbox may use: replicas load frameworks (address space) and run threads
JOB_LIMITS = ProcessLimits(
    wall_s=float("inf"),
    cpu_s=7 * 24 * 3600,
    memory_bytes=256 * 1024**3,
    processes=4096,
    file_bytes=16 * 1024**3,
)
_LAUNCHER = Path(__file__).with_name("_launcher.py")
_TERMINAL = ("Complete", "Failed")


def platform_packages() -> tuple[Path, ...]:
    """The folders of the packages installed beside the platform (its site-packages)."""
    paths = sysconfig.get_paths()
    found = {Path(paths[k]) for k in ("purelib", "platlib") if Path(paths[k]).is_dir()}
    return tuple(sorted(found))


@dataclass
class _Gang:
    """One start of a Job's replicas: the sandbox's process and where its output goes."""

    proc: subprocess.Popen[bytes]
    output: IO[bytes]
    folder: Path
    stage: Path
    attempt: int


@dataclass
class _Placement:
    """Where a Job's replicas run, or why they do not (``reason`` set)."""

    node: str = ""
    devices: tuple[tuple[JSON, ...], ...] = ()
    reason: str = ""
    message: str = ""


class JobRunner:
    """Runs the Jobs placed on this node (module docstring); a ``platform.services`` entry.

    ``node_name``: this machine's Node; ``home``: where bundles are read and logs written;
    ``simulate``: also run Jobs placed on simulated nodes here; ``run_unplaced``: run Jobs without
    ``spec.claim`` here (the embedded platform); ``packages``: folders on a replica's Python path
    (default: the platform's site-packages); ``backoff_base``/``backoff_cap``: seconds before a
    restart of a failed gang (doubling).
    """

    def __init__(
        self,
        store: Store,
        node_name: str,
        home: str | Path,
        *,
        simulate: bool = True,
        run_unplaced: bool = True,
        packages: Sequence[Path] | None = None,
        backoff_base: float = 10.0,
        backoff_cap: float = 360.0,
    ) -> None:
        self.store = store
        self.node_name = node_name
        self.home = Path(home)
        self.simulate = simulate
        self.run_unplaced = run_unplaced
        self.packages = tuple(packages) if packages is not None else platform_packages()
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.bundles = BundleStore(self.home)
        self.component = f"job-runner/{node_name}"
        self._sandbox = ProcessSandbox()
        self._informers = {
            kind: Informer(store, kind, resync=30.0)
            for kind in ("Job", "Node", "ResourceClaim", "ResourceSlice")
        }
        for informer in self._informers.values():
            informer.add_handler(
                on_add=lambda _o: self._wake.set(),
                on_update=lambda _a, _b: self._wake.set(),
                on_delete=lambda _o: self._wake.set(),
            )
        self._gangs: dict[tuple[str, str, str], _Gang] = {}
        #: when a failed gang may start again (monotonic seconds)
        self._not_before: dict[tuple[str, str, str], float] = {}
        #: how gangs that ended went, until written in their Job's status
        self._outcomes: dict[tuple[str, str, str], JSON] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- Service ----------------------------------------------------------------------------------

    def start(self) -> None:
        for informer in self._informers.values():
            informer.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="job-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop the loop and every gang (SIGTERM, then SIGKILL); True when all ended in time."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        ok = self._thread is None or not self._thread.is_alive()
        for key in list(self._gangs):
            self._end(key, grace_s=max(0.1, min(5.0, deadline - time.monotonic())))
        for informer in self._informers.values():
            ok = informer.stop(max(0.1, deadline - time.monotonic())) and ok
        return ok

    def _run(self) -> None:
        for informer in self._informers.values():
            informer.wait_for_sync(10.0)
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception:
                log.exception("%s: sync failed", self.component)
            self._wake.wait(TICK)
            self._wake.clear()

    def _sync(self) -> None:
        jobs = {_key(j): j for j in self._informers["Job"].list()}
        for key in list(self._gangs):
            job = jobs.get(key)
            if job is None or (job.get("metadata") or {}).get("deletionTimestamp"):
                self._end(key)
        for key, job in jobs.items():
            if (job.get("spec") or {}).get("template") and not _terminal(job):
                self._step(key, job)

    # -- one Job ----------------------------------------------------------------------------------

    def _step(self, key: tuple[str, str, str], job: JSON) -> None:
        outcome = self._outcomes.get(key)
        if outcome is not None:  # a gang ended and its outcome is not written yet
            if self._report(job, **outcome):
                del self._outcomes[key]
            return
        gang = self._gangs.get(key)
        placement = self._placement(job)
        if placement.reason:
            if gang is not None:
                self._end(key)
            if placement.reason != "OtherNode":
                self._report(job, running=(False, placement.reason, placement.message))
            return
        if gang is not None:
            code = gang.proc.poll()
            if code is None:
                return
            self._finished(key, job, gang, code)
            return
        wait = self._not_before.get(key, 0.0) - time.monotonic()
        if wait > 0:
            restarts = int((job.get("status") or {}).get("restarts") or 0)
            message = f"restart {restarts} of the gang in {wait:.0f}s (exponential backoff)"
            self._report(job, running=(False, "BackOff", message))
            return
        self._launch(key, job, placement)

    def _launch(self, key: tuple[str, str, str], job: JSON, placement: _Placement) -> None:
        spec = job.get("spec") or {}
        template = spec["template"]
        try:
            bundle = self.bundles.folder(str(template.get("bundle") or ""))
        except BundleError as exc:
            self._report(job, failed=("BundleNotFound", exc.message))
            return
        program = str(template["command"][0])
        if program != JOB_PYTHON and not (bundle / program).is_file():
            message = f"spec.template.command[0] {program!r} is not a file of bundle {bundle.name}"
            self._report(job, failed=("CommandNotInBundle", message))
            return
        attempt = int((job.get("status") or {}).get("restarts") or 0)
        folder = self.home / "jobs" / key[0] / key[1] / f"{key[2][:8]}-{attempt}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        stage = _stage(bundle)
        gang_file = stage / "run" / "gang.json"
        gang_file.write_text(json.dumps(self._gang(template, stage, placement)))
        gang_file.chmod(0o444)
        grants = ProcessGrants(
            ro_dirs=(stage / "bundle", stage / "run", *self.packages),
            rw_dirs=(stage / "logs",),
            cwd=stage / "bundle",
        )
        output = (folder / "launcher.log").open("wb")
        argv = [JOB_PYTHON, str(stage / "run" / "launcher.py"), str(gang_file)]
        try:
            proc = self._sandbox.start(argv, output=output, limits=JOB_LIMITS, grants=grants)
        except SandboxError as exc:
            output.close()
            shutil.rmtree(stage, ignore_errors=True)
            self._report(job, failed=("SandboxUnavailable", str(exc)))
            return
        self._gangs[key] = _Gang(proc, output, folder, stage, attempt)
        replicas = len(placement.devices)
        where = folder.relative_to(self.home)
        message = (
            f"{replicas} replicas on {placement.node}; logs in {stage / 'logs'} while they run,"
            f" then in $MODELPLANE_HOME/{where}"
        )
        self._report(job, running=(True, "Started", message), active=replicas)

    def _gang(self, template: JSON, stage: Path, placement: _Placement) -> JSON:
        """The launcher's GANG.json: each replica's environment, as torchrun would set it."""
        size = len(placement.devices)
        bundle, logs = stage / "bundle", stage / "logs"
        path = ":".join([str(bundle), *(str(p) for p in self.packages)])
        replicas = []
        for rank, devices in enumerate(placement.devices):
            env = {
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": "/tmp",
                "LANG": "C.UTF-8",
                **{str(k): str(v) for k, v in (template.get("env") or {}).items()},
                "PYTHONPATH": path,
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": str(size),
                "LOCAL_WORLD_SIZE": str(size),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(MASTER_PORT),
                **dict(visible_devices(list(devices))),
            }
            replicas.append({"rank": rank, "env": env})
        program = str(template["command"][0])
        argv = [program if program == JOB_PYTHON else str(bundle / program)]
        return {
            "argv": [*argv, *template["command"][1:]],
            "cwd": str(bundle),
            "logs": str(logs),
            "replicas": replicas,
        }

    def _finished(self, key: tuple[str, str, str], job: JSON, gang: _Gang, code: int) -> None:
        """The gang ended with ``code``: its outcome is written (again on the next ticks until
        the write lands, so a lost race never starts a finished gang again)."""
        self._end(key)
        self._outcomes[key] = self._outcome(key, job, gang, code)
        if self._report(job, **self._outcomes[key]):
            del self._outcomes[key]

    def _outcome(self, key: tuple[str, str, str], job: JSON, gang: _Gang, code: int) -> JSON:
        spec = job.get("spec") or {}
        replicas = int(spec.get("replicas") or 1)
        logs = f"logs in $MODELPLANE_HOME/{gang.folder.relative_to(self.home)}"
        if code == 0:
            done = f"every replica exited 0; {logs}"
            return {"complete": done, "active": 0, "succeeded": replicas}
        what = f"{_what_failed(gang.folder / 'launcher.log', code)} ({logs})"
        restarts = int((job.get("status") or {}).get("restarts") or 0)
        limit = int(spec.get("backoffLimit", 6))
        if spec.get("restartPolicy") != "OnFailure":
            return {"failed": ("ReplicaFailed", f"{what}; restartPolicy is Never")}
        if restarts >= limit:
            message = f"{what}; the gang was restarted {restarts} times (backoffLimit {limit})"
            return {"failed": ("BackoffLimitExceeded", message)}
        delay = min(self.backoff_cap, self.backoff_base * 2**restarts)
        self._not_before[key] = time.monotonic() + delay
        message = f"{what}; the gang starts again in {delay:.0f}s"
        return {"running": (False, "BackOff", message), "restarts": restarts + 1, "active": 0}

    def _end(self, key: tuple[str, str, str], grace_s: float = 5.0) -> None:
        gang = self._gangs.pop(key, None)
        if gang is None:
            return
        ProcessSandbox.stop(gang.proc, grace_s)
        gang.output.close()
        for log_file in (gang.stage / "logs").glob("replica-*.log"):
            shutil.copyfile(log_file, gang.folder / log_file.name)
        shutil.rmtree(gang.stage, ignore_errors=True)

    # -- placement --------------------------------------------------------------------------------

    def _placement(self, job: JSON) -> _Placement:
        spec = job.get("spec") or {}
        replicas = int(spec.get("replicas") or 1)
        if not spec.get("claim"):
            if not self.run_unplaced:
                return _Placement(reason="OtherNode")
            return _Placement(node=self.node_name, devices=((),) * replicas)
        claims = self._claims(job)
        nodes: list[str] = []
        devices: list[tuple[JSON, ...]] = []
        for index in range(replicas):
            claim = claims.get(index)
            allocation = ((claim or {}).get("status") or {}).get("allocation")
            if claim is None or not allocation:
                return _Placement(reason="NotAdmitted", message=_why_waiting(job, index, claim))
            node, found = self._allocated(allocation)
            nodes.append(node)
            devices.append(tuple(found))
        if len(set(nodes)) > 1:
            message = (
                f"the replicas were allocated on {len(set(nodes))} nodes ({', '.join(sorted(set(nodes)))});"
                " a gang runs in one sandbox on one node: set spec.topology.required: host"
            )
            return _Placement(reason="SpansNodes", message=message)
        node = nodes[0] if nodes else self.node_name
        if node != self.node_name and not (self.simulate and self._is_simulated(node)):
            return _Placement(reason="OtherNode")
        return _Placement(node=node, devices=tuple(devices))

    def _claims(self, job: JSON) -> dict[int, JSON]:
        meta = job["metadata"]
        out: dict[int, JSON] = {}
        for claim in self._informers["ResourceClaim"].list():
            cmeta = claim.get("metadata") or {}
            if cmeta.get("namespace") != meta.get("namespace"):
                continue
            if not any(o.get("uid") == meta.get("uid") for o in cmeta.get("ownerReferences") or ()):
                continue
            try:
                out[int((cmeta.get("labels") or {}).get(REPLICA_LABEL, ""))] = claim
            except ValueError:
                continue
        return out

    def _allocated(self, allocation: JSON) -> tuple[str, list[JSON]]:
        """(node, attributes of each allocated device) of a claim's ``status.allocation``."""
        node = allocation_node(allocation)
        found: list[JSON] = []
        for result in (allocation.get("devices") or {}).get("results") or ():
            for slice_ in self._informers["ResourceSlice"].list():
                sspec = slice_.get("spec") or {}
                if (sspec.get("pool") or {}).get("name") != result.get("pool"):
                    continue
                for device in sspec.get("devices") or ():
                    if device.get("name") == result.get("device"):
                        node = node or str(sspec.get("nodeName") or "")
                        found.append(device.get("attributes") or {})
        return node or self.node_name, found

    def _is_simulated(self, node: str) -> bool:
        obj = self._informers["Node"].get("", node)
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        return str(labels.get(SIMULATED_LABEL, "")).lower() == "true"

    # -- status -----------------------------------------------------------------------------------

    def _report(
        self,
        job: JSON,
        *,
        running: tuple[bool, str, str] | None = None,
        complete: str = "",
        failed: tuple[str, str] | None = None,
        **counts: int,
    ) -> bool:
        """Write the runner's part of ``status`` on the stored Job (read again: the scheduler
        writes ``Admitted`` beside it); False when the write lost a race (the next tick tries
        again), True when it landed or there is nothing to write on (the Job is gone or done)."""
        meta = job["metadata"]
        try:
            current = self.store.get("Job", str(meta.get("namespace") or ""), str(meta["name"]))
        except NotFound:
            return True
        if current["metadata"].get("uid") != meta.get("uid") or _terminal(current):
            return True
        status = copy.deepcopy(current.get("status") or {})
        generation = current["metadata"].get("generation")
        now = now_rfc3339()
        if running is not None:
            set_condition(status, "Running", *running, generation)
            if running[0]:
                status.setdefault("startTime", now)
        if complete:
            set_condition(status, "Running", False, "Completed", complete, generation)
            set_condition(status, "Complete", True, "Completed", complete, generation)
            status["completionTime"] = now
        if failed is not None:
            set_condition(status, "Running", False, failed[0], failed[1], generation)
            set_condition(status, "Failed", True, *failed, generation)
            status["active"] = 0
            status["failed"] = int((current.get("spec") or {}).get("replicas") or 1)
        status.update(counts)
        condition = "Failed" if failed else "Complete" if complete else "Running"
        written = commit_status(
            self.store, current, status, component=self.component, condition=condition
        )
        if written is None:
            self._wake.set()
        return written is not None


def _stage(bundle: Path) -> Path:
    """A fresh folder the sandbox's own user can reach (the home may sit in a folder only the
    platform's user may enter): a copy of the bundle, the launcher, and the logs' folder."""
    stage = Path(tempfile.mkdtemp(prefix="modelplane-job-"))
    stage.chmod(0o755)
    # links stay links: a link never copies a host file into the sandbox's reach
    shutil.copytree(bundle, stage / "bundle", symlinks=True)
    (stage / "run").mkdir(mode=0o755)
    shutil.copyfile(_LAUNCHER, stage / "run" / "launcher.py")
    (stage / "run" / "launcher.py").chmod(0o444)
    (stage / "logs").mkdir()
    (stage / "logs").chmod(0o777)  # the sandbox runs as a user of its own
    return stage


def _key(job: JSON) -> tuple[str, str, str]:
    meta = job.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name")), str(meta.get("uid") or "")


def _terminal(job: JSON) -> bool:
    status = job.get("status") or {}
    return any((get_condition(status, t) or {}).get("status") == "True" for t in _TERMINAL)


def _why_waiting(job: JSON, index: int, claim: JSON | None) -> str:
    """Why replica ``index`` is not placed: the scheduler's words when it said any."""
    admitted = get_condition(job.get("status"), "Admitted") or {}
    if admitted.get("status") == "False" and admitted.get("message"):
        return f"no replica starts until all are placed: {admitted['message']}"
    if claim is None:
        return f"no replica starts until all are placed: replica {index} has no ResourceClaim yet"
    allocated = get_condition(claim.get("status"), "Allocated") or {}
    said = allocated.get("message") or "waiting for the scheduler"
    return f"no replica starts until all are placed: {claim['metadata']['name']}: {said}"


def _what_failed(launcher_log: Path, code: int) -> str:
    """Which replica failed and how, from the launcher's last line (JSON)."""
    try:
        last = launcher_log.read_text(errors="replace").strip().splitlines()[-1]
        report = json.loads(last)
        rank = report["failed"]
        return f"replica {rank} exited with status {report['exits'][str(rank)]}"
    except (OSError, IndexError, ValueError, KeyError, TypeError):
        return f"the gang's sandbox exited with status {code} (see launcher.log)"
