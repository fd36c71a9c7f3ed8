"""Kubernetes' shared allocator test table, translated to ``resource.k8s.io/v1`` dicts.

Source: ``staging/src/k8s.io/dynamic-resource-allocation/structured/internal/allocatortesting/
allocator_testing.go`` (kubernetes/kubernetes). Each :class:`Case` keeps the upstream case name;
the builders below mirror the upstream helpers (``class``, ``device``, ``slice``, ``request``,
``subRequest``, ``deviceAllocationResult``) so a case reads like its Go original.

Left out at translation time (not counted):

- cases about a feature gate being *off* (Modelplane has no such gates; every feature is on):
  admin-access-disabled, prioritized-list-disabled,
  partitionable-devices-disabled-device-consumes-counters,
  partitionable-devices-disabled-other-device-do-not-consume-counters,
  partitionable-devices-disabled-per-device-node-selection, tainted-disabled,
  tainted-prioritized-list-disabled, tainted-admin-access-disabled,
  tainted-all-devices-single-disabled, binding-conditions-without-feature-gate,
  consumable-capacity-disabled-feature, consumable-capacity-disabled-feature-with-prioritized-list,
  list-attributes-disabled-match-constraint-with-lists,
  list-attributes-disabled-distinct-constraint-with-lists;
- the ``interrupt`` subtests (context cancellation): Modelplane bounds a decision with
  ``deadline_ms`` instead (tested in test_allocator_bounds.py).

Every other case is translated: 198 (upstream's table has 212 cases, 14 of them gate-off).

Kept with an outcome different from upstream's, on purpose:
multi-host-resource-pool-complete-update-from-node-1-to-node-2 and
multi-host-resource-pool-incomplete-update-from-node-1-to-node-2. Upstream expects allocation
from node-1's *obsolete* generation 1 of a pool whose generation 2 was published on node-2, and
its table says it would rather not ("We'd like this to *not* be allocated ... DRA drivers
shouldn't depend on better handling"). The device is no longer on node-1; Modelplane only
ever allocates from a pool's newest generation, so these cases expect nothing.

``expectNumAllocateOneInvocations`` (upstream's search effort) is compared with
``AllocationResult.steps`` / ``Unschedulable.steps`` (devices tried): see ``UPSTREAM_STEPS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DA, DB = "driver-a", "driver-b"
CA, CB = "class-a", "class-b"
N1, N2 = "node-1", "node-2"
P1, P2, P3, P4 = "pool-1", "pool-2", "pool-3", "pool-4"
ALL, PER = "<allNodes>", "<perDeviceNodeSelection>"
LOCAL = "<local>"  # the allocation's nodeSelector names the node
MAX = 128

Obj = dict[str, Any]


@dataclass(frozen=True)
class V:
    """A version attribute value."""

    v: str


@dataclass
class Case:
    name: str
    claims: list[Obj]
    classes: list[Obj] = field(default_factory=list)
    slices: list[Obj] = field(default_factory=list)
    node: str = N1
    allocated: list[tuple[str, str, str]] = field(default_factory=list)
    allocated_capacity: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)
    #: None: nothing allocated; "error:<text>": refused with <text> in the reason;
    #: else one (nodeSelector, results, config) per claim.
    expect: Any = None


def cls(name: str, driver: str, *, multi: bool | None = None, config: str | None = None) -> Obj:
    expr = f'device.driver == "{driver}"'
    if multi is not None:
        expr += f" && device.allowMultipleAllocations == {str(multi).lower()}"
    spec: Obj = {"selectors": [{"cel": {"expression": expr}}]}
    if config:
        spec["config"] = [dev_config(driver, config)]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": name},
        "spec": spec,
    }


def dev_config(driver: str, attribute: str) -> Obj:
    return {"opaque": {"driver": driver, "parameters": {attribute: attribute + "Value"}}}


def _attr(value: Any) -> Obj:
    if isinstance(value, V):
        return {"version": value.v}
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": value}
    if isinstance(value, str):
        return {"string": value}
    if isinstance(value, dict):
        return value  # spelled out (empty or unknown type)
    items = list(value)
    if items and isinstance(items[0], V):
        return {"versions": [i.v for i in items]}
    if items and isinstance(items[0], bool):
        return {"bools": items}
    if items and isinstance(items[0], int):
        return {"ints": items}
    return {"strings": items}


def dev(
    name: str,
    capacity: dict[str, str] | None = None,
    attrs: dict[str, Any] | None = None,
    *,
    counters: list[tuple[str, dict[str, str]]] | None = None,
    from_counters: bool = False,
    taints: list[Obj] | None = None,
    multi: bool = False,
    policy_range: dict[str, str] | None = None,
    policy_values: tuple[str, dict[str, str], list[str]] | None = None,
    at: Any = None,
    binding: tuple[list[str], list[str]] | None = None,
    binds_to_node: bool = False,
) -> Obj:
    d: Obj = {"name": name}
    if attrs:
        d["attributes"] = {k: _attr(v) for k, v in attrs.items()}
    cap: Obj = {k: {"value": v} for k, v in (capacity or {}).items()}
    if counters:
        d["consumesCounters"] = [
            {"counterSet": cs, "counters": {k: {"value": v} for k, v in c.items()}}
            for cs, c in counters
        ]
        if from_counters:
            for _, c in counters:
                cap.update({k: {"value": v} for k, v in c.items()})
    for k, v in (policy_range or {}).items():
        cap[k] = {
            "value": v,
            "requestPolicy": {"default": "2", "validRange": {"min": "2", "step": "2", "max": "4"}},
        }
    if policy_values:
        default, caps, extra = policy_values
        for k, v in caps.items():
            cap[k] = {
                "value": v,
                "requestPolicy": {"default": default, "validValues": [default, *extra]},
            }
    if cap:
        d["capacity"] = cap
    if taints:
        d["taints"] = taints
    if multi:
        d["allowMultipleAllocations"] = True
    if at is not None:
        d.update(_node_fields(at))
    if binding:
        d["bindingConditions"], d["bindingFailureConditions"] = binding
    if binds_to_node:
        d["bindsToNode"] = True
    return d


def _node_fields(at: Any) -> Obj:
    if at == ALL:
        return {"allNodes": True}
    if at == PER:
        return {"perDeviceNodeSelection": True}
    if isinstance(at, dict):
        return {"nodeSelector": at}
    return {"nodeName": at}


def slc(
    name: str,
    at: Any,
    pool: str,
    driver: str,
    *devices: Obj,
    count: int = 1,
    gen: int = 1,
    counter_sets: list[tuple[str, dict[str, str] | None]] | None = None,
) -> Obj:
    spec: Obj = {
        "driver": driver,
        "pool": {"name": pool, "generation": gen, "resourceSliceCount": count},
    }
    spec.update(_node_fields(at))
    if devices:
        spec["devices"] = list(devices)
    if counter_sets:
        spec["sharedCounters"] = [
            {"name": n, "counters": {k: {"value": v} for k, v in (c or {}).items()}}
            for n, c in counter_sets
        ]
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": name},
        "spec": spec,
    }


def one(name: str, at: Any, pool: str, driver: str, **kw: Any) -> Obj:
    return slc(name, at, pool, driver, dev("device-1"), **kw)


def many(name: str, at: Any, pool: str, driver: str, n: int, **kw: Any) -> Obj:
    return slc(name, at, pool, driver, *[dev(f"device-{i}") for i in range(n)], **kw)


def labels(key: str, *values: str) -> Obj:
    return {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": key, "operator": "In", "values": list(values)}]}
        ]
    }


def local(node: str) -> Obj:
    return {
        "nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
        ]
    }


def cel(expr: str) -> Obj:
    return {"cel": {"expression": expr}}


def mem_at_least(q: str) -> Obj:
    return cel(f'device.capacity["{DA}"].memory.compareTo(quantity("{q}")) >= 0')


def _body(
    cls_name: str,
    count: int,
    selectors: Any,
    all_mode: bool,
    admin: bool,
    cap: str | None,
    tolerations: list[Obj] | None,
) -> Obj:
    body: Obj = {"deviceClassName": cls_name, "allocationMode": "All" if all_mode else "ExactCount"}
    if count:
        body["count"] = count
    if selectors:
        body["selectors"] = list(selectors)
    if admin:
        body["adminAccess"] = True
    if cap is not None:
        body["capacity"] = {"requests": {"capacity-0": cap}}
    if tolerations:
        body["tolerations"] = tolerations
    return body


def req(
    name: str,
    cls_name: str,
    count: int = 1,
    *selectors: Obj,
    all_mode: bool = False,
    admin: bool = False,
    cap: str | None = None,
    tolerations: list[Obj] | None = None,
) -> Obj:
    return {
        "name": name,
        "exactly": _body(cls_name, count, selectors, all_mode, admin, cap, tolerations),
    }


def sub(
    name: str,
    cls_name: str,
    count: int = 1,
    *selectors: Obj,
    all_mode: bool = False,
    cap: str | None = None,
    tolerations: list[Obj] | None = None,
) -> Obj:
    return {"name": name, **_body(cls_name, count, selectors, all_mode, False, cap, tolerations)}


def first(name: str, *subs: Obj) -> Obj:
    return {"name": name, "firstAvailable": list(subs)}


def claim(
    name: str, *requests: Obj, constraints: list[Obj] | None = None, config: list[Obj] | None = None
) -> Obj:
    devices: Obj = {"requests": list(requests)}
    if constraints is not None:
        devices["constraints"] = constraints
    if config is not None:
        devices["config"] = config
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"devices": devices},
    }


def res(
    request: str,
    driver: str,
    pool: str,
    device: str,
    admin: bool = False,
    tolerations: list[Obj] | None = None,
    *,
    share: bool = False,
    consumed: dict[str, str] | None = None,
    binding: tuple[list[str], list[str]] | None = None,
) -> Obj:
    r: Obj = {"request": request, "driver": driver, "pool": pool, "device": device}
    if admin:
        r["adminAccess"] = True
    if tolerations:
        r["tolerations"] = tolerations
    if share:
        r["shareID"] = "<share>"
    if consumed:
        r["consumedCapacity"] = consumed
    if binding and binding[0]:
        r["bindingConditions"], r["bindingFailureConditions"] = binding
    return r


def alloc(*results: Obj, selector: Any = LOCAL, config: list[Obj] | None = None) -> Obj:
    return {"selector": selector, "results": list(results), "config": config or []}


def match(attr: str, *requests: str) -> Obj:
    c: Obj = {"matchAttribute": f"{DA}/{attr}"}
    if requests:
        c["requests"] = list(requests)
    return c


def distinct(attr: str, *requests: str) -> Obj:
    c: Obj = {"distinctAttribute": f"{DA}/{attr}"}
    if requests:
        c["requests"] = list(requests)
    return c


TAINT_NONE = {"key": "taint-key", "value": "taint-value", "effect": "None"}
TAINT_NS = {"key": "taint-key", "value": "taint-value", "effect": "NoSchedule"}
TAINT_NE = {"key": "taint-key", "value": "taint-value-2", "effect": "NoExecute"}
TOL_NS = {"operator": "Exists", "key": "taint-key", "effect": "NoSchedule"}
TOL_NE = {"operator": "Equal", "key": "taint-key", "value": "taint-value-2", "effect": "NoExecute"}
TOL_NS_KEY1 = {"operator": "Exists", "key": "key1", "effect": "NoSchedule"}
GI = {"1Gi": "1Gi"}


def _mem(q: str) -> dict[str, str]:
    return {"memory": q}


def _r(*results: Obj, **kw: Any) -> list[Obj]:
    return [alloc(*results, **kw)]


def _a(req_name: str, pool: str = P1, device: str = "device-1", driver: str = DA, **kw: Any) -> Obj:
    return res(req_name, driver, pool, device, **kw)


def cases() -> list[Case]:
    A, B = cls(CA, DA), cls(CB, DB)
    c: list[Case] = []
    add = c.append
    add(
        Case(
            "simple",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [one("slice-1", N1, P1, DA)],
            expect=_r(_a("req-0")),
        )
    )
    add(
        Case(
            "other-node",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [one("slice-1", N1, P1, DB), one("slice-2", N2, P2, DA)],
            node=N2,
            expect=_r(_a("req-0", P2)),
        )
    )
    small_large = [
        claim(
            "claim-0",
            req("req-0", CA, 1, mem_at_least("1Gi")),
            req("req-1", CA, 1, mem_at_least("2Gi")),
        )
    ]
    add(
        Case(
            "small-and-large",
            small_large,
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", _mem("1Gi")),
                    dev("device-2", _mem("2Gi")),
                )
            ],
            expect=_r(_a("req-0"), _a("req-1", device="device-2")),
        )
    )
    reversed_devices = [
        slc("slice-1", N1, P1, DA, dev("device-2", _mem("2Gi")), dev("device-1", _mem("1Gi")))
    ]
    add(
        Case(
            "small-and-large-backtrack-requests",
            small_large,
            [A],
            reversed_devices,
            expect=_r(_a("req-0"), _a("req-1", device="device-2")),
        )
    )
    add(
        Case(
            "small-and-large-backtrack-claims",
            [
                claim("claim-0", req("req-0", CA, 1, mem_at_least("1Gi"))),
                claim("claim-1", req("req-1", CA, 1, mem_at_least("2Gi"))),
            ],
            [A],
            reversed_devices,
            expect=[alloc(_a("req-0")), alloc(_a("req-1", device="device-2"))],
        )
    )
    add(
        Case(
            "devices-split-across-different-slices",
            [claim("claim-0", req("req-0", CA, 2))],
            [A],
            [one("slice-1", N1, P1, DA), one("slice-2", N1, P2, DA)],
            expect=_r(_a("req-0"), _a("req-0", P2)),
        )
    )
    add(
        Case(
            "obsolete-slice",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [
                slc("slice-1-obsolete", N1, P1, DA, dev("device-1"), count=2),
                slc("slice-1-obsolete", N1, P1, DA, dev("device-2"), count=2, gen=2),
            ],
        )
    )
    add(
        Case(
            "duplicate-slice",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [one("slice-1", N1, P1, DA, count=2), one("slice-1-2", N1, P1, DA, count=2)],
            expect="error:invalid resource pools were encountered",
        )
    )
    add(Case("no-slices", [claim("claim-0", req("req-0", CA))], [A], []))
    add(
        Case(
            "not-enough-suitable-devices",
            [claim("claim-0", req("req-0", CA)), claim("claim-0", req("req-1", CA))],
            [A],
            [one("slice-1", N1, P1, DA)],
        )
    )
    add(
        Case(
            "no-classes",
            [claim("claim-0", req("req-0", CA))],
            [],
            [one("slice-1", N1, P1, DA)],
            expect="error:device class 'class-a' does not exist",
        )
    )
    add(
        Case(
            "unknown-class",
            [claim("claim-0", req("req-0", "unknown-class"))],
            [A],
            [one("slice-1", N1, P1, DA)],
            expect="error:device class 'unknown-class' does not exist",
        )
    )
    add(
        Case(
            "empty-class",
            [claim("claim-0", req("req-0", ""))],
            [A],
            [one("slice-1", N1, P1, DA)],
            expect="error:missing device class name",
        )
    )
    add(
        Case(
            "all-devices-single",
            [claim("claim-0", req("req-0", CA, 0, all_mode=True))],
            [A],
            [one("slice-1", N1, P1, DA)],
            expect=_r(_a("req-0")),
        )
    )
    add(
        Case(
            "all-devices-many",
            [claim("claim-0", req("req-0", CA, 0, all_mode=True))],
            [A],
            [one("slice-1", N1, P1, DA), one("slice-1", N1, P2, DA)],
            expect=_r(_a("req-0"), _a("req-0", P2)),
        )
    )
    add(
        Case(
            "all-devices-of-the-incomplete-pool",
            [claim("claim-0", req("req-0", CA, 1, all_mode=True))],
            [A],
            [one("slice-1", N1, P1, DA, count=2)],
            expect="error:asks for all devices, but resource pool driver-a/pool-1 is currently "
            "being updated",
        )
    )
    all_a = claim("claim-0", req("req-0", CA, 0, all_mode=True))
    one_b = claim("claim-1", req("req-0", CB))
    two_drivers = [one("slice-1", N1, P1, DA), one("slice-1", N1, P1, DB)]
    add(
        Case(
            "all-devices-plus-another",
            [all_a, one_b],
            [A, B],
            two_drivers,
            expect=[alloc(_a("req-0")), alloc(_a("req-0", driver=DB))],
        )
    )
    add(
        Case(
            "all-devices-plus-another-reversed",
            [one_b, all_a],
            [A, B],
            two_drivers,
            expect=[alloc(_a("req-0", driver=DB)), alloc(_a("req-0"))],
        )
    )
    two_a = [
        slc("slice-1", N1, P1, DA, dev("device-1"), dev("device-2")),
        one("slice-1", N1, P1, DB),
    ]
    add(
        Case(
            "all-devices-many-plus-another",
            [all_a, one_b],
            [A, B],
            two_a,
            expect=[
                alloc(_a("req-0"), _a("req-0", device="device-2")),
                alloc(_a("req-0", driver=DB)),
            ],
        )
    )
    add(
        Case(
            "all-devices-many-plus-another-reversed",
            [one_b, all_a],
            [A, B],
            two_a,
            expect=[
                alloc(_a("req-0", driver=DB)),
                alloc(_a("req-0"), _a("req-0", device="device-2")),
            ],
        )
    )
    one_a = claim("claim-1", req("req-0", CA))
    add(Case("all-devices-no-solution", [one_a, all_a], [A], [one("slice-1", N1, P1, DA)]))
    add(Case("all-devices-no-solution-reversed", [all_a, one_a], [A], [one("slice-1", N1, P1, DA)]))
    add(Case("all-devices-slice-without-devices", [all_a], [A], [slc("slice-1", N1, P1, DA)]))
    add(Case("all-devices-no-slices", [all_a], [A], []))
    d12 = [slc("slice-1", N1, P1, DA, dev("device-1"), dev("device-2"))]
    add(Case("all-devices-some-allocated", [all_a], [A], d12, allocated=[(DA, P1, "device-1")]))
    add(
        Case(
            "all-devices-some-allocated-admin-access",
            [claim("claim-0", req("req-0", CA, 1, all_mode=True, admin=True))],
            [A],
            d12,
            allocated=[(DA, P1, "device-1")],
            expect=_r(_a("req-0", admin=True), _a("req-0", device="device-2", admin=True)),
        )
    )
    add(
        Case(
            "all-devices-some-allocating-admin-access",
            [
                claim(
                    "claim-0",
                    req("req-0", CA, 1, admin=True),
                    req("req-1", CA, 1, admin=True, all_mode=True),
                )
            ],
            [A],
            d12,
        )
    )
    add(
        Case(
            "count-devices-some-allocated-admin-access",
            [claim("claim-0", req("req-0", CA, 2, admin=True))],
            [A],
            d12,
            allocated=[(DA, P1, "device-1")],
            expect=_r(_a("req-0", admin=True), _a("req-0", device="device-2", admin=True)),
        )
    )
    add(
        Case(
            "separate-claims-share-device-admin-access",
            [
                claim("claim-0", req("req-0", CA, admin=True)),
                claim("claim-1", req("req-0", CA, admin=True)),
            ],
            [A],
            d12,
            expect=[alloc(_a("req-0", admin=True)), alloc(_a("req-0", admin=True))],
        )
    )
    add(
        Case(
            "admin-access-claims-device-allocating-for-non-admin-access",
            [claim("claim-0", req("req-0", CA)), claim("claim-1", req("req-0", CA, admin=True))],
            [A],
            d12,
            expect=[alloc(_a("req-0")), alloc(_a("req-0", admin=True))],
        )
    )
    pl_all = claim(
        "claim-0", first("req-0", sub("subReq-0", CA, 0, all_mode=True), sub("subReq-1", CB))
    )
    add(
        Case(
            "all-devices-slice-without-devices-prioritized-list",
            [pl_all],
            [A, B],
            [slc("slice-1", N1, P1, DA), one("slice-2", N1, P2, DB)],
            expect=_r(_a("req-0/subReq-1", P2, driver=DB)),
        )
    )
    add(
        Case(
            "all-devices-no-slices-prioritized-list",
            [pl_all],
            [A, B],
            [one("slice-2", N1, P2, DB)],
            expect=_r(_a("req-0/subReq-1", P2, driver=DB)),
        )
    )
    add(
        Case(
            "all-devices-some-allocated-prioritized-list",
            [pl_all],
            [A, B],
            [*d12, one("slice-2", N1, P2, DB)],
            allocated=[(DA, P1, "device-1")],
            expect=_r(_a("req-0/subReq-1", P2, driver=DB)),
        )
    )
    region1 = labels("region", "region-1")
    add(
        Case(
            "network-attached-device",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [one("slice-1", region1, P1, DA)],
            expect=_r(_a("req-0"), selector=region1),
        )
    )
    add(
        Case(
            "unsuccessful-allocation-network-attached-device",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [one("slice-1", region1, P1, DA)],
            node=N2,
        )
    )
    add(
        Case(
            "many-network-attached-devices",
            [claim("claim-0", req("req-0", CA, 4))],
            [A],
            [
                one("slice-1", region1, P1, DA),
                one("slice-1", ALL, P2, DA),
                one("slice-1", labels("planet", "earth"), P3, DA),
                one("slice-1", local(N1), P4, DA),
            ],
            expect=_r(
                _a("req-0"),
                _a("req-0", P2),
                _a("req-0", P3),
                _a("req-0", P4),
                selector={
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "region", "operator": "In", "values": ["region-1"]},
                                {"key": "planet", "operator": "In", "values": ["earth"]},
                            ],
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": [N1]}
                            ],
                        }
                    ]
                },
            ),
        )
    )
    add(
        Case(
            "local-and-network-attached-devices",
            [claim("claim-0", req("req-0", CA, 2))],
            [A],
            [one("slice-1", region1, P1, DA), one("slice-1", N1, P2, DA)],
            expect=_r(_a("req-0"), _a("req-0", P2)),
        )
    )
    add(
        Case(
            "several-different-drivers",
            [claim("claim-0", req("req-0", CA)), claim("claim-0", req("req-0", CB))],
            [A, B],
            two_a,
            expect=[alloc(_a("req-0")), alloc(_a("req-0", driver=DB))],
        )
    )
    add(
        Case(
            "already-allocated-devices",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [one("slice-1", N1, P1, DA)],
            allocated=[(DA, P1, "device-1"), (DA, P1, "device-2")],
        )
    )
    add(
        Case(
            "admin-access-enabled",
            [claim("claim-0", req("req-0", CA, admin=True))],
            [A],
            [one("slice-1", N1, P1, DA)],
            allocated=[(DA, P1, "device-1"), (DA, P1, "device-2")],
            expect=_r(_a("req-0", admin=True)),
        )
    )
    same = {
        "driverVersion": V("1.0.0"),
        "numa": 1,
        "stringAttribute": "stringAttributeValue",
        "boolAttribute": True,
    }
    add(
        Case(
            "with-constraint",
            [
                claim(
                    "claim-0",
                    req("req-0", CA),
                    req("req-1", CA),
                    constraints=[
                        match("numa"),
                        match("driverVersion"),
                        match("stringAttribute"),
                        match("boolAttribute"),
                    ],
                )
            ],
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1", None, same), dev("device-2", None, same))],
            expect=_r(_a("req-0"), _a("req-1", device="device-2")),
        )
    )
    add(
        Case(
            "with-constraint-non-existent-attribute",
            [claim("claim-0", req("req-0", CA), constraints=[match("NonExistentAttribute")])],
            [A],
            [one("slice-1", N1, P1, DA)],
        )
    )

    def pair(attr: str, a: Any, b: Any) -> list[Obj]:
        return [
            slc(
                "slice-1",
                N1,
                P1,
                DA,
                dev("device-1", None, {attr: a}),
                dev("device-2", None, {attr: b}),
            )
        ]

    add(
        Case(
            "with-constraint-not-matching-int-attribute",
            [claim("claim-0", req("req-0", CA, 2), constraints=[match("numa")])],
            [A, B],
            pair("numa", 1, 2),
        )
    )
    add(
        Case(
            "with-constraint-not-matching-int-attribute-all-devices",
            [claim("claim-0", req("req-0", CA, 0, all_mode=True), constraints=[match("numa")])],
            [A, B],
            pair("numa", 1, 2),
            expect="error:same driver-a/numa",
        )
    )
    add(
        Case(
            "with-constraint-not-matching-string-attribute",
            [claim("claim-0", req("req-0", CA, 2), constraints=[match("stringAttribute")])],
            [A, B],
            pair("stringAttribute", "stringAttributeValue", "stringAttributeValue2"),
        )
    )
    add(
        Case(
            "with-constraint-not-matching-bool-attribute",
            [claim("claim-0", req("req-0", CA, 2), constraints=[match("boolAttribute")])],
            [A, B],
            pair("boolAttribute", True, False),
        )
    )
    add(
        Case(
            "with-constraint-not-matching-version-attribute",
            [claim("claim-0", req("req-0", CA, 2), constraints=[match("driverVersion")])],
            [A, B],
            pair("driverVersion", V("1.0.0"), V("2.0.0")),
        )
    )
    add(
        Case(
            "with-constraint-for-request",
            [
                claim(
                    "claim-0",
                    req("req-0", CA),
                    req("req-1", CA),
                    constraints=[match("driverVersion", "req-0")],
                )
            ],
            [A, B],
            pair("driverVersion", V("1.0.0"), V("2.0.0")),
            expect=_r(_a("req-0"), _a("req-1", device="device-2")),
        )
    )
    add(
        Case(
            "with-constraint-for-request-retry",
            [
                claim(
                    "claim-0",
                    req("req-0", CA),
                    req("req-1", CA),
                    constraints=[match("driverVersion", "req-0"), match("stringAttribute")],
                )
            ],
            [A, B],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", None, {"driverVersion": V("1.0.0"), "stringAttribute": "a"}),
                    dev("device-2", None, {"driverVersion": V("2.0.0"), "stringAttribute": "b"}),
                    dev("device-3", None, {"driverVersion": V("3.0.0"), "stringAttribute": "b"}),
                )
            ],
            expect=_r(_a("req-0", device="device-2"), _a("req-1", device="device-3")),
        )
    )
    add(
        Case(
            "with-class-device-config",
            [claim("claim-0", req("req-0", CA))],
            [cls(CA, DA, config="classAttribute")],
            [one("slice-1", N1, P1, DA)],
            expect=_r(
                _a("req-0"),
                config=[
                    {
                        "source": "FromClass",
                        "requests": ["req-0"],
                        **dev_config(DA, "classAttribute"),
                    }
                ],
            ),
        )
    )
    add(
        Case(
            "with-class-device-config-with-multiple-request-and-configs",
            [
                claim(
                    "claim-0", req("req-0", CA), req("req-1", CA), req("req-2", CB), constraints=[]
                )
            ],
            [cls(CA, DA, config="classAttribute-A"), cls(CB, DB, config="classAttribute-B")],
            [many("slice-1", N1, P1, DA, 2), one("slice-2", N1, P1, DB)],
            expect=_r(
                _a("req-0", device="device-0"),
                _a("req-1"),
                _a("req-2", driver=DB),
                config=[
                    {
                        "source": "FromClass",
                        "requests": ["req-0", "req-1"],
                        **dev_config(DA, "classAttribute-A"),
                    },
                    {
                        "source": "FromClass",
                        "requests": ["req-2"],
                        **dev_config(DB, "classAttribute-B"),
                    },
                ],
            ),
        )
    )
    add(
        Case(
            "claim-with-device-config",
            [claim("claim-0", req("req-0", CA), config=[dev_config(DA, "deviceAttribute")])],
            [A],
            [one("slice-1", N1, P1, DA)],
            expect=_r(
                _a("req-0"), config=[{"source": "FromClaim", **dev_config(DA, "deviceAttribute")}]
            ),
        )
    )
    add(
        Case(
            "unknown-selector",
            [claim("claim-0", req("req-0", CA, 1, {}))],
            [A],
            [one("slice-1", N1, P1, DA)],
            expect="error:cel.expression is empty",
        )
    )
    bad_mode = req("req-0", CA)
    bad_mode["exactly"]["allocationMode"] = "future-mode"
    add(
        Case(
            "unknown-allocation-mode",
            [claim("claim-0", bad_mode)],
            [A],
            [one("slice-1", N1, P1, DA)],
            expect="error:unsupported allocationMode 'future-mode'",
        )
    )
    add(
        Case(
            "unknown-constraint",
            [claim("claim-0", req("req-0", CA), constraints=[{}])],
            [A],
            [one("slice-1", N1, P1, DA)],
            expect="error:empty constraint",
        )
    )
    add(
        Case(
            "invalid-CEL-one-device",
            [claim("claim-0", req("req-0", CA, 1, cel("noSuchVar")))],
            [A],
            [one("slice-1", N1, P1, DA)],
            expect="error:noSuchVar",
        )
    )
    bad_class = cls(CA, DA)
    bad_class["spec"]["selectors"][0]["cel"]["expression"] = "noSuchVar"
    add(
        Case(
            "invalid-CEL-one-device-class",
            [claim("claim-0", req("req-0", CA))],
            [bad_class],
            [one("slice-1", N1, P1, DA)],
            expect="error:noSuchVar",
        )
    )
    add(
        Case(
            "invalid-CEL-all-devices",
            [claim("claim-0", req("req-0", CA, 1, cel("noSuchVar"), all_mode=True))],
            [A],
            [one("slice-1", N1, P1, DA)],
            expect="error:noSuchVar",
        )
    )
    add(
        Case(
            "too-many-devices-single-request",
            [claim("claim-0", req("req-0", CA, 500))],
            [A],
            expect="error:exceeds the claim limit",
        )
    )
    add(Case("many-devices-okay", [claim("claim-0", req("req-0", CA, MAX))], [A]))
    add(
        Case(
            "too-many-devices-total",
            [claim("claim-0", req("req-0", CA, MAX), req("req-1", CA, 1))],
            [A],
            [many("slice-1", N1, P1, DA, MAX + 1)],
            expect="error:exceeds the claim limit",
        )
    )
    add(
        Case(
            "all-devices-invalid-CEL",
            [claim("claim-0", req("req-0", CA, 500))],
            [A],
            expect="error:exceeds the claim limit",
        )
    )
    add(
        Case(
            "prioritized-list-first-unavailable",
            [claim("claim-0", first("req-0", sub("subReq-0", CB), sub("subReq-1", CA)))],
            [A, B],
            [one("slice-1", N1, P1, DA)],
            expect=_r(_a("req-0/subReq-1")),
        )
    )
    add(
        Case(
            "prioritized-list-non-available",
            [claim("claim-0", first("req-0", sub("subReq-0", CB, 2), sub("subReq-1", CA, 2)))],
            [A, B],
            [one("slice-1", N1, P1, DA), one("slice-2", N1, P2, DB)],
        )
    )
    add(
        Case(
            "prioritized-list-device-config",
            [
                claim(
                    "claim-0",
                    first("req-0", sub("subReq-0", CA), sub("subReq-1", CB, 2)),
                    config=[
                        {"requests": ["req-0/subReq-0"], **dev_config(DA, "foo")},
                        {"requests": ["req-0/subReq-1"], **dev_config(DB, "bar")},
                    ],
                )
            ],
            [A, B],
            [slc("slice-1", N1, P1, DB, dev("device-1"), dev("device-2"))],
            expect=_r(
                _a("req-0/subReq-1", driver=DB),
                _a("req-0/subReq-1", device="device-2", driver=DB),
                config=[
                    {"source": "FromClaim", "requests": ["req-0/subReq-1"], **dev_config(DB, "bar")}
                ],
            ),
        )
    )
    add(
        Case(
            "prioritized-list-class-config",
            [claim("claim-0", first("req-0", sub("subReq-0", CA, 2), sub("subReq-1", CB, 2)))],
            [cls(CA, DA, config="foo"), cls(CB, DB, config="bar")],
            [
                slc("slice-1", N1, P1, DB, dev("device-1"), dev("device-2")),
                slc("slice-2", N1, P2, DA, dev("device-3")),
            ],
            expect=_r(
                _a("req-0/subReq-1", driver=DB),
                _a("req-0/subReq-1", device="device-2", driver=DB),
                config=[
                    {"source": "FromClass", "requests": ["req-0/subReq-1"], **dev_config(DB, "bar")}
                ],
            ),
        )
    )
    add(
        Case(
            "prioritized-list-subrequests-with-expressions",
            [
                claim(
                    "claim-0",
                    req("req-0", CA, 1, mem_at_least("1Gi")),
                    first(
                        "req-1",
                        sub("subReq-0", CA, 1, mem_at_least("4Gi")),
                        sub("subReq-1", CA, 2, mem_at_least("2Gi")),
                    ),
                )
            ],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", _mem("2Gi")),
                    dev("device-2", _mem("2Gi")),
                    dev("device-3", _mem("1Gi")),
                )
            ],
            expect=_r(
                _a("req-0", device="device-3"),
                _a("req-1/subReq-1"),
                _a("req-1/subReq-1", device="device-2"),
            ),
        )
    )
    v_slices = [
        slc("slice-1", N1, P1, DA, dev("device-1", _mem("8Gi"), {"driverVersion": V("1.0.0")})),
        slc(
            "slice-2",
            N1,
            P2,
            DA,
            dev("device-2", _mem("2Gi"), {"driverVersion": V("2.0.0")}),
            dev("device-3", _mem("1Gi"), {"driverVersion": V("1.0.0")}),
        ),
    ]
    v_reqs = (
        req("req-0", CA, 1, mem_at_least("8Gi")),
        first(
            "req-1",
            sub("subReq-0", CA, 1, mem_at_least("2Gi")),
            sub("subReq-1", CA, 1, mem_at_least("1Gi")),
        ),
    )
    add(
        Case(
            "prioritized-list-subrequests-with-constraints-ref-parent-request",
            [claim("claim-0", *v_reqs, constraints=[match("driverVersion", "req-0", "req-1")])],
            [A],
            v_slices,
            expect=_r(_a("req-0"), _a("req-1/subReq-1", P2, "device-3")),
        )
    )
    add(
        Case(
            "prioritized-list-subrequests-with-constraints-ref-sub-request",
            [
                claim(
                    "claim-0",
                    *v_reqs,
                    constraints=[match("driverVersion", "req-0", "req-1/subReq-0")],
                )
            ],
            [A],
            [
                v_slices[0],
                slc(
                    "slice-2",
                    N1,
                    P2,
                    DA,
                    dev("device-2", _mem("2Gi"), {"driverVersion": V("2.0.0")}),
                ),
            ],
            expect=_r(_a("req-0"), _a("req-1/subReq-1", P2, "device-2")),
        )
    )
    add(
        Case(
            "prioritized-list-subrequests-with-allocation-mode-all",
            [
                claim(
                    "claim-0",
                    first("req-0", sub("subReq-0", CA, 0, all_mode=True), sub("subReq-1", CA)),
                )
            ],
            [A],
            d12,
            allocated=[(DA, P1, "device-1")],
            expect=_r(_a("req-0/subReq-1", device="device-2")),
        )
    )
    add(
        Case(
            "prioritized-list-allocation-mode-all-multiple-requests",
            [
                claim(
                    "claim-0",
                    req("req-0", CA),
                    first("req-1", sub("subReq-0", CA, 0, all_mode=True), sub("subReq-1", CA)),
                )
            ],
            [A],
            d12,
            expect=_r(_a("req-0"), _a("req-1/subReq-1", device="device-2")),
        )
    )
    mem8_4 = [
        slc("slice-1", N1, P1, DA, dev("device-1", _mem("8Gi"))),
        slc("slice-2", N1, P2, DA, dev("device-2", _mem("4Gi"))),
    ]
    add(
        Case(
            "prioritized-list-multi-request",
            [
                claim(
                    "claim-0",
                    req("req-1", CA, 1, mem_at_least("8Gi")),
                    first(
                        "req-0",
                        sub("subReq-0", CA, 1, mem_at_least("8Gi")),
                        sub("subReq-1", CA, 1, mem_at_least("4Gi")),
                    ),
                )
            ],
            [A],
            mem8_4,
            expect=_r(_a("req-1"), _a("req-0/subReq-1", P2, "device-2")),
        )
    )
    add(
        Case(
            "prioritized-list-with-backtracking",
            [
                claim(
                    "claim-0",
                    first(
                        "req-0",
                        sub("subReq-0", CA, 1, mem_at_least("8Gi")),
                        sub("subReq-1", CA, 1, mem_at_least("4Gi")),
                    ),
                    req("req-1", CA, 1, mem_at_least("8Gi")),
                )
            ],
            [A],
            mem8_4,
            expect=_r(_a("req-0/subReq-1", P2, "device-2"), _a("req-1")),
        )
    )
    add(
        Case(
            "prioritized-list-too-many-in-first-subrequest",
            [claim("claim-0", first("req-0", sub("subReq-0", CB, 500), sub("subReq-1", CA)))],
            [A, B],
            [one("slice-1", N1, P1, DA)],
            expect=_r(_a("req-0/subReq-1")),
        )
    )
    c.extend(_partitionable())
    c.extend(_taints_and_lists())
    c.extend(_binding_and_capacity())
    c.extend(_pools())
    c.extend(_rest())
    return c


def _cs(name: str, counters: dict[str, str] | None) -> tuple[str, dict[str, str] | None]:
    return (name, counters)


def _part(name: str, mem: str, cs: str = "counter-set-1", **kw: Any) -> Obj:
    return dev(name, None, counters=[(cs, {"memory": mem})], from_counters=True, **kw)


def _partitionable() -> list[Case]:
    A = cls(CA, DA)
    c: list[Case] = []
    add = c.append
    cs8 = slc(
        "slice-2", N1, P1, DA, count=2, counter_sets=[_cs("counter-set-1", {"memory": "8Gi"})]
    )
    add(
        Case(
            "partitionable-devices-single-device",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", counters=[("counter-set-1", {"memory": "4Gi"})]),
                    count=2,
                ),
                cs8,
            ],
            expect=_r(_a("req-0")),
        )
    )
    three = slc(
        "slice-1",
        N1,
        P1,
        DA,
        _part("device-1", "4Gi"),
        _part("device-2", "6Gi"),
        _part("device-3", "4Gi"),
        count=2,
    )
    pl = first(
        "req-1",
        sub("subReq-0", CA, 1, mem_at_least("6Gi")),
        sub("subReq-1", CA, 1, mem_at_least("4Gi")),
    )
    add(
        Case(
            "partitionable-devices-prioritized-list",
            [claim("claim-0", req("req-0", CA), pl)],
            [A],
            [three, cs8],
            expect=_r(_a("req-0"), _a("req-1/subReq-1", device="device-3")),
        )
    )
    add(
        Case(
            "partitionable-devices-multiple-devices",
            [claim("claim-0", req("req-0", CA), req("req-1", CA))],
            [A],
            [three, cs8],
            expect=_r(_a("req-0"), _a("req-1", device="device-3")),
        )
    )
    add(
        Case(
            "partitionable-devices-unused-counters-in-counter-set",
            [claim("claim-0", req("req-0", CA, 2))],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    *[
                        dev(n, counters=[("counter-set-1", {"memory": m})])
                        for n, m in (("device-1", "5Gi"), ("device-2", "4Gi"), ("device-3", "4Gi"))
                    ],
                    count=2,
                ),
                slc(
                    "slice-2",
                    N1,
                    P1,
                    DA,
                    count=2,
                    counter_sets=[_cs("counter-set-1", {"memory": "8Gi", "unused": "1Gi"})],
                ),
            ],
            expect=_r(_a("req-0", device="device-2"), _a("req-0", device="device-3")),
        )
    )
    cs18 = slc("slice-2", N1, P1, DA, counter_sets=[_cs("counter-set-1", {"memory": "18Gi"})])
    add(
        Case(
            "partitionable-devices-no-capacity-available",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [slc("slice-1", N1, P1, DA, _part("device-1", "4Gi"), _part("device-2", "16Gi")), cs18],
            allocated=[(DA, P1, "device-2")],
        )
    )
    add(
        Case(
            "partitionable-devices-overallocated-capacity-pool",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [slc("slice-1", N1, P1, DA, _part("device-1", "4Gi"), _part("device-2", "20Gi")), cs18],
            allocated=[(DA, P1, "device-2")],
        )
    )
    add(
        Case(
            "partitionable-devices-per-device-node-selection-nodename",
            [claim("claim-0", pl)],
            [A],
            [
                slc(
                    "slice-1",
                    PER,
                    P1,
                    DA,
                    _part("device-1", "4Gi", at=N1),
                    _part("device-2", "6Gi", at=N2),
                    count=2,
                ),
                slc(
                    "slice-2",
                    PER,
                    P1,
                    DA,
                    count=2,
                    counter_sets=[_cs("counter-set-1", {"memory": "18Gi"})],
                ),
            ],
            expect=_r(_a("req-1/subReq-1")),
        )
    )
    region1 = labels("region", "region-1")
    add(
        Case(
            "partitionable-devices-per-device-node-selection-node-selector",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [
                slc("slice-1", PER, P1, DA, _part("device-1", "4Gi", at=region1), count=2),
                slc(
                    "slice-2",
                    PER,
                    P1,
                    DA,
                    count=2,
                    counter_sets=[_cs("counter-set-1", {"memory": "18Gi"})],
                ),
            ],
            expect=_r(_a("req-0"), selector=region1),
        )
    )
    add(
        Case(
            "partitionable-devices-with-attribute-selector",
            [
                claim(
                    "claim-0",
                    req("req-0", CA, 2),
                    req("req-1", CA, 1, cel(f'device.attributes["{DA}"].special')),
                )
            ],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    *[
                        dev(
                            n,
                            None,
                            {"special": sp},
                            counters=[
                                ("counter-set-1", {cpu: "1"}),
                                ("counter-set-2", {"mem": "10Gi"}),
                            ],
                        )
                        for n, sp, cpu in (
                            ("device-1", True, "cpu1"),
                            ("device-2", False, "cpu2"),
                            ("device-3", False, "cpu3"),
                        )
                    ],
                    count=2,
                ),
                slc(
                    "slice-2",
                    N1,
                    P1,
                    DA,
                    count=2,
                    counter_sets=[
                        _cs("counter-set-1", {"cpu1": "1", "cpu2": "1", "cpu3": "1"}),
                        _cs("counter-set-2", {"mem": "30Gi"}),
                    ],
                ),
            ],
            expect=_r(_a("req-0", device="device-2"), _a("req-0", device="device-3"), _a("req-1")),
        )
    )
    add(
        Case(
            "partitionable-devices-same-counter-set-name-in-different-resource-slices",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [
                slc("slice-1", N1, P1, DA, dev("device-1"), count=4),
                slc("slice-2", N1, P1, DA, count=4, counter_sets=[_cs("counter-set-1", None)]),
                slc("slice-3", N1, P1, DA, dev("device-2"), count=4),
                slc("slice-4", N1, P1, DA, count=4, counter_sets=[_cs("counter-set-1", None)]),
            ],
            expect="error:invalid resource pools were encountered",
        )
    )
    add(
        Case(
            "partitionable-devices-device-counter-consumption-references-unknown-counter-set",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", counters=[("counter-set-2", {})]),
                    count=2,
                ),
                slc("slice-2", N1, P1, DA, count=2, counter_sets=[_cs("counter-set-1", None)]),
            ],
            expect="error:invalid resource pools were encountered",
        )
    )
    add(
        Case(
            "partitionable-devices-device-counter-consumption-references-unknown-counter-in-"
            "counter-set",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [
                slc("slice-1", N1, P1, DA, _part("device-1", "8Gi"), count=2),
                slc(
                    "slice-2",
                    N1,
                    P1,
                    DA,
                    count=2,
                    counter_sets=[_cs("counter-set-1", {"other-memory": "8Gi"})],
                ),
            ],
            expect="error:invalid resource pools were encountered",
        )
    )
    add(
        Case(
            "partitionable-devices-device-counter-consumption-references-counter-set-in-other-pool",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [
                slc("slice-1", N1, P1, DA, _part("device-1", "8Gi")),
                slc("slice-2", N1, P2, DA, counter_sets=[_cs("counter-set-1", {"memory": "8Gi"})]),
            ],
            expect="error:invalid resource pools were encountered",
        )
    )
    add(
        Case(
            "partitionable-devices-devices-on-different-nodes-consume-same-counter-set",
            [
                claim(
                    "claim-0",
                    first(
                        "req-0",
                        sub("subReq-0", CA, 1, mem_at_least("6Gi")),
                        sub("subReq-1", CA, 1, mem_at_least("2Gi")),
                    ),
                )
            ],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    count=3,
                    counter_sets=[_cs("counter-set-1", {"memory": "8Gi"})],
                ),
                slc(
                    "slice-2",
                    N1,
                    P1,
                    DA,
                    _part("device-1", "6Gi"),
                    _part("device-2", "2Gi"),
                    count=3,
                ),
                slc(
                    "slice-3",
                    N2,
                    P1,
                    DA,
                    dev("device-3", counters=[("counter-set-1", {"memory": "6Gi"})]),
                    count=3,
                ),
            ],
            allocated=[(DA, P1, "device-3")],
            expect=_r(_a("req-0/subReq-1", device="device-2")),
        )
    )
    add(
        Case(
            "partitionable-devices-validation-error-on-non-targeting-slice",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    count=3,
                    counter_sets=[_cs("counter-set-1", {"memory": "8Gi"})],
                ),
                slc("slice-2", N1, P1, DA, _part("device-1", "6Gi"), count=3),
                slc(
                    "slice-3",
                    N2,
                    P1,
                    DA,
                    dev("device-3", counters=[("counter-set-2", {"memory": "6Gi"})]),
                    count=3,
                ),
            ],
            expect="error:invalid resource pools were encountered",
        )
    )
    return c


def _taints_and_lists() -> list[Case]:
    A, B = cls(CA, DA), cls(CB, DB)
    c: list[Case] = []
    add = c.append
    two = [
        slc(
            "slice-1",
            N1,
            P1,
            DA,
            dev("device-1", taints=[TAINT_NS]),
            dev("device-2", taints=[TAINT_NE]),
        )
    ]
    add(Case("tainted-two-devices", [claim("claim-0", req("req-0", CA))], [A], two))
    add(
        Case(
            "tainted-one-device-two-taints",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1", taints=[TAINT_NS, TAINT_NE]))],
        )
    )
    add(
        Case(
            "tainted-two-devices-tolerated",
            [claim("claim-0", req("req-0", CA, tolerations=[TOL_NE]))],
            [A],
            two,
            expect=_r(_a("req-0", device="device-2", tolerations=[TOL_NE])),
        )
    )
    add(
        Case(
            "tainted-two-devices-prioritized-list-tolerated",
            [
                claim(
                    "claim-0",
                    first("req-0", sub("subReq-0", CA), sub("subReq-1", CA, tolerations=[TOL_NE])),
                )
            ],
            [A],
            two,
            expect=_r(_a("req-0/subReq-1", device="device-2", tolerations=[TOL_NE])),
        )
    )
    add(
        Case(
            "tainted-no-effect",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1", taints=[TAINT_NONE]))],
            expect=_r(_a("req-0")),
        )
    )
    add(
        Case(
            "tainted-one-device-two-taints-both-tolerated",
            [claim("claim-0", req("req-0", CA, tolerations=[TOL_NS, TOL_NE]))],
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1", taints=[TAINT_NS, TAINT_NE]))],
            expect=_r(_a("req-0", tolerations=[TOL_NS, TOL_NE])),
        )
    )
    add(
        Case(
            "tainted-prioritized-list",
            [claim("claim-0", first("req-0", sub("subReq-0", CB), sub("subReq-1", CA)))],
            [A, B],
            [slc("slice-1", N1, P1, DA, dev("device-1", taints=[TAINT_NS]))],
        )
    )
    add(
        Case(
            "tainted-admin-access",
            [claim("claim-0", req("req-0", CA, admin=True))],
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1", taints=[TAINT_NS]))],
            allocated=[(DA, P1, "device-1"), (DA, P1, "device-2")],
        )
    )
    add(
        Case(
            "tainted-all-devices-single",
            [claim("claim-0", req("req-0", CA, 0, all_mode=True))],
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1", taints=[TAINT_NS]))],
        )
    )
    add(
        Case(
            "prioritized-list-allocation-mode-all",
            [
                claim(
                    "claim-0",
                    first("req-0", sub("subReq-0", CA, 0, all_mode=True), sub("subReq-1", CA)),
                )
            ],
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1"), dev("device-2"))],
            allocated=[(DA, P1, "device-2")],
            expect=_r(_a("req-0/subReq-1")),
        )
    )
    gen = first(
        "req-0",
        sub("subReq-0", CA, 0, cel(f'device.attributes["{DA}"].generation == "v6"'), all_mode=True),
        sub("subReq-1", CA, 0, cel(f'device.attributes["{DA}"].generation == "v5"'), all_mode=True),
    )
    add(
        Case(
            "prioritized-list-allocation-mode-all-with-selectors",
            [claim("claim-0", gen)],
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1", None, {"generation": "v5"}))],
            expect=_r(_a("req-0/subReq-1")),
        )
    )
    add(
        Case(
            "prioritized-list-allocation-mode-all-with-selectors-multiple-pools",
            [claim("claim-0", gen)],
            [A],
            [
                slc("slice-1", N1, P1, DA, dev("device-1", None, {"generation": "v5"})),
                slc("slice-2", N1, P2, DA, dev("device-1", None, {"generation": "v5"})),
            ],
            expect=_r(_a("req-0/subReq-1"), _a("req-0/subReq-1", P2)),
        )
    )
    add(
        Case(
            "prioritized-list-allocation-mode-all-with-selectors-multiple-pools-across-nodes",
            [claim("claim-0", gen)],
            [A],
            [
                slc("slice-1", N1, P1, DA, dev("device-1", None, {"generation": "v5"})),
                slc(
                    "slice-2",
                    N2,
                    P2,
                    DA,
                    dev("device-1", None, {"generation": "v5"}),
                    dev("device-2", None, {"generation": "v6"}),
                ),
            ],
            expect=_r(_a("req-0/subReq-1")),
        )
    )
    sel = cls(CA, DA)
    sel["spec"]["selectors"][0]["cel"]["expression"] = (
        f'device.driver == "{DA}" && device.attributes["{DA}"].selected'
    )
    add(
        Case(
            "prioritized-list-allocation-mode-all-with-selectors-deviceclass-subset",
            [claim("claim-0", gen)],
            [sel],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", None, {"generation": "v6", "selected": False}),
                    dev("device-2", None, {"generation": "v5", "selected": False}),
                    dev("device-3", None, {"generation": "v5", "selected": True}),
                )
            ],
            expect=_r(_a("req-0/subReq-1", device="device-3")),
        )
    )
    add(
        Case(
            "max-number-devices",
            [claim("claim-0", req("req-0", CA, MAX))],
            [A],
            [many("slice-1", N1, P1, DA, MAX)],
            expect=_r(*[_a("req-0", device=f"device-{i}") for i in range(MAX)]),
        )
    )
    add(
        Case(
            "prioritized-list-max-allocation-limit-request",
            [
                claim(
                    "claim-0",
                    *[
                        first(r, sub("subReq-0", CA, MAX), sub("subReq-1", CA, MAX // 2))
                        for r in ("req-0", "req-1")
                    ],
                )
            ],
            [A],
            [many("slice-1", N1, P1, DA, MAX * 2)],
            expect=_r(
                *[_a("req-0/subReq-1", device=f"device-{i}") for i in range(MAX // 2)],
                *[_a("req-1/subReq-1", device=f"device-{i}") for i in range(MAX // 2, MAX)],
            ),
        )
    )
    add(
        Case(
            "prioritized-list-max-allocation-allocation-mode-all",
            [
                claim(
                    "claim-0",
                    first("req-0", sub("subReq-0", CA, 0, all_mode=True), sub("subReq-1", CA, 2)),
                    req("req-1", CB, 2),
                )
            ],
            [A, B],
            [many("slice-1", N1, P1, DA, MAX - 1), many("slice-2", N1, P2, DB, 2)],
            expect=_r(
                _a("req-0/subReq-1", device="device-0"),
                _a("req-0/subReq-1", device="device-1"),
                _a("req-1", P2, "device-0", DB),
                _a("req-1", P2, "device-1", DB),
            ),
        )
    )

    def lst(name: str, constraint: Obj, count: int, *values: Any, expect: Any = None) -> None:
        attr = constraint.get("matchAttribute") or constraint.get("distinctAttribute")
        short = str(attr).rpartition("/")[2]
        devices = [dev(f"device-{i + 1}", None, {short: v}) for i, v in enumerate(values)]
        add(
            Case(
                name,
                [claim("claim-0", req("req-0", CA, count), constraints=[constraint])],
                [A],
                [slc("slice-1", N1, P1, DA, *devices)],
                expect=expect,
            )
        )

    d1, d2, d3 = (_a("req-0", device=f"device-{i}") for i in (1, 2, 3))
    m, dd = match("stringAttribute"), distinct("stringAttribute")
    p = "list-attributes-match-constaint-"
    lst(p + "scalar-string-values", m, 2, "value1", "value1", expect=_r(d1, d2))
    lst(
        p + "list-of-string-values-with-common-elements",
        m,
        2,
        ["value1", "value2", "value3"],
        ["value2", "value3", "value4"],
        expect=_r(d1, d2),
    )
    lst(
        p + "list-of-string-values-with-partially-common-elements",
        m,
        3,
        ["value1", "value2"],
        ["value2", "value3"],
        ["value3", "value1"],
    )
    lst(
        p + "mixed-scalar-and-list-of-string-values-with-common-elements",
        m,
        2,
        "value1",
        ["value1", "value2"],
        expect=_r(d1, d2),
    )
    lst(
        p + "mixed-scalar-and-list-of-string-values-with-partially-common-elements",
        m,
        3,
        "value1",
        ["value1", "value2"],
        ["value2", "value3"],
    )
    lst(
        p + "mixed-scalar-and-list-of-string-values-without-common-elements",
        m,
        2,
        "value1",
        ["value2", "value3"],
    )
    lst(
        p + "list-of-int-values-with-common-elements",
        match("numa"),
        2,
        [0, 1, 2],
        [1, 2, 3],
        expect=_r(d1, d2),
    )
    lst(
        p + "list-of-bool-values-with-common-elements",
        match("boolAttribute"),
        2,
        [True, False],
        [True],
        expect=_r(d1, d2),
    )
    lst(
        p + "list-of-version-values-with-common-elements",
        match("driverVersion"),
        2,
        [V("1.0.0"), V("1.1.0"), V("2.0.0")],
        [V("1.1.0"), V("2.0.0"), V("2.1.0")],
        expect=_r(d1, d2),
    )
    lst(
        p + "with-empty-or-unknown-type",
        m,
        2,
        {},
        {"strings": []},
        expect="error:unsupported attribute value",
    )
    q = "list-attributes-distinct-constraint-"
    lst(q + "scalar-string-values-all-distinct", dd, 2, "value1", "value2", expect=_r(d1, d2))
    lst(q + "scalar-string-values-not-distinct", dd, 2, "value1", "value1")
    lst(
        q + "list-of-string-values-all-distinct",
        dd,
        2,
        ["value1", "value2"],
        ["value2", "value3"],
        ["value3", "value4"],
        expect=_r(d1, d3),
    )
    lst(
        q + "list-of-string-values-with-common-elements",
        dd,
        2,
        ["value1", "value2", "value3"],
        ["value2", "value4", "value5"],
    )
    lst(
        q + "mixed-scalar-and-list-all-distinct",
        dd,
        2,
        "value1",
        ["value1", "value2"],
        ["value2", "value3"],
        expect=_r(d1, d3),
    )
    lst(q + "mixed-scalar-and-list-with-common-elements", dd, 2, "value1", ["value1", "value2"])
    lst(
        q + "list-of-int-values-all-distinct",
        distinct("numa"),
        2,
        [0, 1],
        [1, 2],
        [2, 3],
        expect=_r(d1, d3),
    )
    lst(
        q + "list-of-bool-values-all-distinct",
        distinct("boolAttribute"),
        2,
        [True],
        [True, False],
        [False],
        expect=_r(d1, d3),
    )
    lst(
        q + "list-of-version-values-all-distinct",
        distinct("driverVersion"),
        2,
        [V("1.0.0"), V("1.1.0")],
        [V("1.1.0"), V("2.0.0")],
        [V("2.0.0"), V("2.1.0")],
        expect=_r(d1, d3),
    )
    lst(
        "list-attributes-distinct-constaint-with-empty-or-unknown-type",
        distinct("driverVersion"),
        2,
        {"versions": []},
        {"versions": None},
        expect="error:unsupported attribute value",
    )
    return c


def _binding_and_capacity() -> list[Case]:
    A = cls(CA, DA)
    M = cls(CA, DA, multi=True)
    c: list[Case] = []
    add = c.append
    bc = (["IsPrepare"], ["BindingFailed"])
    add(
        Case(
            "device-binding-conditions",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1", binding=bc))],
            expect=_r(_a("req-0", binding=bc)),
        )
    )
    add(
        Case(
            "binding-conditions-with-and-without",
            [claim("claim-0", req("req-0", CA), req("req-1", CA))],
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1"), dev("device-2", binding=bc))],
            expect=_r(_a("req-0"), _a("req-1", device="device-2", binding=bc)),
        )
    )
    add(
        Case(
            "node-restriction",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [
                slc(
                    "slice-1",
                    labels("planet", "earth"),
                    P1,
                    DA,
                    dev("device-1", binds_to_node=True),
                )
            ],
            expect=_r(_a("req-0")),
        )
    )
    add(
        Case(
            "partitionable-devices-with-binding-conditions-and-taints-tolerated",
            [claim("claim-0", req("req-0", CA, 2, tolerations=[TOL_NS_KEY1]))],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    _part(
                        "device-1",
                        "4Gi",
                        binding=bc,
                        taints=[{"key": "key1", "value": "value1", "effect": "NoSchedule"}],
                    ),
                    _part("device-2", "4Gi"),
                    count=2,
                ),
                slc(
                    "slice-2",
                    N1,
                    P1,
                    DA,
                    count=2,
                    counter_sets=[_cs("counter-set-1", {"memory": "8Gi"})],
                ),
            ],
            expect=_r(
                _a("req-0", binding=bc, tolerations=[TOL_NS_KEY1]),
                _a("req-0", device="device-2", tolerations=[TOL_NS_KEY1]),
            ),
        )
    )
    add(
        Case(
            "partitionable-devices-with-binding-conditions-and-taints",
            [claim("claim-0", req("req-0", CA, 2))],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    _part("device-1", "4Gi", binding=bc),
                    _part("device-2", "4Gi"),
                ),
                slc("slice-2", N1, P1, DA, counter_sets=[_cs("counter-set-1", {"memory": "8Gi"})]),
            ],
        )
    )

    def cap(v: str) -> dict[str, str]:
        return {"capacity-0": v}

    def sh(request: str, device: str = "device-1", consumed: dict[str, str] | None = None) -> Obj:
        return _a(request, device=device, share=True, consumed=consumed)

    two_claims = [claim("claim-0", req("req-0", CA)), claim("claim-1", req("req-0", CA))]
    two_caps = [
        claim("claim-0", req("req-0", CA, cap="1")),
        claim("claim-1", req("req-0", CA, cap="1")),
    ]
    p = "consumable-capacity-multi-allocatable-device-"
    add(
        Case(
            p + "with-missing-capacity-request",
            [claim("claim-0", req("req-0", CA, cap="1"))],
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1", {"capacity-1": "1"}, multi=True))],
        )
    )
    add(
        Case(
            p + "allocation-mode-all-with-missing-capacity-request",
            [claim("claim-0", req("req-0", CA, 0, all_mode=True, cap="1"))],
            [M],
            [slc("slice-1", N1, P1, DA, dev("device-1", {"capacity-1": "1"}, multi=True))],
        )
    )
    add(
        Case(
            p + "without-capacity-without-capacity-request",
            two_claims,
            [M],
            [slc("slice-1", N1, P1, DA, dev("device-1", multi=True))],
            expect=[alloc(sh("req-0")), alloc(sh("req-0"))],
        )
    )
    add(
        Case(
            p + "without-policy-without-capacity-request",
            two_claims,
            [M],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", cap("1"), multi=True),
                    dev("device-2", cap("1"), multi=True),
                )
            ],
            expect=[
                alloc(sh("req-0", consumed=cap("1"))),
                alloc(sh("req-0", "device-2", cap("1"))),
            ],
        )
    )
    add(
        Case(
            p + "without-policy-without-capacity-request-block",
            two_claims,
            [M],
            [slc("slice-1", N1, P1, DA, dev("device-1", cap("2"), multi=True))],
        )
    )
    add(
        Case(
            p + "without-policy-with-capacity-request",
            two_caps,
            [M],
            [slc("slice-1", N1, P1, DA, dev("device-1", cap("2"), multi=True))],
            expect=[alloc(sh("req-0", consumed=cap("1"))), alloc(sh("req-0", consumed=cap("1")))],
        )
    )
    ranged4 = [slc("slice-1", N1, P1, DA, dev("device-1", multi=True, policy_range=cap("4")))]
    add(
        Case(
            p + "with-policy-without-capacity-request",
            two_claims,
            [M],
            ranged4,
            expect=[alloc(sh("req-0", consumed=cap("2"))), alloc(sh("req-0", consumed=cap("2")))],
        )
    )
    zero = [
        slc("slice-1", N1, P1, DA, dev("device-1", multi=True, policy_values=("0", cap("1"), [])))
    ]
    add(
        Case(
            p + "with-zero-request-policy",
            two_claims,
            [M],
            zero,
            expect=[alloc(sh("req-0", consumed=cap("0"))), alloc(sh("req-0", consumed=cap("0")))],
        )
    )
    add(
        Case(
            p + "violates-zero-request-policy",
            [claim("claim-0", req("req-0", CA, cap="1"))],
            [M],
            zero,
        )
    )
    add(
        Case(
            p + "with-range-policy-with-capacity-request",
            two_caps,
            [M],
            ranged4,
            expect=[alloc(sh("req-0", consumed=cap("2"))), alloc(sh("req-0", consumed=cap("2")))],
        )
    )
    add(
        Case(
            p + "with-range-policy-step",
            [claim("claim-0", req("req-0", CA, cap="3"))],
            [M],
            ranged4,
            expect=_r(sh("req-0", consumed=cap("4"))),
        )
    )
    add(
        Case(
            p + "with-valid-values-policy",
            [claim("claim-0", req("req-0", CA, cap="2"))],
            [M],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", multi=True, policy_values=("1", cap("4"), ["2"])),
                )
            ],
            expect=_r(sh("req-0", consumed=cap("2"))),
        )
    )
    add(
        Case(
            p + "with-valid-values-policy-round-up",
            [claim("claim-0", req("req-0", CA, cap="2"))],
            [M],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", multi=True, policy_values=("1", cap("3"), ["3"])),
                )
            ],
            expect=_r(sh("req-0", consumed=cap("3"))),
        )
    )
    add(
        Case(
            p + "with-exceeded-consumable-capacity-request",
            [
                claim("claim-0", req("req-0", CA, cap="1")),
                claim("claim-1", req("req-0", CA, cap="2")),
            ],
            [M],
            [slc("slice-1", N1, P1, DA, dev("device-1", multi=True, policy_range=cap("2")))],
        )
    )
    add(
        Case(
            p + "with-request-over-max-sharing-policy",
            [claim("claim-0", req("req-0", CA, cap="6"))],
            [M],
            [slc("slice-1", N1, P1, DA, dev("device-1", multi=True, policy_range=cap("10")))],
        )
    )
    used2 = {(DA, P1, "device-1"): cap("2")}
    add(
        Case(
            p + "with-allocated-capacity-use-remaining",
            [claim("claim-0", req("req-0", CA, cap="2"))],
            [M],
            ranged4,
            allocated_capacity=used2,
            expect=_r(sh("req-0", consumed=cap("2"))),
        )
    )
    add(
        Case(
            p + "with-allocated-capacity-next-device",
            [claim("claim-0", req("req-0", CA, cap="2"))],
            [M],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", multi=True, policy_range=cap("2")),
                    dev("device-2", multi=True, policy_range=cap("2")),
                )
            ],
            allocated_capacity=used2,
            expect=_r(sh("req-0", "device-2", cap("2"))),
        )
    )
    add(
        Case(
            "consumable-capacity-with-multi-allocatable-device-backtrack",
            [
                claim(
                    "claim-0",
                    req("req-0", CA, cap="2"),
                    req("req-1", CA, cap="2"),
                    constraints=[match("stringAttribute")],
                ),
                claim("claim-1", req("req-0", CA, cap="2")),
            ],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev(
                        "device-2",
                        None,
                        {"stringAttribute": "stringAttributeValue1"},
                        multi=True,
                        policy_range=cap("2"),
                    ),
                    dev(
                        "device-1",
                        None,
                        {"stringAttribute": "stringAttributeValue2"},
                        multi=True,
                        policy_range=cap("4"),
                    ),
                )
            ],
            expect=[
                alloc(sh("req-0", consumed=cap("2")), sh("req-1", consumed=cap("2"))),
                alloc(sh("req-0", "device-2", cap("2"))),
            ],
        )
    )
    add(
        Case(
            p + "with-no-available-consumable-capacity",
            [claim("claim-0", req("req-0", CA, cap="2"))],
            [M],
            [slc("slice-1", N1, P1, DA, dev("device-1", multi=True, policy_range=cap("2")))],
            allocated_capacity=used2,
        )
    )
    q = p + "allocation-mode-all-"
    add(
        Case(
            q + "filter-out-no-capacity",
            [claim("claim-0", req("req-0", CA, 0, all_mode=True, cap="2"))],
            [M],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", cap("2"), multi=True),
                    dev("device-2", multi=True),
                )
            ],
            expect=_r(sh("req-0", consumed=cap("2"))),
        )
    )
    add(
        Case(
            q + "filter-out-insufficient-capacity",
            [claim("claim-0", req("req-0", CA, 0, all_mode=True, cap="2"))],
            [M],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", cap("2"), multi=True),
                    dev("device-2", cap("1"), multi=True),
                )
            ],
            expect=_r(sh("req-0", consumed=cap("2"))),
        )
    )
    add(
        Case(
            q + "allocating-sufficient",
            [
                claim(
                    "claim-0",
                    req("req-0", CA, cap="1"),
                    req("req-1", CA, 0, all_mode=True, cap="1"),
                )
            ],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", cap("2"), multi=True),
                    dev("device-2", cap("1"), multi=True),
                )
            ],
            expect=_r(
                sh("req-0", consumed=cap("1")),
                sh("req-1", consumed=cap("1")),
                sh("req-1", "device-2", cap("1")),
            ),
        )
    )
    add(
        Case(
            q + "in-use-sufficient",
            [claim("claim-0", req("req-0", CA, 0, all_mode=True, cap="1"))],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", cap("2"), multi=True),
                    dev("device-2", cap("1"), multi=True),
                )
            ],
            allocated_capacity={(DA, P1, "device-1"): cap("1")},
            expect=_r(sh("req-0", consumed=cap("1")), sh("req-0", "device-2", cap("1"))),
        )
    )
    add(
        Case(
            q + "allocating-insufficient",
            [
                claim(
                    "claim-0",
                    req("req-0", CA, cap="1"),
                    req("req-1", CA, 0, all_mode=True, cap="1"),
                )
            ],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", cap("1"), multi=True),
                    dev("device-2", cap("1"), multi=True),
                )
            ],
        )
    )
    add(
        Case(
            q + "in-use-insufficient",
            [claim("claim-0", req("req-0", CA, 0, all_mode=True, cap="1"))],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", cap("1"), multi=True),
                    dev("device-2", cap("1"), multi=True),
                )
            ],
            allocated_capacity={(DA, P1, "device-1"): cap("1")},
            expect=_r(sh("req-0", "device-2", cap("1"))),
        )
    )
    D = cls(CA, DA, multi=False)
    add(
        Case(
            "consumable-capacity-dedicated-device-with-consumable-capacity-request",
            [claim("claim-0", req("req-0", CA, cap="1"))],
            [D],
            [slc("slice-1", N1, P1, DA, dev("device-1", cap("1")))],
            expect=_r(_a("req-0")),
        )
    )
    add(
        Case(
            "consumable-capacity-dedicated-device-with-multiple-consumable-capacity-request",
            two_caps,
            [D],
            [slc("slice-1", N1, P1, DA, dev("device-1", policy_range=cap("2")))],
        )
    )
    add(
        Case(
            "allow-multiple-allocations-exclude-multi-allocatable-device-by-class-selector",
            [claim("claim-0", req("req-0", CA, cap="1"))],
            [D],
            [slc("slice-1", N1, P1, DA, dev("device-1", cap("1"), multi=True))],
        )
    )
    add(
        Case(
            "allow-multiple-allocations-not-allocate-multi-allocatable-device-which-already-"
            "dedicated",
            [claim("claim-0", req("req-0", CA, cap="1"))],
            [M],
            [slc("slice-1", N1, P1, DA, dev("device-1", multi=True, policy_range=cap("2")))],
            allocated=[(DA, P1, "device-1")],
        )
    )
    add(
        Case(
            "allow-multiple-allocations-not-allocate-dedicated-device-which-change-from-multi-"
            "allocatable",
            [claim("claim-0", req("req-0", CA, cap="1"))],
            [M],
            [slc("slice-1", N1, P1, DA, dev("device-1", policy_range=cap("2")))],
            allocated_capacity={(DA, P1, "device-1"): cap("1")},
        )
    )
    add(
        Case(
            "allow-multiple-allocations-with-partitionable-device",
            [
                claim(
                    "claim-0",
                    req("req-0", CA),
                    first(
                        "req-1",
                        sub("subReq-0", CA, 1, mem_at_least("6Gi")),
                        sub("subReq-1", CA, 1, mem_at_least("4Gi")),
                    ),
                )
            ],
            [M],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    _part("device-1", "4Gi", multi=True),
                    _part("device-2", "6Gi", multi=True),
                    _part("device-3", "4Gi", multi=True),
                    count=2,
                ),
                slc(
                    "slice-2",
                    N1,
                    P1,
                    DA,
                    count=2,
                    counter_sets=[_cs("counter-set-1", {"memory": "8Gi"})],
                ),
            ],
            expect=_r(
                sh("req-0", consumed={"memory": "4Gi"}),
                sh("req-1/subReq-1", "device-3", {"memory": "4Gi"}),
            ),
        )
    )
    add(
        Case(
            "distinct-constraint-one-multi-allocatable-device-with-distinct-constraint",
            [
                claim(
                    "claim-0",
                    req("req-0", CA, cap="1"),
                    req("req-1", CA, cap="1"),
                    constraints=[distinct("stringAttribute")],
                )
            ],
            [M],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev(
                        "device-1",
                        None,
                        {"stringAttribute": "stringAttributeValue"},
                        multi=True,
                        policy_range=cap("2"),
                    ),
                )
            ],
        )
    )
    return c


def _pools() -> list[Case]:
    A = cls(CA, DA)
    c: list[Case] = []
    add = c.append
    one_req = [claim("claim-0", req("req-0", CA))]
    add(
        Case(
            "allocation-mode-all-with-multi-host-resource-pool",
            [claim("claim-0", req("req-0", CA, 0, all_mode=True))],
            [A],
            [
                slc("slice-1", N1, P1, DA, dev("device-1"), count=2),
                slc("slice-2", N2, P1, DA, dev("device-2"), count=2),
            ],
            expect=_r(_a("req-0")),
        )
    )
    add(
        Case(
            "multi-host-resource-pool-with-stale-slice-for-current-node",
            one_req,
            [A],
            [
                slc("slice-1", N1, P1, DA, dev("device-1"), count=2),
                slc("slice-2", N2, P1, DA, dev("device-2"), count=2, gen=2),
            ],
        )
    )
    add(
        Case(
            "multi-host-resource-pool-complete-update-from-node-2-to-node-1",
            one_req,
            [A],
            [
                slc("slice-1", N2, P1, DA, dev("device-1"), count=2),
                slc("slice-1", N2, P1, DA, dev("device-2"), count=2),
                slc("slice-2", N1, P1, DA, dev("device-1"), count=2, gen=2),
                slc("slice-2", N1, P1, DA, dev("device-2"), count=2, gen=2),
            ],
            expect=_r(_a("req-0")),
        )
    )
    add(
        Case(
            "multi-host-resource-pool-incomplete-update-from-node-2-to-node-1",
            one_req,
            [A],
            [
                slc("slice-1", N2, P1, DA, dev("device-1"), count=2),
                slc("slice-1", N2, P1, DA, dev("device-2"), count=2),
                slc("slice-2", N1, P1, DA, dev("device-1"), count=2, gen=2),
            ],
        )
    )
    add(
        Case(
            "different-resourceslices-in-pool-can-target-different-nodes",
            one_req,
            [A],
            [
                slc("slice-1", N2, P1, DA, dev("device-1"), count=2),
                slc("slice-2", N1, P1, DA, dev("device-2"), count=2),
            ],
            expect=_r(_a("req-0", device="device-2")),
        )
    )
    dup = [
        slc("slice-1", N1, P1, DA, dev("device-1"), count=2),
        slc("slice-2", N1, P1, DA, dev("device-1"), count=2),
        slc("slice-3", N1, P2, DA, dev("device-2")),
    ]
    add(
        Case(
            "invalid-pool-is-ok-if-devices-can-be-allocated-from-other",
            one_req,
            [A],
            dup,
            expect=_r(_a("req-0", P2, "device-2")),
        )
    )
    add(
        Case(
            "invalid-pool-is-error-if-no-other-device-can-be-allocated",
            one_req,
            [A],
            dup,
            allocated=[(DA, P2, "device-2")],
            expect="error:invalid resource pools were encountered",
        )
    )
    add(
        Case(
            "no-allocation-from-incomplete-pools",
            one_req,
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1"), count=2)],
        )
    )
    five = [claim("claim-0", req("req-0", CA, 5))]
    d = [dev(f"device-{i}") for i in range(1, 5)]
    add(
        Case(
            "check-combinations-within-single-request-single-pool-single-slice",
            five,
            [A],
            [slc("slice-1", N1, P1, DA, *d)],
        )
    )
    add(
        Case(
            "check-combinations-within-single-request-many-pools",
            five,
            [A],
            [slc(f"slice-{i}", N1, f"pool-{i}", DA, d[i - 1]) for i in range(1, 5)],
        )
    )
    xy = [
        slc(
            "slice-1",
            N1,
            P1,
            DA,
            dev("device-1", None, {"type": "X"}),
            dev("device-2", None, {"type": "Y"}),
            dev("device-3", None, {"type": "Y"}),
        )
    ]
    add(
        Case(
            "check-combinations-with-backtracking",
            [
                claim(
                    "claim-0",
                    req("req-1", CA, 2),
                    req("req-2", CA, 1, cel(f'device.attributes["{DA}"].type == "X"')),
                )
            ],
            [A],
            xy,
            expect=_r(_a("req-1", device="device-2"), _a("req-1", device="device-3"), _a("req-2")),
        )
    )
    add(
        Case(
            "check-combinations-with-prioritized-list",
            [
                claim(
                    "claim-0",
                    first(
                        "req-1",
                        sub("subReq-0", CA, 3, cel(f'device.attributes["{DA}"].type == "Y"')),
                        sub("subReq-1", CA, 2),
                    ),
                    first(
                        "req-2",
                        sub("subReq-0", CA, 2),
                        sub("subReq-1", CA, 1, cel(f'device.attributes["{DA}"].type == "X"')),
                    ),
                )
            ],
            [A],
            xy,
            expect=_r(
                _a("req-1/subReq-1", device="device-2"),
                _a("req-1/subReq-1", device="device-3"),
                _a("req-2/subReq-1"),
            ),
        )
    )
    return c


def _rest() -> list[Case]:
    """The cases translated last (binding conditions, multi-counter partitions, distinct)."""
    A, B = cls(CA, DA), cls(CB, DB)
    M = cls(CA, DA, multi=True)
    c: list[Case] = []
    add = c.append
    add(Case("empty", [], expect=[]))  # nothing asked, nothing allocated, no error
    add(Case("no-claims-to-allocate", [], [A], [one("slice-1", N1, P1, DA)], expect=[]))

    def part(name: str, *sets: tuple[str, dict[str, str]], **kw: Any) -> Obj:
        return dev(name, None, counters=list(sets), from_counters=True, **kw)

    def cs_slice(name: str, pool: str, *sets: tuple[str, dict[str, str]], **kw: Any) -> Obj:
        return slc(name, N1, pool, DA, counter_sets=[_cs(n, v) for n, v in sets], **kw)

    pl = first(
        "req-1",
        sub("subReq-0", CA, 1, mem_at_least("6Gi")),
        sub("subReq-1", CA, 1, mem_at_least("4Gi")),
    )
    cs1, cs2 = "counter-set-1", "counter-set-2"
    add(
        Case(
            "partitionable-devices-multiple-capacity-pools",
            [claim("claim-0", req("req-0", CA), pl)],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    part("device-1", (cs1, {"memory": "4Gi"}), (cs2, {"cpus": "4"})),
                    part("device-2", (cs1, {"memory": "6Gi"}), (cs2, {"cpus": "6"})),
                    part("device-3", (cs1, {"memory": "4Gi"}), (cs2, {"cpus": "4"})),
                    count=2,
                ),
                cs_slice("slice-2", P1, (cs1, {"memory": "18Gi"}), (cs2, {"cpus": "8"}), count=2),
            ],
            expect=_r(_a("req-0"), _a("req-1/subReq-1", device="device-3")),
        )
    )
    two_reqs = [claim("claim-0", req("req-0", CA), req("req-1", CA))]

    def mc(mem1: str, cpu1: str, cpu2: str, mem2: str) -> list[tuple[str, dict[str, str]]]:
        return [(cs1, {"memory": mem1, "cpus": cpu1}), (cs2, {"cpus": cpu2, "memory": mem2})]

    add(
        Case(
            "partitionable-devices-multiple-counters",
            two_reqs,
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    part("device-1", *mc("4Gi", "6", "4", "2Gi")),
                    part("device-2", *mc("6Gi", "4", "6", "6Gi")),
                    part("device-3", *mc("4Gi", "4", "4", "4Gi")),
                    count=2,
                ),
                cs_slice(
                    "slice-2",
                    P1,
                    (cs1, {"cpus": "8", "memory": "18Gi"}),
                    (cs2, {"cpus": "12", "memory": "18Gi"}),
                    count=2,
                ),
            ],
            expect=_r(_a("req-0", device="device-2"), _a("req-1", device="device-3")),
        )
    )

    def cm(cpus: str, mem: str) -> tuple[str, dict[str, str]]:
        return (cs1, {"cpus": cpus, "memory": mem})

    add(
        Case(
            "partitionable-devices-multiple-pools",
            two_reqs,
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    part("device-1", cm("6", "4Gi")),
                    part("device-2", cm("4", "6Gi")),
                    part("device-3", cm("4", "4Gi")),
                    count=2,
                ),
                cs_slice("slice-2", P1, cm("8", "18Gi"), count=2),
                slc(
                    "slice-3",
                    N1,
                    P2,
                    DA,
                    part("device-1", cm("6", "4Gi")),
                    part("device-2", cm("1", "7Gi")),
                    part("device-3", cm("1", "7Gi")),
                    count=2,
                ),
                cs_slice("slice-4", P2, cm("8", "18Gi"), count=2),
            ],
            allocated=[(DA, P1, "device-2"), (DA, P1, "device-3"), (DA, P2, "device-1")],
            expect=_r(_a("req-0", P2, "device-2"), _a("req-1", P2, "device-3")),
        )
    )
    region1 = labels("region", "region-1")
    add(
        Case(
            "partitionable-devices-per-device-node-selection-node-selector-multiple-devices",
            [claim("claim-0", req("req-0", CA, 3), req("req-1", CB, 3))],
            [A, B],
            [
                slc(
                    "slice-1",
                    PER,
                    P1,
                    DA,
                    part("device-1", (cs1, {"memory": "4Gi"}), at=region1),
                    part("device-2", (cs1, {"memory": "4Gi"}), at=N1),
                    part("device-3", (cs1, {"memory": "4Gi"}), at=ALL),
                    count=2,
                ),
                slc("slice-2", PER, P1, DA, count=2, counter_sets=[_cs(cs1, {"memory": "18Gi"})]),
                slc(
                    "slice-3",
                    N1,
                    P2,
                    DB,
                    *[part(f"device-{i}", (cs2, {"memory": "4Gi"})) for i in (1, 2, 3)],
                    count=2,
                ),
                slc("slice-4", N1, P2, DB, count=2, counter_sets=[_cs(cs2, {"memory": "12Gi"})]),
            ],
            expect=_r(
                *[_a("req-0", device=f"device-{i}") for i in (1, 2, 3)],
                *[_a("req-1", P2, f"device-{i}", DB) for i in (1, 2, 3)],
            ),
        )
    )
    bc1 = (["IsPrepare"], ["BindingFailed"])
    bc2 = (["IsPrepare2"], ["BindingFailed2"])
    bc3 = (["IsPrepare3"], ["BindingFailed3"])
    add(
        Case(
            "binding-conditions-multiple-devices",
            [claim("claim-0", req("req-0", CA, 2), req("req-1", CA))],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", binding=bc1),
                    dev("device-2", binding=bc2),
                    dev("device-3", binding=bc3),
                )
            ],
            expect=_r(
                _a("req-0", binding=bc1),
                _a("req-0", device="device-2", binding=bc2),
                _a("req-1", device="device-3", binding=bc3),
            ),
        )
    )
    mem8 = cs_slice("slice-2", P1, (cs1, {"memory": "8Gi"}), count=2)
    add(
        Case(
            "partitionable-devices-with-binding-conditions",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [
                slc("slice-1", N1, P1, DA, _part("device-1", "4Gi", binding=bc1), count=2),
                mem8,
            ],
            expect=_r(_a("req-0", binding=bc1)),
        )
    )
    add(
        Case(
            "partitionable-devices-with-binding-conditions-multiple",
            [claim("claim-0", req("req-0", CA, 2))],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    _part("device-1", "4Gi", binding=bc1),
                    _part("device-2", "4Gi", binding=bc2),
                    count=2,
                ),
                mem8,
            ],
            expect=_r(_a("req-0", binding=bc1), _a("req-0", device="device-2", binding=bc2)),
        )
    )
    ready = (["IsReady"], ["BindingTimeout"])
    add(
        Case(
            "partitionable-devices-with-binding-conditions-some-devices-no-conditions",
            [claim("claim-0", req("req-0", CA, 3))],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    _part("device-1", "2Gi", binding=bc1),
                    _part("device-2", "2Gi"),
                    _part("device-3", "4Gi", binding=ready),
                    count=2,
                ),
                mem8,
            ],
            expect=_r(
                _a("req-0", binding=bc1),
                _a("req-0", device="device-2"),
                _a("req-0", device="device-3", binding=ready),
            ),
        )
    )
    add(
        Case(
            "partitionable-devices-with-binding-conditions-multi-slices",
            [claim("claim-0", req("req-0", CA, 2))],
            [A],
            [
                slc("slice-4", N1, P1, DA, _part("device-1", "4Gi", binding=bc1), count=4),
                cs_slice("slice-3", P1, (cs1, {"memory": "8Gi"}), count=4),
                slc("slice-2", N1, P1, DA, _part("device-2", "4Gi", cs=cs2), count=4),
                cs_slice("slice-1", P1, (cs2, {"memory": "8Gi"}), count=4),
            ],
            expect=_r(_a("req-0", device="device-2"), _a("req-0", binding=bc1)),
        )
    )

    def cap(v: str) -> dict[str, str]:
        return {"capacity-0": v}

    def sh(request: str, device: str = "device-1", consumed: dict[str, str] | None = None) -> Obj:
        return _a(request, device=device, share=True, consumed=consumed)

    add(
        Case(
            "consumable-capacity-multi-allocatable-device-with-subrequest",
            [
                claim(
                    "claim-0",
                    first(
                        "req-0",
                        sub("subReq-0", CA, cap="4"),
                        sub("subReq-1", CA, cap="2"),
                        sub("subReq-1", CA),
                    ),
                )
            ],
            [M],
            [slc("slice-1", N1, P1, DA, dev("device-1", multi=True, policy_range=cap("2")))],
            expect=_r(sh("req-0/subReq-1", consumed=cap("2"))),
        )
    )

    def cc(c0: str) -> list[tuple[str, dict[str, str]]]:
        return [(cs1, {"capacity-0": c0}), (cs2, {"capacity-1": "4"})]

    def at_least(q: str) -> Obj:
        return cel(f'device.capacity["{DA}"]["capacity-0"].compareTo(quantity("{q}")) >= 0')

    both = {"capacity-0": "1", "capacity-1": "2"}
    add(
        Case(
            "consumable-capacity-with-partitionable-device-multiple-capacity-pools",
            [
                claim(
                    "claim-0",
                    req("req-0", CA, cap="1"),
                    req("req-2", CA, cap="2"),
                    first(
                        "req-1",
                        sub("subReq-0", CA, 1, at_least("4"), cap="1"),
                        sub("subReq-1", CA, 1, at_least("2"), cap="1"),
                    ),
                )
            ],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    *[
                        part(n, *cc(c0), multi=True, policy_range={"capacity-1": "4"})
                        for n, c0 in (("device-1", "2"), ("device-2", "4"), ("device-3", "2"))
                    ],
                    count=2,
                ),
                cs_slice(
                    "slice-2", P1, (cs1, {"capacity-0": "4"}), (cs2, {"capacity-1": "8"}), count=2
                ),
            ],
            expect=_r(
                sh("req-0", consumed=both),
                sh("req-2", "device-3", {"capacity-0": "2", "capacity-1": "2"}),
                sh("req-1/subReq-1", consumed=both),
            ),
        )
    )

    def dattrs(version: str, numa: int, flag: bool) -> dict[str, Any]:
        return {"driverVersion": V(version), "numa": numa, "boolAttribute": flag}

    add(
        Case(
            "with-distinct-constraints",
            [
                claim(
                    "claim-0",
                    *[req(f"req-{i}", CA) for i in range(4)],
                    constraints=[
                        distinct("boolAttribute", "req-0", "req-1"),
                        distinct("driverVersion", "req-0", "req-1", "req-2"),
                        distinct("numa", "req-0", "req-1", "req-2", "req-3"),
                    ],
                )
            ],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", None, dattrs("1.0.0", 0, True), multi=True),
                    dev("device-2", None, dattrs("1.0.1", 1, False), multi=True),
                    dev("device-3", None, dattrs("1.0.2", 2, True), multi=True),
                    dev("device-4", None, dattrs("1.0.0", 3, True), multi=True),
                )
            ],
            expect=_r(*[sh(f"req-{i}", f"device-{i + 1}") for i in range(4)]),
        )
    )
    one_distinct = [
        claim("claim-0", req("req-0", CA), constraints=[distinct("boolAttribute", "req-0")])
    ]
    add(
        Case(
            "with-distinct-constraints-attribute-not-set",
            one_distinct,
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1", multi=True))],
        )
    )
    add(
        Case(
            "with-distinct-constraints-unknown-type-attribute",
            one_distinct,
            [A],
            [slc("slice-1", N1, P1, DA, dev("device-1", None, {"boolAttribute": {}}, multi=True))],
            expect="error:unsupported attribute value",
        )
    )
    flag = cel(f'device.attributes["{DA}"].boolAttribute')
    add(
        Case(
            "with-distinct-constraints-with-subrequests",
            [
                claim(
                    "claim-0",
                    *[
                        first(f"req-{i}", sub("subReq-0", CA, 1, flag), sub("subReq-1", CA))
                        for i in range(3)
                    ],
                    constraints=[distinct("boolAttribute", "req-0", "req-1")],
                )
            ],
            [A],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev("device-1", None, {"boolAttribute": True}, multi=True),
                    dev("device-2", None, {"boolAttribute": False}, multi=True),
                )
            ],
            expect=_r(sh("req-0/subReq-0"), sh("req-1/subReq-1", "device-2"), sh("req-2/subReq-0")),
        )
    )
    add(
        Case(
            "distinct-constraint-two-multi-allocatable-devices-with-distinct-constraint",
            [
                claim(
                    "claim-0",
                    req("req-0", CA, cap="2"),
                    req("req-1", CA, cap="2"),
                    constraints=[distinct("stringAttribute")],
                )
            ],
            [M],
            [
                slc(
                    "slice-1",
                    N1,
                    P1,
                    DA,
                    dev(
                        f"device-{i}",
                        None,
                        {"stringAttribute": f"stringAttributeValue{i}"},
                        multi=True,
                        policy_range=cap("4"),
                    ),
                    count=2,
                )
                for i in (1, 2)
            ],
            expect=_r(sh("req-0", consumed=cap("2")), sh("req-1", "device-2", cap("2"))),
        )
    )
    five = [claim("claim-0", req("req-0", CA, 5))]
    add(
        Case(
            "check-combinations-within-single-request-single-pool-multiple-slices",
            five,
            [A],
            [
                slc("slice-1", N1, P1, DA, dev("device-1"), dev("device-2"), count=2),
                slc("slice-2", N1, P1, DA, dev("device-3"), dev("device-4"), count=2),
            ],
        )
    )
    add(
        Case(
            "check-combinations-within-single-request-multiple-pools-multiple-slices",
            five,
            [A],
            [
                slc("slice-1", N1, P1, DA, dev("device-1"), count=2),
                slc("slice-2", N1, P1, DA, dev("device-2"), count=2),
                slc("slice-3", N1, P2, DA, dev("device-3"), dev("device-4")),
            ],
        )
    )
    prep = (["IsPrepare"], [])
    add(
        Case(
            "check-combinations-with-backtracking-across-slices-and-pools",
            [
                claim(
                    "claim-0",
                    req("req-1", CA, 2),
                    req("req-2", CA, 1, cel(f'device.attributes["{DA}"].type == "X"')),
                )
            ],
            [A],
            [
                slc("slice-1", N1, P1, DA, dev("device-1", None, {"type": "X"}), count=2),
                slc("slice-2", N1, P1, DA, dev("device-2", None, {"type": "Y"}), count=2),
                slc("slice-3", N1, P2, DA, dev("device-3", None, {"type": "Y"}, binding=prep)),
            ],
            expect=_r(
                _a("req-1", device="device-2"),
                _a("req-1", P2, "device-3", binding=prep),
                _a("req-2"),
            ),
        )
    )
    # A pool moved from node-1 to node-2 (generation 2 published on node-2): upstream's table
    # expects allocation from node-1's obsolete generation 1 and says it would rather not ("We'd
    # like this to *not* be allocated"). Modelplane allocates only from a pool's newest
    # generation, so nothing is allocated from the moved pool (see the module docstring).
    g1 = [
        slc("slice-1", N1, P1, DA, dev("device-1"), count=2),
        slc("slice-1", N1, P1, DA, dev("device-2"), count=2),
    ]
    add(
        Case(
            "multi-host-resource-pool-complete-update-from-node-1-to-node-2",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [
                *g1,
                slc("slice-2", N2, P1, DA, dev("device-1"), count=2, gen=2),
                slc("slice-2", N2, P1, DA, dev("device-2"), count=2, gen=2),
            ],
        )
    )
    add(
        Case(
            "multi-host-resource-pool-incomplete-update-from-node-1-to-node-2",
            [claim("claim-0", req("req-0", CA))],
            [A],
            [*g1, slc("slice-2", N2, P1, DA, dev("device-1"), count=2, gen=2)],
        )
    )
    return c


#: Upstream's ``expectNumAllocateOneInvocations`` (its best allocator's figure): how many
#: steps its search takes on these cases. Modelplane's :attr:`AllocationResult.steps` counts
#: the same unit (one device tried for one position of one request).
UPSTREAM_STEPS = {
    "prioritized-list-max-allocation-allocation-mode-all": 42,
    "check-combinations-within-single-request-single-pool-single-slice": 16,
    "check-combinations-within-single-request-single-pool-multiple-slices": 16,
    "check-combinations-within-single-request-multiple-pools-multiple-slices": 16,
    "check-combinations-within-single-request-many-pools": 16,
    "check-combinations-with-backtracking": 12,
    "check-combinations-with-backtracking-across-slices-and-pools": 12,
    "check-combinations-with-prioritized-list": 26,
}
#: Where upstream's unit is coarser than one device: it places 128 devices in 75 steps here,
#: so only linearity is compared (Modelplane: at most one try per device of the slice).
UPSTREAM_STEPS_COARSER = {"prioritized-list-max-allocation-limit-request": 75}
