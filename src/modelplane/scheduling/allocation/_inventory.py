"""The device inventory: ResourceSlices, DeviceClasses and Nodes indexed for fast decisions.

An :class:`Inventory` is built once from plain ``resource.k8s.io/v1`` dicts and is immutable;
when slices change, build a new one (cheap next to the decisions it serves). What changes with
every decision lives in :class:`~modelplane.scheduling.AllocatedState`.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any

from modelplane.api import (
    BLOCK_LABEL,
    HOSTNAME_LABEL,
    RACK_LABEL,
    TIME_SLICES_CAPACITY,
    TIME_SLICING_ANNOTATION,
    QuantityError,
    parse_quantity,
)
from modelplane.api import NODE_POWER_CAP_ANNOTATION as NODE_POWER_CAP
from modelplane.api import RACK_POWER_CAP_ANNOTATION as RACK_POWER_CAP

from .._errors import CelCompileError, CelRuntimeError, MatchingTimeout, SchedulingInputError
from ._cel import CelDevice, SelectorProgram, compile_selector, parse_semver

__all__ = [
    "BLOCK_LABEL",
    "HOSTNAME_LABEL",
    "RACK_LABEL",
    "Device",
    "Inventory",
    "SchedulingInputError",
]


CounterKey = tuple[str, str, str, str]  # driver, pool, counter set, counter


@dataclass(slots=True, eq=False)
class Device:
    """One device of one ResourceSlice, with everything a decision needs precomputed."""

    index: int
    driver: str
    pool: str
    name: str
    node: str | None  # None: reachable from every node (``allNodes``)
    attributes: dict[str, Any]  # fully qualified name -> int | bool | str | Semver
    capacity: dict[str, Fraction]  # fully qualified name -> quantity
    request_policies: dict[str, dict[str, Any]]
    consumes: tuple[tuple[CounterKey, Fraction], ...]
    taints: tuple[dict[str, Any], ...]
    allow_multiple: bool
    cel: CelDevice
    units: float = 1.0  # share of one physical accelerator this device occupies
    physical: str = ""  # the physical accelerator (counter set or the device itself)
    counter_families: dict[str, Fraction] | None = None  # consumption per counter family
    sig: int = -1  # devices with equal driver, attributes and capacity share a signature
    node_selector: dict[str, Any] | None = None  # network-attached: the nodes that reach it
    binding_conditions: tuple[str, ...] = ()
    binding_failure_conditions: tuple[str, ...] = ()
    binds_to_node: bool = False
    #: the time-sliced DeviceClasses whose claims take one slice of it (:func:`_time_slice`)
    time_sliced_by: frozenset[str] = frozenset()

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.driver, self.pool, self.name)

    def attribute(self, qualified: str) -> Any:
        """Look up ``domain/name``; a name published without domain belongs to the driver."""
        if qualified in self.attributes:
            return self.attributes[qualified]
        return None


@dataclass(slots=True)
class NodeInfo:
    name: str
    labels: dict[str, str]
    rack: str
    block: str
    power_cap: float | None
    rack_power_cap: float | None
    units: float = 0.0  # physical accelerators on the node


@dataclass(slots=True)
class Inventory:
    """Devices by node, counter totals, classes and nodes, plus cached selector matches."""

    devices: list[Device]
    by_node: dict[str, list[Device]]
    shared: list[Device]  # devices of allNodes slices
    counters: dict[CounterKey, Fraction]
    classes: dict[str, dict[str, Any]]
    nodes: dict[str, NodeInfo]
    incomplete_pools: set[tuple[str, str]]
    # Pools refused as published (duplicate device or counter-set names, unknown counter sets):
    # never allocated from; named when a claim cannot be placed without them.
    invalid_pools: dict[tuple[str, str], str] = field(default_factory=dict)
    unusable: list[Mapping[str, Any]] = field(default_factory=list)  # slices of those pools
    physical_by_node: dict[str, dict[str, None]] = field(default_factory=dict)
    _by_id: dict[tuple[str, str, str], Device] = field(default_factory=dict)
    _sets: dict[tuple[str, str, str], dict[str, Fraction]] = field(default_factory=dict)
    _min_units: dict[tuple[str, ...], float] = field(default_factory=dict)
    _profiles: dict[tuple[str, ...], dict[str, tuple[int, bool]]] = field(default_factory=dict)
    _matches: dict[tuple[str, ...], dict[str, list[Device]]] = field(default_factory=dict)
    _partial: dict[tuple[str, ...], _Matching] = field(default_factory=dict)
    _sig_ids: dict[tuple[Any, ...], int] = field(default_factory=dict)
    _errors: dict[tuple[str, ...], tuple[dict[str, list[Device]], dict[int, tuple[str, str]]]] = (
        field(default_factory=dict)
    )

    @classmethod
    def from_objects(
        cls,
        slices: Iterable[Mapping[str, Any]],
        classes: Iterable[Mapping[str, Any]] = (),
        nodes: Iterable[Mapping[str, Any]] = (),
    ) -> Inventory:
        """Index ResourceSlices, DeviceClasses and Nodes (plain dicts, ``resource.k8s.io/v1``).

        Only the newest generation of each pool counts, as in Kubernetes; a pool with fewer
        slices than its ``resourceSliceCount`` is remembered as incomplete.
        """
        # Tens of thousands of small objects: the cyclic GC would rescan them over and over.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return cls._build(list(slices), classes, nodes)
        finally:
            if gc_was_enabled:
                gc.enable()

    @classmethod
    def _build(
        cls,
        slices: list[Mapping[str, Any]],
        classes: Iterable[Mapping[str, Any]],
        nodes: Iterable[Mapping[str, Any]],
    ) -> Inventory:
        newest: dict[tuple[str, str], int] = {}
        for i, s in enumerate(slices):
            spec = _spec(s, f"ResourceSlice #{i}")
            pool = spec.get("pool") or {}
            key = (str(spec.get("driver", "")), str(pool.get("name", "")))
            gen = int(pool.get("generation", 0) or 0)
            newest[key] = max(gen, newest.get(key, -1))
        # Only the newest generation of a pool counts, and all its slices count towards
        # ``resourceSliceCount`` whichever node they target (Kubernetes: a pool being updated
        # is not allocated from until the driver has published all of it).
        current: dict[tuple[str, str], list[tuple[int, Mapping[str, Any]]]] = {}
        for i, s in enumerate(slices):
            spec = s["spec"]
            pool = spec.get("pool") or {}
            key = (str(spec.get("driver", "")), str(pool.get("name", "")))
            if int(pool.get("generation", 0) or 0) == newest[key]:
                current.setdefault(key, []).append((i, s))
        incomplete: set[tuple[str, str]] = set()
        invalid: dict[tuple[str, str], str] = {}
        for key, members in current.items():
            expected = int((members[0][1]["spec"].get("pool") or {}).get("resourceSliceCount") or 1)
            if len(members) != expected:
                incomplete.add(key)
            else:
                why = _pool_problem([s for _, s in members])
                if why:
                    invalid[key] = why
        inv = cls([], {}, [], {}, {}, {}, incomplete)
        inv.invalid_pools = invalid
        for n in nodes:
            info = _node_info(n)
            inv.nodes[info.name] = info
        # Counters first, so a device sees its counter set whichever slice publishes it and
        # whatever the order of the slices.
        for key, members in current.items():
            if key in incomplete or key in invalid:
                inv.unusable.extend(s for _, s in members)
                continue
            for i, s in members:
                inv._add_counters(s, i)
        for key, members in current.items():
            if key in incomplete or key in invalid:
                continue
            for i, s in members:
                inv._add_slice(s, i)
        for c in classes:
            name = (c.get("metadata") or {}).get("name")
            if not name:
                raise SchedulingInputError("DeviceClass without metadata.name")
            inv.classes[str(name)] = dict(c)
        _time_slice(inv)
        for node, devices in inv.by_node.items():
            if node not in inv.nodes:
                inv.nodes[node] = NodeInfo(node, {HOSTNAME_LABEL: node}, "", "", None, None)
            info = inv.nodes[node]
            accels = dict.fromkeys(d.physical for d in devices)
            inv.physical_by_node[node] = accels
            info.units = float(len(accels))
        return inv

    def _add_counters(self, s: Mapping[str, Any], i: int) -> None:
        meta = s.get("metadata") or {}
        where = f"ResourceSlice {meta.get('name', f'#{i}')}"
        spec = s["spec"]
        driver = spec.get("driver")
        pool = (spec.get("pool") or {}).get("name")
        if not driver or not pool:
            raise SchedulingInputError(f"{where}: spec.driver and spec.pool.name are required")
        for cs in spec.get("sharedCounters") or ():
            for cname, c in (cs.get("counters") or {}).items():
                key = (driver, pool, cs["name"], cname)
                value = _amount(_qty(c.get("value"), f"{where}: sharedCounters {cname}"))
                self.counters[key] = value
                self._sets.setdefault((driver, pool, cs["name"]), {})[cname] = value

    def _add_slice(self, s: Mapping[str, Any], i: int) -> None:
        meta = s.get("metadata") or {}
        where = f"ResourceSlice {meta.get('name', f'#{i}')}"
        spec = s["spec"]
        driver = spec["driver"]
        pool = spec["pool"]["name"]
        per_device = bool(spec.get("perDeviceNodeSelection"))
        reach = _reach(spec) if not per_device else None
        if reach is None and not per_device and spec.get("devices"):
            raise SchedulingInputError(
                f"{where}: set one of spec.nodeName, spec.nodeSelector, spec.allNodes or "
                "spec.perDeviceNodeSelection"
            )
        for j, d in enumerate(spec.get("devices") or ()):
            dev_reach = _reach(d) if per_device else reach
            if dev_reach is None:
                raise SchedulingInputError(
                    f"{where}: spec.devices[{j}]: with perDeviceNodeSelection set one of "
                    "nodeName, nodeSelector or allNodes on the device"
                )
            self._add_device(d, driver, pool, dev_reach, f"{where}: spec.devices[{j}]")

    def _add_device(
        self,
        d: Mapping[str, Any],
        driver: str,
        pool: str,
        reach: tuple[str | None, dict[str, Any] | None],
        where: str,
    ) -> None:
        node, selector = reach
        name = d.get("name")
        if not name:
            raise SchedulingInputError(f"{where}.name is required")
        attrs: dict[str, Any] = {}
        for aname, a in (d.get("attributes") or {}).items():
            qualified = aname if "/" in aname else f"{driver}/{aname}"
            attrs[qualified] = _attribute_value(a, f"{where}.attributes[{aname}]")
        capacity: dict[str, Fraction] = {}
        policies: dict[str, dict[str, Any]] = {}
        for cname, c in (d.get("capacity") or {}).items():
            qualified = cname if "/" in cname else f"{driver}/{cname}"
            capacity[qualified] = _qty(c.get("value"), f"{where}.capacity[{cname}].value")
            if c.get("requestPolicy"):
                policies[qualified] = c["requestPolicy"]
        consumes: list[tuple[CounterKey, Fraction]] = []
        physical = f"{driver}/{pool}/{name}"
        for cc in d.get("consumesCounters") or ():
            for cname, c in (cc.get("counters") or {}).items():
                key = (driver, pool, cc["counterSet"], cname)
                consumes.append(
                    (key, _amount(_qty(c.get("value"), f"{where}.consumesCounters {cname}")))
                )
            physical = f"{driver}/{pool}/{cc['counterSet']}"
        units = self._units(consumes) if consumes else 1.0
        allow_multiple = bool(d.get("allowMultipleAllocations"))
        domains = (_domains(tuple(attrs)), _domains(tuple(capacity)))
        # What a selector can see of the device; ``type`` keeps ``True`` apart from ``1``.
        signature = (
            driver,
            tuple([(k, v, v.__class__) for k, v in attrs.items()]),
            tuple(capacity.items()),
            allow_multiple,
        )
        sig = self._sig_ids.setdefault(signature, len(self._sig_ids))
        dev = Device(
            index=len(self.devices),
            driver=driver,
            pool=pool,
            name=str(name),
            node=node,
            attributes=attrs,
            capacity=capacity,
            request_policies=policies,
            consumes=tuple(consumes),
            taints=tuple(d.get("taints") or ()),
            allow_multiple=allow_multiple,
            cel=CelDevice(driver, attrs, capacity, domains, allow_multiple),
            units=units,
            physical=physical,
            sig=sig,
            node_selector=selector,
            binding_conditions=tuple(d.get("bindingConditions") or ()),
            binding_failure_conditions=tuple(d.get("bindingFailureConditions") or ()),
            binds_to_node=bool(d.get("bindsToNode")),
        )
        self.devices.append(dev)
        self._by_id[dev.id] = dev
        if node is None:
            self.shared.append(dev)
        else:
            self.by_node.setdefault(node, []).append(dev)

    def reaches(self, dev: Device, node: str) -> bool:
        """Can a pod on ``node`` use ``dev`` (node-local, ``allNodes`` or a matching selector)?"""
        if dev.node is not None:
            return dev.node == node
        if dev.node_selector is None:
            return True
        return node_selected(dev.node_selector, node, self.nodes.get(node))

    def bad_pools_for(self, node: str | None) -> list[str]:
        """Invalid pools (with why) whose slices reach ``node`` (every node when None)."""
        out: list[str] = []
        for key, why in self.invalid_pools.items():
            out.append(f"{key[0]}/{key[1]}: {why}")
        return out if node is None else [o for o in out if self._bad_reaches(o, node)]

    def _bad_reaches(self, label: str, node: str) -> bool:
        driver, _, pool = label.partition(": ")[0].partition("/")
        return self.pool_reaches(driver, pool, node)

    def pool_reaches(self, driver: str, pool: str, node: str) -> bool:
        """Does any slice of an unusable (incomplete or invalid) pool reach ``node``?"""
        for s in self.unusable:
            spec = s["spec"]
            if spec.get("driver") != driver or (spec.get("pool") or {}).get("name") != pool:
                continue
            if spec.get("perDeviceNodeSelection"):
                reaches = [_reach(d) for d in spec.get("devices") or ()]
            else:
                reaches = [_reach(spec)]
            for r in reaches:
                if r is None:
                    continue
                if r[0] is not None and r[0] == node:
                    return True
                if r[0] is None and (
                    r[1] is None or node_selected(r[1], node, self.nodes.get(node))
                ):
                    return True
        return False

    def _units(self, consumes: list[tuple[CounterKey, Fraction]]) -> float:
        """Share of its accelerator a partition takes: the mean share over the set's counters.

        Partitions that fit together never add up to more than 1, which makes "free units" a
        sound bound for pruning nodes.
        """
        used = dict(consumes)
        shares: list[float] = []
        for counter_set in {key[:3] for key, _ in consumes}:
            for name, total in self._sets.get(counter_set, {}).items():
                if total > 0:
                    shares.append(float(used.get((*counter_set, name), 0)) / float(total))
        return sum(shares) / len(shares) if shares else 1.0

    def device(self, driver: str, pool: str, name: str) -> Device | None:
        return self._by_id.get((driver, pool, name))

    def min_units(self, expressions: tuple[str, ...]) -> float:
        """Smallest exclusive accelerator share among devices matching ``expressions``."""
        hit = self._min_units.get(expressions)
        if hit is None:
            units = [
                0.0 if d.allow_multiple else d.units
                for devs in self.matching(expressions).values()
                for d in devs
            ]
            hit = self._min_units[expressions] = min(units) if units else 1.0
        return hit

    def node_profile(self, expressions: tuple[str, ...]) -> dict[str, tuple[int, bool]]:
        """Per node: accelerators with a matching device, and whether any is a partition."""
        hit = self._profiles.get(expressions)
        if hit is None:
            hit = self._profiles[expressions] = {
                node: (len({d.physical for d in devs}), any(d.consumes for d in devs))
                for node, devs in self.matching(expressions).items()
            }
        return hit

    def matching(
        self, expressions: tuple[str, ...], deadline: float | None = None
    ) -> dict[str, list[Device]]:
        """Devices per node for which every expression holds (cached; shared devices under "").

        Each device *signature* (driver, attributes, capacity) is evaluated once. With a
        ``deadline`` (a ``time.perf_counter()`` value) the work stops when it passes, raising
        :class:`MatchingTimeout`; the progress is kept, so the next call continues from there.
        """
        hit = self._matches.get(expressions)
        if hit is not None:
            return hit
        m = self._partial.get(expressions)
        if m is None:
            m = self._partial[expressions] = _Matching([compile_selector(e) for e in expressions])
        devices = self.devices
        total = len(devices)
        verdicts = m.verdicts
        result = m.result
        programs = m.programs
        clock = time.perf_counter
        i = m.position
        evaluated = False
        while i < total:
            dev = devices[i]
            ok = verdicts.get(dev.sig)
            if ok is None:
                # At least one evaluation per call, so that retries always make progress.
                if deadline is not None and evaluated and clock() > deadline:
                    m.position = i
                    raise MatchingTimeout(i, total)
                evaluated = True
                ok = True
                for prog in programs:
                    try:
                        if not prog.matches(dev.cel):
                            ok = False
                            break
                    except CelRuntimeError as exc:
                        # Not a verdict on the claim: only nodes that reach this device care
                        # (Kubernetes evaluates selectors on the devices of the node at hand).
                        m.failed[dev.sig] = (prog.expression, str(exc))
                        ok = False
                        break
                verdicts[dev.sig] = ok
            if ok:
                result.setdefault(dev.node or "", []).append(dev)
            elif m.failed and dev.sig in m.failed:
                m.errors.setdefault(dev.node or "", []).append(dev)
            i += 1
            if not i & 2047 and deadline is not None and clock() > deadline and i < total:
                m.position = i
                raise MatchingTimeout(i, total)
        self._matches[expressions] = result
        if m.errors:
            self._errors[expressions] = (m.errors, m.failed)
        self._partial.pop(expressions, None)
        return result

    def has_selector_errors(self, expressions: tuple[str, ...]) -> bool:
        return expressions in self._errors

    def selector_error(
        self, expressions: tuple[str, ...], node: str
    ) -> tuple[Device, str, str] | None:
        """A device reachable from ``node`` on which an expression failed at run time."""
        hit = self._errors.get(expressions)
        if hit is None:
            return None
        errors, failed = hit
        for dev in (*errors.get(node, ()), *errors.get("", ())):
            if self.reaches(dev, node):
                expression, message = failed[dev.sig]
                return dev, expression, message
        return None


@dataclass(slots=True)
class _Matching:
    """A selector match in progress: devices ``[0, position)`` are done."""

    programs: list[SelectorProgram]
    position: int = 0
    verdicts: dict[int, bool] = field(default_factory=dict)  # by device signature
    result: dict[str, list[Device]] = field(default_factory=dict)
    failed: dict[int, tuple[str, str]] = field(default_factory=dict)  # sig -> expression, error
    errors: dict[str, list[Device]] = field(default_factory=dict)  # node -> failed devices


def _time_slice(inv: Inventory) -> None:
    """GPU time-slicing: every device a DeviceClass annotated with ``TIME_SLICING_ANNOTATION``
    selects becomes multi-allocatable with the consumable capacity ``TIME_SLICES_CAPACITY`` of
    that many slices; a claim of the class takes one (``requestPolicy.default``), a claim of any
    other class all of them (the device whole, as before). Capacities a share does not ask for
    (memory) are not consumed: time-slicing isolates no memory."""
    for name, device_class in sorted(inv.classes.items()):
        raw = ((device_class.get("metadata") or {}).get("annotations") or {}).get(
            TIME_SLICING_ANNOTATION
        )
        if raw is None or not str(raw).isdigit() or int(raw) < 2:
            continue  # validation refuses such a class at apply; a stale one shares nothing
        try:
            programs = [
                compile_selector(str((sel.get("cel") or {}).get("expression") or "true"))
                for sel in (device_class.get("spec") or {}).get("selectors") or []
            ]
        except CelCompileError:
            continue
        slices = Fraction(int(raw))
        for dev in inv.devices:
            if dev.allow_multiple and not dev.time_sliced_by:
                continue  # shared already as its driver published it
            if dev.capacity.get(TIME_SLICES_CAPACITY, slices) != slices:
                continue  # sliced differently by another class: the first (by name) holds
            try:
                if not all(p.matches(dev.cel) for p in programs):
                    continue
            except CelRuntimeError:
                continue
            dev.allow_multiple = True
            dev.capacity[TIME_SLICES_CAPACITY] = slices
            dev.request_policies[TIME_SLICES_CAPACITY] = {"default": "1"}
            dev.time_sliced_by = dev.time_sliced_by | {name}


class _SelectorFailure(Exception):
    def __init__(self, expression: str, device: Device, message: str) -> None:
        super().__init__(message)
        self.expression, self.device, self.message = expression, device, message


@lru_cache(maxsize=1024)
def _domains(names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted({k.rpartition("/")[0] for k in names}))


def _spec(obj: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    spec = obj.get("spec") if isinstance(obj, Mapping) else None
    if not isinstance(spec, Mapping):
        raise SchedulingInputError(f"{where}: spec is missing or not an object")
    return spec


def _amount(value: Fraction) -> Fraction:
    # Counters are almost always whole numbers; int arithmetic is an order of magnitude faster
    # than Fraction's in the hot path, and ints compare exactly with Fractions.
    return value.numerator if value.denominator == 1 else value  # type: ignore[return-value]


def _qty(value: Any, where: str) -> Fraction:
    try:
        return parse_quantity(value)
    except QuantityError as exc:
        raise SchedulingInputError(f"{where}: {exc}") from None


_LIST_KINDS = {"ints": "int", "bools": "bool", "strings": "string", "versions": "version"}


def _attribute_value(a: Mapping[str, Any], where: str) -> Any:
    for plural, single in _LIST_KINDS.items():
        values = a.get(plural)
        if values is not None:
            if not values:
                raise SchedulingInputError(f"{where}.{plural}: unsupported attribute value: empty")
            # A tuple: hashable, and told apart from a scalar by constraints and CEL alike.
            return tuple(_attribute_value({single: v}, f"{where}.{plural}") for v in values)
    if "int" in a:
        return int(a["int"])
    if "bool" in a:
        return bool(a["bool"])
    if "string" in a:
        return str(a["string"])
    if "version" in a:
        try:
            return parse_semver(str(a["version"]))
        except ValueError as exc:
            raise SchedulingInputError(f"{where}.version: {exc}") from None
    raise SchedulingInputError(
        f"{where}: unsupported attribute value: set exactly one of int, bool, string, version "
        "(or ints, bools, strings, versions)"
    )


def _reach(obj: Mapping[str, Any]) -> tuple[str | None, dict[str, Any] | None] | None:
    """``(node, selector)`` of a slice or a per-device node selection; None when unset."""
    if obj.get("nodeName"):
        return str(obj["nodeName"]), None
    if obj.get("allNodes"):
        return None, None
    if obj.get("nodeSelector") is not None:
        return None, dict(obj["nodeSelector"])
    return None


def node_selected(selector: Mapping[str, Any], node: str, info: NodeInfo | None) -> bool:
    """Kubernetes NodeSelector semantics: terms are ORed, requirements in a term ANDed."""
    labels = info.labels if info is not None else {}
    for term in selector.get("nodeSelectorTerms") or ():
        exprs = term.get("matchExpressions") or ()
        fields = term.get("matchFields") or ()
        if not exprs and not fields:
            continue
        if all(_requirement(r, labels.get(r.get("key", ""))) for r in exprs) and all(
            _requirement(r, node if r.get("key") == "metadata.name" else None) for r in fields
        ):
            return True
    return False


def _requirement(req: Mapping[str, Any], value: str | None) -> bool:
    op = req.get("operator")
    values = [str(v) for v in req.get("values") or ()]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and values:
        try:
            a, b = int(value), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def _pool_problem(slices: list[Mapping[str, Any]]) -> str | None:
    """Why a complete pool cannot be used as published (Kubernetes refuses such pools)."""
    devices: set[str] = set()
    sets: dict[str, dict[str, Any]] = {}
    for s in slices:
        for cs in s["spec"].get("sharedCounters") or ():
            name = str(cs.get("name", ""))
            if name in sets:
                return f"duplicate counter set name {name}"
            sets[name] = dict(cs.get("counters") or {})
    for s in slices:
        for d in s["spec"].get("devices") or ():
            name = str(d.get("name", ""))
            if name in devices:
                return f"duplicate device name {name}"
            devices.add(name)
            for cc in d.get("consumesCounters") or ():
                counter_set = sets.get(str(cc.get("counterSet", "")))
                if counter_set is None:
                    return f"device {name} consumes unknown counter set {cc.get('counterSet')}"
                for counter in cc.get("counters") or {}:
                    if counter not in counter_set:
                        return (
                            f"device {name} consumes unknown counter {counter} of counter set "
                            f"{cc.get('counterSet')}"
                        )
    return None


def _node_info(n: Mapping[str, Any]) -> NodeInfo:
    meta = n.get("metadata") or {}
    name = meta.get("name")
    if not name:
        raise SchedulingInputError("Node without metadata.name")
    labels = dict(meta.get("labels") or {})
    ann = meta.get("annotations") or {}

    def cap(key: str) -> float | None:
        value = ann.get(key)
        return float(value) if value not in (None, "") else None

    return NodeInfo(
        name=str(name),
        labels=labels,
        rack=labels.get(RACK_LABEL, ""),
        block=labels.get(BLOCK_LABEL, ""),
        power_cap=cap(NODE_POWER_CAP),
        rack_power_cap=cap(RACK_POWER_CAP),
    )


def node_names(inv: Inventory) -> Sequence[str]:
    return list(inv.nodes)
