"""Controller runtime: informers, work queues, reconcile loops, leader election, events.

Owns: the machinery that turns store changes into ``reconcile(request)`` calls (:class:`Informer`,
:class:`WorkQueue`, :class:`Controller`, :class:`Manager`, :class:`LeaderElector`), the helpers every
controller uses to report what it did (:func:`set_condition`, :func:`commit_status`,
:meth:`Controller.write_status` for a part of a status a controller owns, :func:`record_event`,
:meth:`Controller.record`, and :func:`rfc3339` for the times it writes there). No controller of a
subsystem lives here (the Model controller is ``modelplane.serving``'s).

Must not touch: schemas (``modelplane.api`` validates; controllers read and write plain dicts),
storage internals (only the ``modelplane.store.Store`` protocol), HTTP, and other subsystems'
internals: a subsystem's controller lives in its own package and subclasses :class:`Controller`.

Threads, not asyncio: the store API is synchronous and thread-safe, so informers, workers and the
leader elector are daemon threads, as in client-go. A controller is a subclass of
:class:`Controller` with a ``kind`` and a ``reconcile`` that is safe to run again at any time.
"""

from modelplane.control._conditions import (
    get_condition,
    now_rfc3339,
    parse_rfc3339,
    rfc3339,
    set_condition,
)
from modelplane.control._controller import (
    Controller,
    ControllerStats,
    Request,
    Result,
    Watches,
    map_owner,
)
from modelplane.control._events import record_event
from modelplane.control._informer import EventHandler, Informer
from modelplane.control._leader import LeaderElector
from modelplane.control._manager import (
    DEFAULT_LEASE_NAME,
    Manager,
    default_identity,
)
from modelplane.control._queue import RateLimiter, WorkQueue
from modelplane.control._status import StatusEvent, commit_status

__all__ = [
    "DEFAULT_LEASE_NAME",
    "Controller",
    "ControllerStats",
    "EventHandler",
    "Informer",
    "LeaderElector",
    "Manager",
    "RateLimiter",
    "Request",
    "Result",
    "StatusEvent",
    "Watches",
    "WorkQueue",
    "commit_status",
    "default_identity",
    "get_condition",
    "map_owner",
    "now_rfc3339",
    "parse_rfc3339",
    "record_event",
    "rfc3339",
    "set_condition",
]
