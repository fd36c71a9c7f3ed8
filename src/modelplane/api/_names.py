"""The names Modelplane writes into objects and agrees on across packages: labels, annotations,
routing policies and the metadata the server owns.

A controller writes a label that another package's controller reads; both take the name from here,
so renaming one cannot silently break the other. Every name is part of the API: a user may set or
select on it (``modelplane get resourceclaims -l modelplane.dev/replica=0``).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

# -- labels ----------------------------------------------------------------------------------

#: the Node label naming its host (the Kubernetes well-known label)
HOSTNAME_LABEL: Final = "kubernetes.io/hostname"
#: the Node label naming its rack (a topology domain of Jobs)
RACK_LABEL: Final = "topology.modelplane.dev/rack"
#: the Node label naming its block (a topology domain above racks)
BLOCK_LABEL: Final = "topology.modelplane.dev/block"
#: Job topology level -> the Node label whose value names that domain.
TOPOLOGY_LABELS: Final[dict[str, str]] = {
    "host": HOSTNAME_LABEL,
    "rack": RACK_LABEL,
    "block": BLOCK_LABEL,
}
#: on a ResourceClaim made from a template: the index of the replica it is for
REPLICA_LABEL: Final = "modelplane.dev/replica"
#: on a ResourceClaim made from a template: the kind of the object that owns it
OWNER_KIND_LABEL: Final = "modelplane.dev/owner-kind"
#: on a ResourceClaim of a Job replica: the Job's name
JOB_LABEL: Final = "modelplane.dev/job"
#: the Endpoint a replica (a rendered pod, an InferencePool member) serves
ENDPOINT_LABEL: Final = "modelplane.dev/endpoint"
#: the Model version a replica serves
VERSION_LABEL: Final = "modelplane.dev/version"
#: on every ResourceSlice a publisher writes: whose it is
PUBLISHER_LABEL: Final = "modelplane.dev/publisher"
#: on a Node: the replicas it runs are simulated (no weights are loaded)
SIMULATED_LABEL: Final = "modelplane.dev/simulated"

# -- annotations -----------------------------------------------------------------------------

#: on an Endpoint: set by the gateway (Unix seconds) when a request finds no ready replica of a
#: ``scaleToZero`` endpoint; the node agent then starts one (the contract between the two)
DEMAND_ANNOTATION: Final = "modelplane.dev/demand"
#: on an Endpoint: how long a replica may be idle before the node agent stops it
IDLE_TIMEOUT_ANNOTATION: Final = "modelplane.dev/idle-timeout"
#: on a Node: the base URL of its node agent's ``/metrics`` (``modelplane node`` writes it), which
#: Prometheus' service discovery lists
METRICS_URL_ANNOTATION: Final = "modelplane.dev/metrics-url"
#: on a DeviceClass: GPU time-slicing, up to this many claims (an integer, 2 to 64) share each of
#: its devices, each getting one slice of the capacity :data:`TIME_SLICES_CAPACITY`
TIME_SLICING_ANNOTATION: Final = "modelplane.dev/time-slicing-replicas"
#: the consumable capacity a time-sliced device offers (its replicas) and each share consumes (1)
TIME_SLICES_CAPACITY: Final = "modelplane.dev/timeSlices"
#: the most claims one time-sliced device may be shared by
MAX_TIME_SLICES: Final = 64
#: on an Endpoint: serve it with simulated replicas
SIMULATED_ANNOTATION: Final = "modelplane.dev/simulated"
# Deprecated annotations, read only when the spec field they stand for is unset (the spec wins):
#: Endpoint annotation (deprecated: ``spec.fallbacks``): models to try in order ("a,b" or "ns/a")
FALLBACKS_ANNOTATION: Final = "modelplane.dev/fallbacks"
#: Endpoint annotation (deprecated: ``spec.routing.sticky``): "true" keeps a session on a version
STICKY_ANNOTATION: Final = "modelplane.dev/sticky-sessions"
#: Endpoint annotation (deprecated: ``spec.limits.usdPerMillionTokens``): the price ``budget`` uses
PRICE_ANNOTATION: Final = "modelplane.dev/usd-per-million-tokens"
#: Graph annotation (deprecated: an Ensemble node's ``merge``): the default merge of its Ensembles
ENSEMBLE_ANNOTATION: Final = "modelplane.dev/ensemble-merge"
#: on an Endpoint: a one-shot rollout action (pause, resume, promote, abort) for the controller
ACTION_ANNOTATION: Final = "modelplane.dev/rollout-action"
#: on a ResourceClaim made from a template: the hash of the template it was made from
TEMPLATE_HASH_ANNOTATION: Final = "modelplane.dev/claim-template-hash"
#: on a ResourceClaim: the Queue it is admitted through
QUEUE_ANNOTATION: Final = "modelplane.dev/queue"
#: on a ResourceClaim: its priority (higher preempts lower)
PRIORITY_ANNOTATION: Final = "modelplane.dev/priority"
#: on a ResourceClaim: the gang it belongs to, and the gang's size
GANG_ANNOTATION: Final = "modelplane.dev/gang"
GANG_SIZE_ANNOTATION: Final = "modelplane.dev/gang-size"
#: Claims with the same value (in one namespace) belong to one consumer, e.g. one replica that
#: needs a GPU claim and a NIC claim: they are allocated together, on one node (as Kubernetes
#: allocates the claims of one pod), and the search backtracks across them.
CONSUMER_ANNOTATION: Final = "modelplane.dev/consumer"
#: How many claims the consumer has: none is allocated before all of them exist.
CONSUMER_CLAIMS_ANNOTATION: Final = "modelplane.dev/consumer-claims"
#: on a Node: its power cap, and the cap of its rack, in watts (the power scorer reads them)
NODE_POWER_CAP_ANNOTATION: Final = "modelplane.dev/power-cap-watts"
RACK_POWER_CAP_ANNOTATION: Final = "modelplane.dev/rack-power-cap-watts"
#: on a Node: the runtime power budget of the node, and of its rack, in watts: the power
#: controller keeps the sum of the devices' power caps under them
NODE_POWER_BUDGET_ANNOTATION: Final = "modelplane.dev/power-budget-watts"
RACK_POWER_BUDGET_ANNOTATION: Final = "modelplane.dev/rack-power-budget-watts"
#: on a simulated workload's claim: when it arrives and how long it runs, in seconds
ARRIVAL_ANNOTATION: Final = "modelplane.dev/arrival-seconds"
DURATION_ANNOTATION: Final = "modelplane.dev/duration-seconds"

# -- routing policies ------------------------------------------------------------------------

#: how the gateway picks a replica of an Endpoint version (``spec.routing.policy``)
RoutingPolicy = Literal[
    "round-robin", "least-request", "load", "prefix-cache", "session-affinity", "prefix-load"
]
ROUTING_POLICIES: Final[tuple[str, ...]] = get_args(RoutingPolicy)
#: the policies that route by the prompt's leading blocks
PREFIX_POLICIES: Final[tuple[str, ...]] = ("prefix-cache", "prefix-load")
#: the policies that need replicas' scraped load (queue depth, KV-cache use)
SCRAPED_POLICIES: Final[tuple[str, ...]] = ("load", "prefix-load")

# -- metadata the server owns ----------------------------------------------------------------

#: metadata the store owns: kept from the stored object whatever a write says, and never sent by
#: a client (a dumped object applied again must not carry them)
SERVER_OWNED: Final[tuple[str, ...]] = (
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
