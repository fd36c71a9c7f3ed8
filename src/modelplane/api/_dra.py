"""Dynamic Resource Allocation: ``DeviceClass``, ``ResourceSlice``, ``ResourceClaim``.

These are the ``resource.k8s.io/v1`` kinds of Kubernetes, with their exact field names. Every
structure here is an :class:`OpenSchema`: fields we do not model (newer Kubernetes releases add
some with every minor version) are kept as they are, so an object dumped from a cluster validates
and round-trips unchanged. What the scheduler relies on is typed and checked: drivers, pools,
devices and their attributes, capacities and counters, requests, selectors and constraints.

The claim structure (:class:`DeviceClaim`, the ``spec.devices`` of a ResourceClaim) is also the
device template of our own kinds (``Endpoint.spec.devices``, ``Job.spec.claim``); there, unknown
fields are refused as typos (see :func:`~modelplane.api._types.unknown_fields`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from modelplane.api._meta import Condition, OpenSchema, Resource
from modelplane.api._names import MAX_TIME_SLICES, TIME_SLICING_ANNOTATION
from modelplane.api._quantity import Quantity
from modelplane.api._types import Problems, duplicates

_V1 = "resource.k8s.io"

# --- shared parts --------------------------------------------------------------------------------


class CELDeviceSelector(OpenSchema):
    """A CEL expression over one device."""

    expression: str = Field(
        min_length=1,
        description=(
            "CEL expression that must evaluate to true for a device to be selected, e.g."
            " `device.driver == 'gpu.nvidia.com' && device.capacity['gpu.nvidia.com'].memory"
            ".compareTo(quantity('40Gi')) >= 0`."
        ),
    )


class DeviceSelector(OpenSchema):
    """One criterion a device must meet."""

    cel: CELDeviceSelector | None = Field(default=None, description="A CEL expression.")


class OpaqueDeviceConfiguration(OpenSchema):
    """Driver-specific parameters, passed to the driver as they are."""

    driver: str = Field(description="The driver these parameters are for, e.g. `gpu.nvidia.com`.")
    parameters: Any = Field(default=None, description="Any JSON object the driver understands.")


class NodeSelectorRequirement(OpenSchema):
    """``key operator values`` over node labels or fields."""

    key: str = Field(description="Label (or field) key.")
    operator: str = Field(description="In, NotIn, Exists, DoesNotExist, Gt or Lt.")
    values: list[str] | None = Field(default=None, description="Values for In, NotIn, Gt and Lt.")


class NodeSelectorTerm(OpenSchema):
    """Requirements that must all hold (a term is an AND)."""

    match_expressions: list[NodeSelectorRequirement] | None = Field(
        default=None, description="Requirements on node labels."
    )
    match_fields: list[NodeSelectorRequirement] | None = Field(
        default=None, description="Requirements on node fields."
    )


class NodeSelector(OpenSchema):
    """Which nodes: any one of the terms must match (the terms are ORed)."""

    node_selector_terms: list[NodeSelectorTerm] = Field(
        description="Terms, any of which selects a node."
    )


class DeviceToleration(OpenSchema):
    """Tolerates device taints matching ``key``/``value``/``effect`` with ``operator``."""

    key: str | None = Field(default=None, description="Taint key; empty matches every key.")
    operator: str | None = Field(default=None, description="`Equal` (the default) or `Exists`.")
    value: str | None = Field(default=None, description="Taint value for `Equal`.")
    effect: str | None = Field(
        default=None, description="`NoSchedule` or `NoExecute`; empty matches every effect."
    )
    toleration_seconds: int | None = Field(
        default=None, description="How long a `NoExecute` taint is tolerated."
    )


class CapacityRequirements(OpenSchema):
    """Amounts of device capacity a request needs."""

    requests: dict[str, Quantity] | None = Field(
        default=None,
        description="Capacity name -> minimum amount, e.g. `memory: 40Gi`.",
    )


# --- ResourceSlice -------------------------------------------------------------------------------


class DeviceAttribute(OpenSchema):
    """One attribute value; exactly one of the typed fields is set."""

    int_: int | None = Field(default=None, alias="int", description="An integer.")
    bool_: bool | None = Field(default=None, alias="bool", description="true or false.")
    string: str | None = Field(default=None, max_length=64, description="A string.")
    version: str | None = Field(
        default=None, max_length=64, description="A semantic version (semver 2.0.0)."
    )
    ints: list[int] | None = Field(default=None, description="A list of integers (alpha).")
    bools: list[bool] | None = Field(default=None, description="A list of booleans (alpha).")
    strings: list[str] | None = Field(default=None, description="A list of strings (alpha).")
    versions: list[str] | None = Field(default=None, description="A list of versions (alpha).")

    _TYPED: ClassVar[tuple[str, ...]] = (
        "int_",
        "bool_",
        "string",
        "version",
        "ints",
        "bools",
        "strings",
        "versions",
    )

    @model_validator(mode="after")
    def _one_value(self) -> Self:
        set_ = [n for n in self._TYPED if getattr(self, n) is not None]
        if len(set_) != 1:
            shown = ", ".join(n.rstrip("_") for n in set_) or "none"
            problems = Problems()
            problems.add(
                (),
                f"exactly one of int, bool, string or version must be set (set: {shown})",
            )
            problems.raise_any()
        return self


class DeviceCapacity(OpenSchema):
    """A quantity a device has, such as its memory."""

    value: Quantity = Field(description='How much, e.g. "80Gi".')
    request_policy: Any = Field(
        default=None, description="How requests may consume this capacity (shared devices)."
    )


class Counter(OpenSchema):
    """A quantity in a counter set."""

    value: Quantity = Field(description='How much, e.g. "40Gi" or 7.')


class CounterSet(OpenSchema):
    """A named set of counters that partitions of one physical device draw from."""

    name: str = Field(min_length=1, description="Referenced by devices' `consumesCounters`.")
    counters: dict[str, Counter] = Field(description="Counter name -> available amount.")


class DeviceCounterConsumption(OpenSchema):
    """What a device (e.g. a MIG partition) takes from a counter set when allocated."""

    counter_set: str = Field(min_length=1, description="Name of a shared counter set.")
    counters: dict[str, Counter] = Field(description="Counter name -> amount consumed.")


class DeviceTaint(OpenSchema):
    """A taint on a device; claims must tolerate it to use the device."""

    key: str = Field(description="Taint key.")
    value: str | None = Field(default=None, description="Taint value.")
    effect: str = Field(description="`NoSchedule`, `NoExecute` or `None`.")
    time_added: str | None = Field(default=None, description="When the taint was added.")


class Device(OpenSchema):
    """One device a driver offers: a GPU, a MIG partition, a NIC, a TPU chip..."""

    name: str = Field(
        min_length=1, description="Unique among the devices of the pool (a DNS label)."
    )
    attributes: dict[str, DeviceAttribute] | None = Field(
        default=None,
        description=(
            "Qualified name -> typed value, e.g. `productName: {string: NVIDIA H100 80GB HBM3}`"
            " or `resource.kubernetes.io/pcieRoot: {string: pci0000:00}`; names without a domain"
            " belong to the driver."
        ),
    )
    capacity: dict[str, DeviceCapacity] | None = Field(
        default=None, description="Capacity name -> quantity, e.g. `memory: {value: 80Gi}`."
    )
    consumes_counters: list[DeviceCounterConsumption] | None = Field(
        default=None, description="Counters this device draws from shared counter sets."
    )
    taints: list[DeviceTaint] | None = Field(default=None, description="Driver-defined taints.")
    binds_to_node: bool | None = Field(
        default=None, description="An allocation of this device is tied to the chosen node."
    )
    node_name: str | None = Field(
        default=None, description="Node of this device (with perDeviceNodeSelection)."
    )
    node_selector: NodeSelector | None = Field(
        default=None, description="Nodes of this device (with perDeviceNodeSelection)."
    )
    all_nodes: bool | None = Field(
        default=None, description="Every node reaches this device (with perDeviceNodeSelection)."
    )


class ResourcePool(OpenSchema):
    """The pool a slice belongs to; a pool may span several slices."""

    name: str = Field(min_length=1, description="Pool name, often the node name.")
    generation: int = Field(
        ge=0, description="Bumped by the driver on every change; only the highest counts."
    )
    resource_slice_count: int = Field(ge=1, description="How many slices make up the pool.")


class ResourceSliceSpec(OpenSchema):
    """Devices a driver publishes for one pool (usually one node)."""

    driver: str = Field(min_length=1, description="The DRA driver, e.g. `gpu.nvidia.com`.")
    pool: ResourcePool = Field(description="Which pool and which generation of it.")
    node_name: str | None = Field(default=None, description="The node that has these devices.")
    node_selector: NodeSelector | None = Field(
        default=None, description="Nodes that reach these devices (network-attached pools)."
    )
    all_nodes: bool | None = Field(default=None, description="Every node reaches these devices.")
    per_device_node_selection: bool | None = Field(
        default=None, description="Each device says which nodes reach it."
    )
    devices: list[Device] | None = Field(default=None, description="The devices.")
    shared_counters: list[CounterSet] | None = Field(
        default=None, description="Counter sets that partitionable devices draw from."
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = Problems()
        chosen = [
            alias
            for alias, on in (
                ("nodeName", bool(self.node_name)),
                ("nodeSelector", self.node_selector is not None),
                ("allNodes", bool(self.all_nodes)),
                ("perDeviceNodeSelection", bool(self.per_device_node_selection)),
            )
            if on
        ]
        if len(chosen) != 1:
            problems.add(
                (chosen[1],) if len(chosen) > 1 else (),
                "exactly one of nodeName, nodeSelector, allNodes or perDeviceNodeSelection must"
                f" be set (set: {', '.join(chosen) or 'none'})",
            )
        for i, name, first in duplicates(d.name for d in self.devices or []):
            problems.add(
                ("devices", i, "name"), f"duplicate device name {name!r} (also devices[{first}])"
            )
        for i, name, first in duplicates(c.name for c in self.shared_counters or []):
            problems.add(
                ("sharedCounters", i, "name"),
                f"duplicate counter set {name!r} (also sharedCounters[{first}])",
            )
        problems.raise_any()
        return self


class ResourceSlice(Resource):
    """Devices published by a DRA driver, per node or pool (cluster-scoped).

    A driver (NVML on a real machine, a file inventory in a simulation) writes one or more slices
    per pool; the scheduler reads them to place claims.
    """

    model_config = ConfigDict(extra="allow")

    spec: ResourceSliceSpec = Field(description="The pool and its devices.")

    GROUP: ClassVar[str] = _V1
    VERSION: ClassVar[str] = "v1"
    PLURAL: ClassVar[str] = "resourceslices"
    NAMESPACED: ClassVar[bool] = False
    ALSO_ACCEPTED: ClassVar[tuple[str, ...]] = ("modelplane.dev/v1alpha1",)
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("NODE", "spec.nodeName"),
        ("DRIVER", "spec.driver"),
        ("POOL", "spec.pool.name"),
    )


# --- DeviceClass ---------------------------------------------------------------------------------


class DeviceClassConfiguration(OpenSchema):
    """Configuration applied to every device claimed through the class."""

    opaque: OpaqueDeviceConfiguration | None = Field(
        default=None, description="Driver-specific parameters."
    )


class DeviceClassSpec(OpenSchema):
    """What a class of devices is: selectors every device must meet, plus configuration."""

    selectors: list[DeviceSelector] | None = Field(
        default=None, description="Criteria every device of the class must meet."
    )
    config: list[DeviceClassConfiguration] | None = Field(
        default=None, description="Configuration for the devices' drivers."
    )
    extended_resource_name: str | None = Field(
        default=None,
        description="Extended resource name (e.g. `nvidia.com/gpu`) satisfied by this class.",
    )


class DeviceClass(Resource):
    """A named kind of device that claims ask for, e.g. ``gpu.nvidia.com`` (cluster-scoped)."""

    model_config = ConfigDict(extra="allow")

    spec: DeviceClassSpec = Field(
        default_factory=DeviceClassSpec, description="Selectors and configuration."
    )

    GROUP: ClassVar[str] = _V1
    VERSION: ClassVar[str] = "v1"
    PLURAL: ClassVar[str] = "deviceclasses"

    @model_validator(mode="after")
    def _time_slicing(self) -> Self:
        raw = (self.metadata.annotations or {}).get(TIME_SLICING_ANNOTATION)
        if raw is None:
            return self
        if not str(raw).isdigit() or not 2 <= int(raw) <= MAX_TIME_SLICES:
            problems = Problems()
            problems.add(
                ("metadata", "annotations", TIME_SLICING_ANNOTATION),
                f"{raw!r} is not a number of claims that may share each device: write an integer"
                f" from 2 to {MAX_TIME_SLICES}, or remove the annotation for exclusive devices",
            )
            problems.raise_any()
        return self

    NAMESPACED: ClassVar[bool] = False
    ALSO_ACCEPTED: ClassVar[tuple[str, ...]] = ("modelplane.dev/v1alpha1",)


# --- ResourceClaim -------------------------------------------------------------------------------

AllocationMode = Literal["ExactCount", "All"]


class _CountedRequest(OpenSchema):
    device_class_name: str = Field(
        min_length=1, description="The DeviceClass whose devices may satisfy this request."
    )
    selectors: list[DeviceSelector] | None = Field(
        default=None, description="Further criteria a device must meet (all must hold)."
    )
    allocation_mode: AllocationMode | None = Field(
        default=None,
        description="`ExactCount` (the default): `count` devices; `All`: every matching device.",
    )
    count: int | None = Field(
        default=None, ge=1, description="How many devices for `ExactCount` (default 1)."
    )
    tolerations: list[DeviceToleration] | None = Field(
        default=None, description="Device taints this request tolerates."
    )
    capacity: CapacityRequirements | None = Field(
        default=None, description="Capacity the devices must have (or provide, when shared)."
    )

    @model_validator(mode="after")
    def _count_needs_exact(self) -> Self:
        if self.allocation_mode == "All" and self.count is not None:
            problems = Problems()
            problems.add(("count",), "count is only used with allocationMode ExactCount; remove it")
            problems.raise_any()
        return self


class ExactDeviceRequest(_CountedRequest):
    """A request for one or more identical devices of a class."""

    admin_access: bool | None = Field(
        default=None, description="Administrative access (monitoring), ignoring other claims."
    )


class DeviceSubRequest(_CountedRequest):
    """One alternative of a ``firstAvailable`` list."""

    name: str = Field(
        min_length=1, description="Referenced as `<request>/<subrequest>` in constraints."
    )


class DeviceRequest(OpenSchema):
    """One request of a claim: ``exactly`` a kind of device, or the ``firstAvailable`` of several."""

    name: str = Field(min_length=1, description="Referenced by constraints and by containers.")
    exactly: ExactDeviceRequest | None = Field(default=None, description="The devices wanted.")
    first_available: list[DeviceSubRequest] | None = Field(
        default=None,
        description="Alternatives in order of preference; the first that fits is allocated.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        problems = Problems()
        if (self.exactly is None) == (self.first_available is None):
            problems.add((), "exactly one of `exactly` or `firstAvailable` must be set")
        if self.first_available is not None and not self.first_available:
            problems.add(("firstAvailable",), "must list at least one alternative")
        for i, name, first in duplicates(s.name for s in self.first_available or []):
            problems.add(
                ("firstAvailable", i, "name"),
                f"duplicate subrequest name {name!r} (also firstAvailable[{first}])",
            )
        problems.raise_any()
        return self


class DeviceConstraint(OpenSchema):
    """A rule over the devices allocated to several requests."""

    requests: list[str] | None = Field(
        default=None,
        description="Requests (`name` or `name/subrequest`) it applies to; empty means all.",
    )
    match_attribute: str | None = Field(
        default=None,
        description=(
            "All devices must have the same value of this qualified attribute, e.g."
            " `resource.kubernetes.io/pcieRoot` for devices on one PCIe root."
        ),
    )
    distinct_attribute: str | None = Field(
        default=None, description="All devices must have different values of this attribute."
    )

    @model_validator(mode="after")
    def _one_rule(self) -> Self:
        problems = Problems()
        if (self.match_attribute is None) == (self.distinct_attribute is None):
            problems.add((), "exactly one of matchAttribute or distinctAttribute must be set")
        for alias, value in (
            ("matchAttribute", self.match_attribute),
            ("distinctAttribute", self.distinct_attribute),
        ):
            if value is not None and "/" not in value:
                problems.add(
                    (alias,),
                    f"{value!r} must include the domain, e.g. 'gpu.nvidia.com/{value}'",
                )
        problems.raise_any()
        return self


class DeviceClaimConfiguration(OpenSchema):
    """Configuration for the devices of some requests."""

    requests: list[str] | None = Field(
        default=None, description="Requests it applies to; empty means all."
    )
    opaque: OpaqueDeviceConfiguration | None = Field(
        default=None, description="Driver-specific parameters."
    )


class DeviceClaim(OpenSchema):
    """Which devices are wanted: requests, constraints across them, configuration."""

    requests: list[DeviceRequest] | None = Field(
        default=None, description="Requests that must all be satisfied."
    )
    constraints: list[DeviceConstraint] | None = Field(
        default=None, description="Rules over the devices of several requests."
    )
    config: list[DeviceClaimConfiguration] | None = Field(
        default=None, description="Configuration for the drivers."
    )

    @model_validator(mode="after")
    def _references(self) -> Self:
        problems = Problems()
        requests = self.requests or []
        for i, name, first in duplicates(r.name for r in requests):
            problems.add(
                ("requests", i, "name"), f"duplicate request name {name!r} (also requests[{first}])"
            )
        known = {r.name for r in requests} | {
            f"{r.name}/{s.name}" for r in requests for s in r.first_available or []
        }
        for i, constraint in enumerate(self.constraints or []):
            for j, ref in enumerate(constraint.requests or []):
                if ref not in known:
                    problems.add(
                        ("constraints", i, "requests", j),
                        f"{ref!r} names no request of this claim; known: {', '.join(sorted(known)) or 'none'}",
                    )
        problems.raise_any()
        return self


class ResourceClaimSpec(OpenSchema):
    """What a claim asks for."""

    devices: DeviceClaim = Field(default_factory=DeviceClaim, description="The devices wanted.")


class DeviceRequestAllocationResult(OpenSchema):
    """One allocated device and the request it satisfies."""

    request: str = Field(description="The request (or `request/subrequest`) it satisfies.")
    driver: str = Field(description="The device's driver.")
    pool: str = Field(description="The device's pool.")
    device: str = Field(description="The device's name in the pool.")
    admin_access: bool | None = Field(default=None, description="Allocated for admin access.")
    share_id: str | None = Field(
        default=None, alias="shareID", description="Which share of a shared device."
    )
    consumed_capacity: dict[str, Quantity] | None = Field(
        default=None, description="Capacity consumed on a shared device."
    )
    tolerations: list[DeviceToleration] | None = Field(
        default=None, description="Tolerations of the request at allocation time."
    )


class DeviceAllocationConfiguration(OpenSchema):
    """Configuration copied from the class or the claim at allocation time."""

    source: str = Field(description="`FromClass` or `FromClaim`.")
    requests: list[str] | None = Field(default=None, description="Requests it applies to.")
    opaque: OpaqueDeviceConfiguration | None = Field(
        default=None, description="Driver-specific parameters."
    )


class DeviceAllocationResult(OpenSchema):
    """The devices allocated to a claim."""

    results: list[DeviceRequestAllocationResult] | None = Field(
        default=None, description="One entry per allocated device."
    )
    config: list[DeviceAllocationConfiguration] | None = Field(
        default=None, description="Configuration for the drivers."
    )


class AllocationResult(OpenSchema):
    """Where and what was allocated."""

    devices: DeviceAllocationResult | None = Field(default=None, description="The devices.")
    node_selector: NodeSelector | None = Field(
        default=None, description="Nodes on which the allocated devices can be used."
    )
    allocation_timestamp: str | None = Field(default=None, description="When it was allocated.")


class ResourceClaimConsumerReference(OpenSchema):
    """Who may use the claim (a Pod, an Endpoint replica, a Job)."""

    api_group: str | None = Field(default=None, description="Group of the consumer.")
    resource: str = Field(description="Resource (plural) of the consumer, e.g. `pods`.")
    name: str = Field(description="Name of the consumer.")
    uid: str = Field(description="UID of the consumer.")


class AllocatedDeviceStatus(OpenSchema):
    """What a driver reports about a device it prepared."""

    driver: str = Field(description="The device's driver.")
    pool: str = Field(description="The device's pool.")
    device: str = Field(description="The device's name.")
    share_id: str | None = Field(default=None, alias="shareID", description="Which share.")
    conditions: list[Condition] | None = Field(default=None, description="Device conditions.")
    data: Any = Field(default=None, description="Driver-specific data.")
    network_data: Any = Field(default=None, description="Network configuration of the device.")


class ResourceClaimStatus(OpenSchema):
    """Whether and how the claim is allocated, and who uses it."""

    allocation: AllocationResult | None = Field(
        default=None, description="Set once the claim is allocated."
    )
    reserved_for: list[ResourceClaimConsumerReference] | None = Field(
        default=None, description="Consumers allowed to use the claim."
    )
    devices: list[AllocatedDeviceStatus] | None = Field(
        default=None, description="Per-device status reported by drivers."
    )


class ResourceClaim(Resource):
    """A request for devices, allocated by the scheduler against ResourceSlices (namespaced)."""

    model_config = ConfigDict(extra="allow")

    spec: ResourceClaimSpec = Field(
        default_factory=ResourceClaimSpec, description="What the claim asks for."
    )
    status: ResourceClaimStatus | None = Field(
        default=None, description="Allocation and reservations, written by the scheduler."
    )

    GROUP: ClassVar[str] = _V1
    VERSION: ClassVar[str] = "v1"
    PLURAL: ClassVar[str] = "resourceclaims"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("rc",)
    NAMESPACED: ClassVar[bool] = True
    ALSO_ACCEPTED: ClassVar[tuple[str, ...]] = ("modelplane.dev/v1alpha1",)
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("ALLOCATED", "status.allocation.devices.results[0].device"),
    )
