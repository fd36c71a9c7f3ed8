"""Simulation: synthetic clusters and traces, simulators of the scheduler and the router, the optimum.

Owns what exercises the platform's real decision code at a scale no test machine has, without
hardware or a store: the cluster and workload generator (HGX-like nodes, MIG, NVL72 racks, the
Alibaba-trace workload and the known hard inputs), the discrete-event simulator of scheduling
(:func:`simulate`: claims and Jobs through the real :class:`~modelplane.scheduling.Admission`),
the exact optimum of a batch (:func:`optimum`, an integer program checked by :func:`replay`
against the real allocator), the autoscaled fleet under a load step (:func:`simulate_fleet`:
the real :class:`~modelplane.autoscaling.KPA`), a NodePool against a static cluster
(:func:`simulate_nodepool`), and the routing simulation (:func:`simulate_routing`: vLLM-like
replicas behind the gateway's real :class:`~modelplane.gateway.Router`). ``modelplane sim`` and
the benchmarks of :mod:`modelplane.bench` are built on it.

Must not touch: the store, or any subsystem's private modules: it reads only the public names of
:mod:`modelplane.scheduling` and :mod:`modelplane.gateway`, and no runtime package imports it.
The simulated model worker stays in :mod:`modelplane.serving` (``python -m
modelplane.serving.simulated``): the node agent runs it as the replica of an Endpoint on a
simulated Node, so it is runtime code, not a simulator of it.

Example::

    from modelplane.sim import generate_cluster, generate_workload, simulate

    result = simulate(generate_cluster(16), generate_workload(200), "modelplane")
"""

from modelplane.sim._fleet import Fleet, LoadStep, simulate_fleet
from modelplane.sim._generator import (
    DEFAULT_MIX,
    GPU_MODELS,
    NIC_DRIVER,
    NIC_MIX,
    HardInput,
    generate_alibaba_workload,
    generate_cluster,
    generate_workload,
    hard_inputs,
    kv_claim,
    kv_gpu,
    mean_units,
    nic_claim,
)
from modelplane.sim._nodepool import ClaimLoad, PoolShape, simulate_nodepool
from modelplane.sim._optimum import Optimum, demand, optimum, replay
from modelplane.sim._power import CALIBRATION, PowerModel, ReplicaLoad, simulate_power
from modelplane.sim._routing import (
    WORKLOADS,
    ReplicaModel,
    TraceError,
    TraceRequest,
    generate_trace,
    load_trace,
    parse_trace,
    simulate_routing,
)
from modelplane.sim._scheduling import simulate, split_objects

__all__ = [
    "CALIBRATION",
    "DEFAULT_MIX",
    "GPU_MODELS",
    "NIC_DRIVER",
    "NIC_MIX",
    "WORKLOADS",
    "ClaimLoad",
    "Fleet",
    "HardInput",
    "LoadStep",
    "Optimum",
    "PoolShape",
    "PowerModel",
    "ReplicaLoad",
    "ReplicaModel",
    "TraceError",
    "TraceRequest",
    "demand",
    "generate_alibaba_workload",
    "generate_cluster",
    "generate_trace",
    "generate_workload",
    "hard_inputs",
    "kv_claim",
    "kv_gpu",
    "load_trace",
    "mean_units",
    "nic_claim",
    "optimum",
    "parse_trace",
    "replay",
    "simulate",
    "simulate_fleet",
    "simulate_nodepool",
    "simulate_power",
    "simulate_routing",
    "split_objects",
]
