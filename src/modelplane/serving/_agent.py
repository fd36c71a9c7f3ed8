"""The node agent: runs the worker processes of the Endpoints placed on this node.

Level-triggered, like a controller: every change of an Endpoint, Model, Node or ResourceClaim (and
every :data:`TICK` seconds) it computes the replicas that should run here, starts the missing ones,
stops the ones no longer wanted (or whose command changed), health-checks the rest, and writes each
Endpoint's ``status``:

* ``status.replicas[] {name, version, node, url, ready, message}``: ``url`` is the worker's base URL
  ending in ``/v1``; entries of other nodes' agents are kept as they are;
* ``status.readyReplicas`` and a ``Ready`` condition: True when every version that receives
  traffic has a ready replica (or is ``format: upstream``, which has no worker: the gateway calls
  its ``source``); otherwise False with the reason (``DigestMismatch``, ``PickleRefused``,
  ``ModelNotFound``, ``ReplicasStarting``, ``CrashLoopBackOff``, ``WaitingForAllocation``...).

**Which replicas**: per version with weight > 0 in the traffic split (``status.traffic`` when a
rollout set it, else ``spec.traffic``, else the Model's last version) or named by
``spec.routing.headerRoutes``, ``max(replicas.min, 1)`` replicas, more (up to ``replicas.max``)
while every replica has requests queued; with ``replicas.autoscaling`` instead the count the
replica autoscaler wrote to ``status.autoscaling.desiredReplicas`` (:mod:`modelplane.autoscaling`),
applied per version. A
``scaleToZero`` endpoint with ``min: 0`` runs none until demand: the gateway sets the annotation
:data:`DEMAND_ANNOTATION` to the current Unix time (seconds) when a request finds no ready replica;
replicas stay while requests came within ``idle_timeout`` seconds (the Endpoint annotation
:data:`IDLE_TIMEOUT_ANNOTATION`, a duration such as ``5m``, overrides it per Endpoint).

**Where**: when the scheduler allocated the Endpoint's ResourceClaims (owned by the Endpoint,
labelled ``modelplane.dev/replica=<i>``), replica ``i`` of the Endpoint (counting versions in order)
runs on the claim's node with ``CUDA_VISIBLE_DEVICES`` set to the allocated GPUs' ``index``
attributes (and ``NVIDIA_VISIBLE_DEVICES`` to their UUIDs, :func:`visible_devices`); when the
Endpoint has no claims it runs on this node's CPU, both set so that it sees no GPU at all. Replicas whose node is
labelled :data:`SIMULATED_LABEL` ``=true`` (or of an Endpoint annotated
``modelplane.dev/simulated: "true"``) run the simulated worker
(:mod:`modelplane.serving.simulated`), its latency from the Endpoint annotations
``modelplane.dev/simulated-ttft`` / ``-tpot`` (durations such as ``50ms``, or per version with a
``.<version>`` suffix, e.g. ``modelplane.dev/simulated-tpot.v2``).

**Artifacts**: before starting a real worker the agent finds the version's artifact in the
content-addressed store by digest (importing it from ``source`` the first time, and only from inside
the operator's ``model_roots``: elsewhere the reason is ``SourceNotAllowed``) and verifies its
digest; a mismatch or pickled weights keep the replica stopped with the reason in status. A version
that names a ``signature`` is checked with the operator's trusted key (``model_signing_key``,
:mod:`modelplane.serving._signed`) before any load: a tampered file keeps the replica stopped with
reason ``ArtifactTampered`` naming the file and its expected and found digests. The worker verifies
the digest again before it loads.

**LoRA adapters**: the Model's versions with ``adapterOf: V`` are the adapters of every real
replica of version ``V``. The agent imports each adapter's artifact into the store as above, then
registers it with each ready replica by name and digest (``PUT /adapters/{name}`` on the worker,
authenticated with a token the agent gives its workers in ``MODELPLANE_WORKER_TOKEN``); an adapter
removed from the Model is unregistered (``DELETE``), which unloads it. The worker loads an adapter
on its first request. ``status.replicas[].adapters`` lists the adapters each replica holds now,
which the gateway prefers when routing a request for one. A traffic split naming an adapter is
refused (reason ``AdapterInTraffic``): an adapter is served by its base version's replicas.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import secrets
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from modelplane.api import (
    DEMAND_ANNOTATION,
    HOSTNAME_LABEL,
    IDLE_TIMEOUT_ANNOTATION,
    NODE_LEASE_SECONDS,
    REPLICA_LABEL,
    SIMULATED_ANNOTATION,
    SIMULATED_LABEL,
    node_lease_name,
    parse_duration,
)
from modelplane.api.errors import NotFound
from modelplane.control import Informer, commit_status, get_condition, set_condition
from modelplane.serving._adapters import WORKER_TOKEN_ENV
from modelplane.serving._artifacts import ArtifactStore, refuse_pickle, verify
from modelplane.serving._digest import DigestCache
from modelplane.serving._errors import ArtifactError, ReplicaProblem, SourceNotAllowed
from modelplane.serving._model_controller import local_source
from modelplane.serving._replica import ReplicaProcess, ReplicaSpec
from modelplane.serving._signed import SignatureCheck
from modelplane.store import Store

log = logging.getLogger("modelplane.serving.agent")

JSON = dict[str, Any]

TICK = 0.5
_SCALE_UP_AFTER = 5.0
_SCALE_DOWN_AFTER = 60.0


def visible_devices(devices: Sequence[JSON]) -> tuple[tuple[str, str], ...]:
    """The environment that makes a replica see only its allocated GPUs (``devices``: their
    attributes), whatever the node agent's own environment holds.

    ``CUDA_VISIBLE_DEVICES`` lists their ``index`` attributes; ``NVIDIA_VISIBLE_DEVICES`` (what
    NVIDIA's container runtime reads) their ``uuid``s. A replica without a GPU gets
    ``CUDA_VISIBLE_DEVICES=""`` (CUDA then sees none) and ``NVIDIA_VISIBLE_DEVICES=void`` (the
    runtime mounts none).
    """
    indices: list[str] = []
    ids: list[str] = []
    for attributes in devices:
        index = (attributes.get("index") or {}).get("int")
        if index is None:
            continue  # not a whole GPU the CUDA runtime numbers (a CPU share, a NIC)
        indices.append(str(index))
        ids.append(str((attributes.get("uuid") or {}).get("string") or index))
    return (
        ("CUDA_VISIBLE_DEVICES", ",".join(indices)),
        ("NVIDIA_VISIBLE_DEVICES", ",".join(ids) or "void"),
    )


class NodeAgent:
    """Runs the replicas of this node (module docstring); a ``platform.services`` entry.

    ``store``: the object store; ``node_name``: this machine's Node name; ``home``: where artifacts
    (``models/``) and worker logs (``replicas/``) live; ``simulate``: also run the replicas of
    simulated nodes here; ``idle_timeout``: seconds a scale-to-zero replica may sit idle;
    ``model_roots``: the only folders a version's local ``source`` is read from when its digest is
    not in the artifact store yet (default: none); ``lease_duration``: seconds the node's
    heartbeat lease (:func:`~modelplane.api.node_lease_name`) lasts, renewed every third of it
    while the agent runs: once it lapses the Node is marked ``Ready=Unknown`` and its replicas
    are placed elsewhere.
    """

    def __init__(
        self,
        store: Store,
        node_name: str,
        home: str | Path,
        *,
        simulate: bool = True,
        idle_timeout: float = 300.0,
        python: str = sys.executable,
        model_roots: Sequence[str | Path] = (),
        model_signing_key: str | Path | None = None,
        lease_duration: float = NODE_LEASE_SECONDS,
    ) -> None:
        self.store = store
        self.lease_duration = lease_duration
        self._renew_at = 0.0
        #: folders a version's local ``source`` may be imported from (``--model-root``)
        self.model_roots = tuple(Path(r) for r in model_roots)
        self.node_name = node_name
        self.home = Path(home)
        self.simulate = simulate
        self.idle_timeout = idle_timeout
        self.python = python
        self.artifacts = ArtifactStore(self.home)
        #: checks signed versions with the operator's public key (``--model-signing-key``)
        self.signatures = SignatureCheck(self.artifacts, model_signing_key)
        self.component = f"node-agent/{node_name}"
        self._digests = DigestCache()
        self._informers = {
            kind: Informer(store, kind, resync=30.0)
            for kind in ("Endpoint", "Model", "Node", "ResourceClaim", "ResourceSlice")
        }
        for informer in self._informers.values():
            informer.add_handler(
                on_add=lambda _o: self._wake.set(),
                on_update=lambda _a, _b: self._wake.set(),
                on_delete=lambda _o: self._wake.set(),
            )
        self._replicas: dict[tuple[str, str, str, int], ReplicaProcess] = {}
        self._extra: dict[tuple[str, str, str], int] = {}
        self._busy_since: dict[tuple[str, str, str], float] = {}
        self._last_active: dict[tuple[str, str], float] = {}
        self._problems: dict[tuple[str, str], ReplicaProblem] = {}
        self._serves_workers: dict[tuple[str, str], bool] = {}
        #: replica slots wanted per Endpoint (every version), reported as status.desiredReplicas
        self._desired_slots: dict[tuple[str, str], int] = {}
        #: per real replica, the adapters (name -> digest) its workers should hold
        self._adapters: dict[tuple[str, str, str, int], dict[str, str]] = {}
        #: what the agent's workers accept on their adapter routes (new per agent)
        self._worker_token = secrets.token_urlsafe(32)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = httpx.Client()

    # -- Service ----------------------------------------------------------------------------------

    def start(self) -> None:
        self._heartbeat()  # the lease exists from the start: the Node is watched from then on
        for informer in self._informers.values():
            informer.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="node-agent", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop the loop and every worker (SIGTERM, then SIGKILL); True when all ended in time."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        ok = self._thread is None or not self._thread.is_alive()
        for replica in list(self._replicas.values()):
            ok = replica.stop(max(0.1, min(5.0, deadline - time.monotonic()))) and ok
        self._replicas.clear()
        for informer in self._informers.values():
            ok = informer.stop(max(0.1, deadline - time.monotonic())) and ok
        self._client.close()
        return ok

    def replicas(self) -> list[ReplicaProcess]:
        """The replicas this agent runs now (for tests and diagnostics)."""
        return list(self._replicas.values())

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        for informer in self._informers.values():
            informer.wait_for_sync(10.0)
        while not self._stop.is_set():
            self._heartbeat()
            try:
                self._sync()
            except Exception:
                log.exception("%s: sync failed", self.component)
            self._wake.wait(TICK)
            self._wake.clear()

    def _heartbeat(self) -> None:
        """Renew the node's lease when a third of it has passed (held by the node's name, so a
        restarted agent renews its predecessor's at once)."""
        now = time.monotonic()
        if now < self._renew_at:
            return
        try:
            name = node_lease_name(self.node_name)
            held = self.store.acquire_lease(name, self.node_name, self.lease_duration)
        except Exception:  # the store is away: try again next tick, the lease says the rest
            log.warning("%s: cannot renew the node's lease", self.component, exc_info=True)
            return
        if held is None:
            log.warning("%s: the node's lease is held by another agent", self.component)
        self._renew_at = now + self.lease_duration / 3

    def _sync(self) -> None:
        now = time.monotonic()
        endpoints = [
            e
            for e in self._informers["Endpoint"].list()
            if not (e.get("metadata") or {}).get("deletionTimestamp")
        ]
        wanted: dict[tuple[str, str, str, int], ReplicaSpec] = {}
        self._problems = {}
        self._adapters = {}
        for endpoint in endpoints:
            meta = endpoint["metadata"]
            key = (str(meta.get("namespace") or ""), str(meta["name"]))
            try:
                for spec in self._desired(endpoint, now):
                    wanted[spec.key] = spec
            except ReplicaProblem as problem:
                self._problems[key] = problem
        for rkey, replica in list(self._replicas.items()):
            if wanted.get(rkey) != replica.spec:
                replica.stop()
                del self._replicas[rkey]
        for rkey, spec in wanted.items():
            if rkey not in self._replicas:
                self._replicas[rkey] = ReplicaProcess(spec, self.home / "replicas")
        for replica in self._replicas.values():
            replica.tick(self._client, now)
            if replica.ready and not replica.spec.simulated:
                self._sync_adapters(replica)
        for endpoint in endpoints:
            self._report(endpoint)

    # -- desired replicas -------------------------------------------------------------------------

    def _desired(self, endpoint: JSON, now: float) -> list[ReplicaSpec]:
        meta = endpoint["metadata"]
        ns, name = str(meta.get("namespace") or ""), str(meta["name"])
        spec = endpoint.get("spec") or {}
        model = self._informers["Model"].get(ns, str(spec.get("model")))
        if model is None:
            raise ReplicaProblem(
                "ModelNotFound",
                f"Model {spec.get('model')!r} does not exist in namespace {ns!r}; apply it",
            )
        versions = {str(v.get("name")): v for v in (model.get("spec") or {}).get("versions") or []}
        traffic = (endpoint.get("status") or {}).get("traffic") or spec.get("traffic") or []
        targets = [str(t["version"]) for t in traffic if int(t.get("weight") or 0) > 0]
        if not traffic and versions:
            targets = [list(versions)[-1]]
        # a version header routes name serves its requests even without a share of the split
        header_routes = (spec.get("routing") or {}).get("headerRoutes") or []
        targets = list(dict.fromkeys([*targets, *(str(h["version"]) for h in header_routes)]))
        for version in targets:
            if version not in versions:
                raise ReplicaProblem(
                    "VersionNotFound",
                    f"traffic names version {version!r}, which Model {model['metadata']['name']!r}"
                    f" does not have (it has {', '.join(versions) or 'none'})",
                )
            if versions[version].get("adapterOf"):
                raise ReplicaProblem(
                    "AdapterInTraffic",
                    f"traffic names version {version!r}, an adapter of"
                    f" {versions[version]['adapterOf']!r}: send traffic to"
                    f" {versions[version]['adapterOf']!r} and name the adapter in requests"
                    f" (model: {name}:{version})",
                )
        served = [v for v in targets if versions[v].get("format") != "upstream"]
        self._serves_workers[(ns, name)] = bool(served)
        counts = {v: self._count(endpoint, v, now) for v in served}
        # reported before placement: the claim controller makes one claim per slot from it
        self._desired_slots[(ns, name)] = sum(counts.values())
        claims = self._claims(endpoint)
        annotations = meta.get("annotations") or {}
        forced_sim = str(annotations.get(SIMULATED_ANNOTATION, "")).lower() == "true"
        out: list[ReplicaSpec] = []
        gpus: list[JSON]
        slot = 0
        for version in served:
            for index in range(counts[version]):
                node, gpus = self.node_name, []  # no claim: this node, no GPU
                if claims:
                    node, gpus = self._placement(claims.get(slot), endpoint, slot)
                slot += 1
                simulated = forced_sim or self._is_simulated(node)
                if simulated and not self.simulate:
                    continue
                if not simulated and node != self.node_name:
                    continue  # another node's agent runs it
                if simulated:
                    argv = self._simulated_argv(name, version, annotations)
                else:
                    argv = self._worker_argv(model, versions[version], name)
                env = visible_devices(gpus)
                if not simulated:
                    env += ((WORKER_TOKEN_ENV, self._worker_token),)
                    self._adapters[(ns, name, version, index)] = self._adapters_of(model, version)
                out.append(ReplicaSpec(ns, name, version, index, node, argv, env, simulated))
        return out

    def _adapters_of(self, model: JSON, version: str) -> dict[str, str]:
        """name -> digest of the adapters of ``version`` whose artifacts are in the store (an
        adapter whose artifact is refused is left out and logged: the base still serves)."""
        out: dict[str, str] = {}
        for v in (model.get("spec") or {}).get("versions") or []:
            if v.get("adapterOf") != version:
                continue
            try:
                out[str(v["name"])] = self._artifact(model, v)[1]
            except ReplicaProblem as problem:
                log.warning("%s: adapter left out: %s", self.component, problem.message)
        return out

    def _sync_adapters(self, replica: ReplicaProcess) -> None:
        """Register the adapters ``replica`` should hold and unregister the others (a restarted
        worker holds none: its health says what it has)."""
        wanted = self._adapters.get(replica.spec.key, {})
        base = replica.url.removesuffix("/v1")
        auth = {"authorization": f"Bearer {self._worker_token}"}
        for name, digest in wanted.items():
            held = name in replica.registered_adapters
            if held and replica.adapter_digests.get(name) == digest:
                continue
            try:
                r = self._client.put(
                    f"{base}/adapters/{name}", json={"digest": digest}, headers=auth, timeout=10
                )
            except httpx.HTTPError as exc:
                log.warning("%s: registering adapter %s: %s", self.component, name, exc)
                continue
            if r.status_code == 200:
                replica.adapter_digests[name] = digest
                replica.registered_adapters |= {name}
            else:
                log.warning("%s: adapter %s refused: %s", self.component, name, r.text[:300])
        for name in replica.registered_adapters - set(wanted):
            with contextlib.suppress(httpx.HTTPError):  # the next tick tries again
                r = self._client.delete(f"{base}/adapters/{name}", headers=auth, timeout=10)
                if r.status_code in (200, 404):
                    replica.registered_adapters -= {name}
                    replica.adapter_digests.pop(name, None)

    def _count(self, endpoint: JSON, version: str, now: float) -> int:
        meta = endpoint["metadata"]
        ns, name = str(meta.get("namespace") or ""), str(meta["name"])
        replicas = (endpoint.get("spec") or {}).get("replicas") or {}
        low = int(replicas.get("min", 1))
        high = int(replicas.get("max") or max(low, 1))
        mine = [r for r in self._replicas.values() if r.spec.key[:3] == (ns, name, version)]
        active = self._last_active.get((ns, name), 0.0)
        for r in mine:
            if r.ready:
                # a replica that just became ready has not served the request that woke it yet
                # (after a slow cold start its idle clock already exceeds the timeout): its idle
                # period starts no earlier than its readiness
                active = max(active, now - r.idle_seconds, r.ready_since)
        demand = (meta.get("annotations") or {}).get(DEMAND_ANNOTATION)
        # the annotation is wall-clock time; our clock is monotonic
        with contextlib.suppress(ValueError):
            active = max(active, now - max(0.0, time.time() - float(demand or 0)))
        self._last_active[(ns, name)] = active
        if low == 0 and replicas.get("scaleToZero"):
            base = 1 if now - active < self._idle_timeout(endpoint) else 0
        else:
            base = max(low, 1)
        if replicas.get("autoscaling"):
            # the replica autoscaler decides; scale-to-zero's wake-up and idle rule stay ours
            wanted = ((endpoint.get("status") or {}).get("autoscaling") or {}).get(
                "desiredReplicas"
            )
            count = base if base == 0 or not isinstance(wanted, int) else max(base, wanted)
            return max(0, min(high, count))
        # load: add a replica while every ready one has queued requests for a while
        key = (ns, name, version)
        ready = [r for r in mine if r.ready]
        if ready and all(r.queue_depth > 0 for r in ready):
            self._busy_since.setdefault(key, now)
            if now - self._busy_since[key] > _SCALE_UP_AFTER:
                self._extra[key] = self._extra.get(key, 0) + 1
                self._busy_since[key] = now
        else:
            self._busy_since.pop(key, None)
            if ready and all(r.idle_seconds > _SCALE_DOWN_AFTER for r in ready):
                self._extra[key] = max(0, self._extra.get(key, 0) - 1)
        if base == 0:
            return 0
        return max(0, min(high, base + self._extra.get(key, 0)))

    def _idle_timeout(self, endpoint: JSON) -> float:
        value = ((endpoint["metadata"].get("annotations") or {}).get(IDLE_TIMEOUT_ANNOTATION)) or ""
        if not value:
            return self.idle_timeout
        try:
            return parse_duration(str(value))
        except ValueError:
            raise ReplicaProblem(
                "InvalidAnnotation",
                f"{IDLE_TIMEOUT_ANNOTATION} {value!r} is not a duration like 5m or 30s",
            ) from None

    def _claims(self, endpoint: JSON) -> dict[int, JSON]:
        """The Endpoint's ResourceClaims by replica index (empty when it has none)."""
        meta = endpoint["metadata"]
        out: dict[int, JSON] = {}
        for claim in self._informers["ResourceClaim"].list():
            cmeta = claim.get("metadata") or {}
            if cmeta.get("namespace") != meta.get("namespace"):
                continue
            owners = cmeta.get("ownerReferences") or []
            if not any(o.get("uid") == meta.get("uid") for o in owners):
                continue
            try:
                out[int((cmeta.get("labels") or {}).get(REPLICA_LABEL, ""))] = claim
            except ValueError:
                continue
        return out

    def _placement(self, claim: JSON | None, endpoint: JSON, slot: int) -> tuple[str, list[JSON]]:
        """(node, attributes of the allocated devices) of an allocated claim; raises
        ReplicaProblem while unallocated."""
        name = endpoint["metadata"]["name"]
        if claim is None:
            raise ReplicaProblem(
                "WaitingForAllocation",
                f"replica {slot} of {name} has no ResourceClaim yet (one per replica, labelled"
                f" {REPLICA_LABEL}={slot})",
            )
        allocation = (claim.get("status") or {}).get("allocation")
        if not allocation:
            raise ReplicaProblem(
                "WaitingForAllocation",
                f"ResourceClaim {claim['metadata']['name']} is not allocated yet (see its status)",
            )
        results = ((allocation.get("devices") or {}).get("results")) or []
        node = allocation_node(allocation)
        devices: list[JSON] = []
        for result in results:
            device = self._device(str(result.get("pool")), str(result.get("device")))
            if device is None:
                continue
            node = node or str(device[0])
            devices.append(device[1].get("attributes") or {})
        return node or self.node_name, devices

    def _device(self, pool: str, device: str) -> tuple[str, JSON] | None:
        for slice_ in self._informers["ResourceSlice"].list():
            spec = slice_.get("spec") or {}
            if (spec.get("pool") or {}).get("name") != pool:
                continue
            for d in spec.get("devices") or []:
                if d.get("name") == device:
                    return str(spec.get("nodeName") or ""), d
        return None

    def _lost(self, node: str) -> bool:
        """Whether ``node`` was deleted or is marked not Ready (``Ready`` False or Unknown)."""
        obj = self._informers["Node"].get("", node)
        if obj is None:
            return True
        ready = get_condition(obj.get("status"), "Ready")
        return ready is not None and ready.get("status") in ("False", "Unknown")

    def _is_simulated(self, node: str) -> bool:
        obj = self._informers["Node"].get("", node)
        labels = ((obj or {}).get("metadata") or {}).get("labels") or {}
        return str(labels.get(SIMULATED_LABEL, "")).lower() == "true"

    def _simulated_argv(
        self, endpoint: str, version: str, annotations: dict[str, str]
    ) -> tuple[str, ...]:
        argv = [self.python, "-m", "modelplane.serving.simulated", "--name", endpoint]
        for what in ("ttft", "tpot"):
            value = annotations.get(
                f"modelplane.dev/simulated-{what}.{version}"
            ) or annotations.get(f"modelplane.dev/simulated-{what}")
            if value:
                try:
                    argv += [f"--{what}", str(parse_duration(value))]
                except ValueError:
                    raise ReplicaProblem(
                        "InvalidAnnotation",
                        f"modelplane.dev/simulated-{what} {value!r} is not a duration like 50ms",
                    ) from None
        return tuple(argv)

    def _worker_argv(self, model: JSON, version: JSON, endpoint: str) -> tuple[str, ...]:
        path, digest = self._artifact(model, version)
        argv = [self.python, "-m", "modelplane.serving.worker", "--model-dir", str(path)]
        argv += ["--digest", digest, "--name", endpoint, "--home", str(self.home)]
        if version.get("allowPickle"):
            argv.append("--allow-pickle")
        return tuple(argv)

    def _artifact(self, model: JSON, version: JSON) -> tuple[Path, str]:
        """The verified local path of ``version``'s artifact, importing it on first use."""
        vname = version.get("name")
        digest = str(version.get("digest") or "")
        if not digest:
            raise ReplicaProblem("DigestMissing", f"version {vname} has no digest; set it")
        allow_pickle = bool(version.get("allowPickle"))
        try:
            artifact = self.artifacts.get(digest)
            if artifact is None:
                try:
                    source = local_source(str(version.get("source") or ""), self.model_roots)
                except SourceNotAllowed as exc:
                    raise ReplicaProblem(
                        "SourceNotAllowed", f"version {vname}: {exc.message}"
                    ) from None
                if source is None:
                    raise ReplicaProblem(
                        "UnsupportedSource",
                        f"version {vname}: source {version.get('source')!r} is not a local path;"
                        " import the artifact with `modelplane models import`",
                    )
                verify(Path(source), digest, self._digests)
                artifact = self.artifacts.import_path(
                    source, allow_pickle=allow_pickle, expected_digest=digest
                )
            refuse_pickle(artifact.path, allow_pickle)
            try:
                verify(artifact.path, digest, self._digests)
            except ArtifactError as mismatch:
                # a signed version names the changed file, with its expected and found digests
                raise self.signatures.explain(artifact.path, version) or mismatch from None
            self.signatures.check(artifact.path, digest, version)
        except ArtifactError as exc:
            # a signature's own errors name the version already
            prefix = f"version {vname}: "
            message = exc.message if exc.message.startswith(prefix) else prefix + exc.message
            raise ReplicaProblem(exc.reason, message) from None
        return artifact.path, digest

    # -- status -----------------------------------------------------------------------------------

    def _report(self, endpoint: JSON) -> None:
        meta = endpoint["metadata"]
        ns, name = str(meta.get("namespace") or ""), str(meta["name"])
        mine = sorted(
            (r for r in self._replicas.values() if r.spec.key[:2] == (ns, name)),
            key=lambda r: r.spec.key,
        )
        managed = {r.spec.node for r in mine} | {self.node_name}
        old_status: JSON = endpoint.get("status") or {}
        # other agents' entries stay, but for nodes that are gone or lost (their agent can no
        # longer say): a lost node's replica must not look ready, nor be routed to
        others = [
            r
            for r in old_status.get("replicas") or []
            if isinstance(r, dict)
            and r.get("node") not in managed
            and not self._lost(str(r.get("node") or ""))
        ]
        entries = others + [
            {
                "name": r.spec.name,
                "version": r.spec.version,
                "node": r.spec.node,
                "url": r.url,
                "ready": r.ready,
                "message": r.message,
                **({"simulated": True} if r.spec.simulated else {}),
                **({"adapters": list(r.adapters)} if r.adapters else {}),
            }
            for r in mine
        ]
        ready, reason, message = self._readiness(endpoint, entries, mine)
        status = copy.deepcopy(old_status)
        status["replicas"] = entries
        status["readyReplicas"] = sum(1 for e in entries if e.get("ready"))
        if (ns, name) in self._desired_slots:
            status["desiredReplicas"] = self._desired_slots[(ns, name)]
        generation = meta.get("generation")
        if generation is not None:
            status["observedGeneration"] = generation
        set_condition(status, "Ready", ready, reason, message, generation)
        if status == old_status:
            return
        try:
            current = self.store.get("Endpoint", ns, name)
        except NotFound:
            return
        if current["metadata"].get("uid") != meta.get("uid"):
            return
        # the message counts replicas: only a change of state or reason is an Event
        written = commit_status(
            self.store,
            current,
            status,
            component=self.component,
            compared=("status", "reason"),
            observed_generation=False,  # stamped above: the generation this status describes
        )
        if written is None:
            self._wake.set()  # a newer version is coming through the informer

    def _readiness(
        self, endpoint: JSON, entries: list[JSON], mine: list[ReplicaProcess]
    ) -> tuple[bool, str, str]:
        meta = endpoint["metadata"]
        key = (str(meta.get("namespace") or ""), str(meta["name"]))
        problem = self._problems.get(key)
        if problem is not None:
            return False, problem.reason, problem.message
        wanted_versions = sorted({r.spec.version for r in mine})
        if not mine and not entries:
            replicas = (endpoint.get("spec") or {}).get("replicas") or {}
            if not self._serves_workers.get(key, False):
                return True, "Upstream", "every version is served by an upstream"
            if replicas.get("scaleToZero"):
                return True, "ScaledToZero", "no replica runs; the next request starts one"
            return False, "NoReplicas", "no replica runs yet (placed on nodes without an agent?)"
        for version in wanted_versions:
            replicas = [r for r in mine if r.spec.version == version]
            if not any(r.ready for r in replicas):
                worst = max(replicas, key=lambda r: _severity(r.reason))
                return (
                    False,
                    "ReplicasStarting"
                    if worst.reason in ("Starting", "Unhealthy")
                    else worst.reason,
                    f"version {version}: no ready replica; {worst.spec.name}: {worst.message}",
                )
        n = sum(1 for e in entries if e.get("ready"))
        return True, "ReplicasReady", f"{n}/{len(entries)} replicas ready"


def _severity(reason: str) -> int:
    return {"ArtifactRefused": 3, "CrashLoopBackOff": 2, "Unhealthy": 1}.get(reason, 0)


def allocation_node(allocation: JSON) -> str:
    """The node a claim's ``status.allocation`` names in its ``nodeSelector`` ("" when none)."""
    terms = (allocation.get("nodeSelector") or {}).get("nodeSelectorTerms") or []
    for term in terms:
        for field in (term.get("matchFields") or []) + (term.get("matchExpressions") or []):
            if field.get("key") in ("metadata.name", HOSTNAME_LABEL) and field.get("values"):
                return str(field["values"][0])
    return ""
