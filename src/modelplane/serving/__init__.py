"""Serving runtime: model artifacts, model workers, simulated workers and the node agent.

Owns: the content-addressed artifact store under ``$MODELPLANE_HOME/models/``
(:class:`ArtifactStore`), the model worker process (``python -m modelplane.serving.worker``: a
subset of the OpenAI API over HTTP on loopback, with per-replica Prometheus metrics), the simulated
worker (``python -m modelplane.serving.simulated``, a latency model speaking the same API), and the
:class:`NodeAgent`, which starts, health-checks and restarts workers to match Endpoints and reports
``status.replicas`` / ``readyReplicas`` / the ``Ready`` condition; and the Models themselves: the
:class:`ModelController` verifies each version's artifact against its digest (:class:`DigestCache`,
:func:`artifact_digest`), reading local sources only under the operator's model roots.

Must not touch: the gateway (it reads the replicas' URLs from Endpoint status; we never route
requests), the scheduler's allocation (we only read ResourceClaims' ``status.allocation``), other
subsystems' internals. torch and transformers are imported only inside worker processes and for
GGUF conversion, so importing this package stays light.
"""

from modelplane.api import (
    DEMAND_ANNOTATION,
    IDLE_TIMEOUT_ANNOTATION,
    SIMULATED_ANNOTATION,
    SIMULATED_LABEL,
)
from modelplane.serving._adapters import AdapterSet
from modelplane.serving._agent import (
    NodeAgent,
    allocation_node,
    visible_devices,
)
from modelplane.serving._app import create_worker_app
from modelplane.serving._artifacts import (
    PICKLE_SUFFIXES,
    Artifact,
    ArtifactStore,
    verify,
)
from modelplane.serving._digest import DigestCache, artifact_digest
from modelplane.serving._engine import Delta, Engine, GenerationRequest
from modelplane.serving._errors import ArtifactError, EngineError, SourceNotAllowed
from modelplane.serving._model_controller import ModelController, local_source
from modelplane.serving._signed import MODEL_SIGNING_KEY_ENV, SignatureCheck
from modelplane.serving.simulated import LatencyModel, SimulatedEngine, create_simulated_app

__all__ = [
    "DEMAND_ANNOTATION",
    "IDLE_TIMEOUT_ANNOTATION",
    "MODEL_SIGNING_KEY_ENV",
    "PICKLE_SUFFIXES",
    "SIMULATED_ANNOTATION",
    "SIMULATED_LABEL",
    "AdapterSet",
    "Artifact",
    "ArtifactError",
    "ArtifactStore",
    "Delta",
    "DigestCache",
    "Engine",
    "EngineError",
    "GenerationRequest",
    "LatencyModel",
    "ModelController",
    "NodeAgent",
    "SignatureCheck",
    "SimulatedEngine",
    "SourceNotAllowed",
    "allocation_node",
    "artifact_digest",
    "create_simulated_app",
    "create_worker_app",
    "local_source",
    "verify",
    "visible_devices",
]
