"""What every DRA constraint is: the requests it covers, and the state one search keeps for it.

A claim's constraint is parsed once (``_registry.parse_constraint``) into an object of its type;
the allocator asks it which requests it covers and, while it searches a node, asks its
:class:`Tracker` whether a device may join the devices chosen so far.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Protocol

__all__ = ["Constraint", "Planned", "Tracker", "values_of"]


class Planned(Protocol):
    """What a constraint reads of a request: its name (``gpu/large``) and its base (``gpu``)."""

    @property
    def name(self) -> str: ...

    @property
    def base(self) -> str: ...


def values_of(value: Any) -> frozenset[Any]:
    """A constraint's view of an attribute: the set of its values (a scalar is one value)."""
    if value is None:
        return frozenset()
    if isinstance(value, tuple):
        return frozenset(value)
    return frozenset((value,))


class Tracker(ABC):
    """The devices one search chose under one constraint, as the constraint sees them.

    The search calls :meth:`admits` before it adds a device, :meth:`add` when it does and
    :meth:`remove` when it backtracks (last in, first out), with the device's attribute values.
    """

    __slots__ = ()

    def allowed(self) -> frozenset[Any] | None:
        """The values a next device must share with the chosen ones; None while any will do."""
        return None

    @abstractmethod
    def admits(self, values: frozenset[Any]) -> bool:
        """May a device with these attribute values join the chosen ones?"""

    @abstractmethod
    def add(self, values: frozenset[Any]) -> None:
        """A device with these values was chosen."""

    @abstractmethod
    def remove(self, values: frozenset[Any]) -> None:
        """The last device chosen (with these values) was given back."""


class Constraint(ABC):
    """One entry of ``spec.devices.constraints``: an attribute over some of the claim's requests."""

    __slots__ = ("attribute", "needed", "parts", "requests")

    #: the field of ``spec.devices.constraints[]`` that names this type
    field: ClassVar[str]
    #: True when every device under the constraint has one value of the attribute: the search
    #: then tries the devices value by value, and skips a value whose devices cannot hold the claim
    same_value: ClassVar[bool] = False
    #: how a failure reads: "had no 4 devices with <wording> <attribute>"
    wording: ClassVar[str]

    def __init__(self, attribute: str, requests: frozenset[str]) -> None:
        self.attribute = attribute
        self.requests = requests  # empty: every request of the claim
        self.needed = 0  # the fewest devices the covered requests take together
        self.parts: tuple[tuple[str, int], ...] = ()  # (request, fewest devices) per request

    def covers(self, plan: Planned) -> bool:
        """Does the constraint apply to this request (or ``firstAvailable`` alternative)?"""
        return not self.requests or plan.base in self.requests or plan.name in self.requests

    @abstractmethod
    def tracker(self) -> Tracker:
        """Fresh state for one search: nothing chosen yet."""

    def reason(self) -> str:
        """Why a node failed on this constraint, as the unschedulable message says it.

        Over several requests (GPUs and the NICs aligned with them) it names each request's
        share: "had no 2 gpu + 2 nic devices with the same resource.kubernetes.io/pcieRoot".
        """
        if len(self.parts) > 1:
            what = " + ".join(f"{n} {name}" for name, n in self.parts)
            return f"had no {what} devices with {self.wording} {self.attribute}"
        return f"had no {self.needed} devices with {self.wording} {self.attribute}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.attribute!r}, {sorted(self.requests)!r})"
