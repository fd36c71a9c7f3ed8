"""The manager: runs a set of controllers in one process, only while it leads.

Many processes may run a manager on one shared store (scale-out on PostgreSQL); leader election on
the lease ``lease_name`` makes sure exactly one of them runs the controllers at a time. When the
leader stops gracefully it stops its controllers and then releases the lease, so a standby takes
over at its next try (``retry_period``) rather than after the lease lapses.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from modelplane.control._controller import Controller
from modelplane.control._leader import LeaderElector

if TYPE_CHECKING:
    from modelplane.store import Store

log = logging.getLogger("modelplane.control.manager")

DEFAULT_LEASE_NAME = "modelplane-controller-manager"


def default_identity() -> str:
    """``<host>-<pid>-<random>``: unique per process, readable in ``get_lease`` output."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Manager:
    """Runs ``controllers`` while holding the leader lease.

    Which controllers a control plane runs is the composition root's business
    (``modelplane.platform.controllers``): this package knows no subsystem.

    ``store`` is a :class:`modelplane.store.Store`. With ``leader_election=False`` the controllers
    run as soon as the manager starts (one process alone on its store, in tests). The lease timings
    are those of :class:`~modelplane.control.LeaderElector`.
    """

    def __init__(
        self,
        store: Store,
        *,
        identity: str | None = None,
        controllers: Sequence[Controller],
        leader_election: bool = True,
        lease_name: str = DEFAULT_LEASE_NAME,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
    ) -> None:
        self.store = store
        self.identity = identity or default_identity()
        self.controllers: list[Controller] = list(controllers)
        self._lock = threading.Lock()
        self._running = False
        self._elector: LeaderElector | None = None
        #: when a graceful stop must be over: bounds the controllers' stop on losing leadership too
        self._stop_deadline: float | None = None
        if leader_election:
            self._elector = LeaderElector(
                store,
                lease_name,
                self.identity,
                lease_duration,
                renew_deadline,
                retry_period,
                on_started_leading=self._start_controllers,
                on_stopped_leading=self._stop_controllers,
            )

    @property
    def is_leader(self) -> bool:
        """Whether this manager's controllers are meant to be running now."""
        return self._elector.is_leader if self._elector is not None else self._running

    def wait_for_leadership(self, timeout: float | None = None) -> bool:
        if self._elector is None:
            return self._running
        return self._elector.wait_for_leadership(timeout)

    def start(self) -> None:
        """Begin campaigning (or start the controllers at once without leader election)."""
        with self._lock:
            if self._running:
                return
            self._running = True
            self._stop_deadline = None
        log.info("manager %s starting %d controller(s)", self.identity, len(self.controllers))
        if self._elector is not None:
            self._elector.start()
        else:
            self._start_controllers()

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop controllers (reconciles in progress finish), then release the lease.

        Returns False when something did not stop within ``timeout`` seconds.
        """
        with self._lock:
            if not self._running:
                return True
            self._running = False
        deadline = time.monotonic() + timeout
        self._stop_deadline = deadline
        if self._elector is not None:
            # the elector stops the controllers (on_stopped_leading) before it releases the lease
            ok = self._elector.stop(timeout)
        else:
            ok = self._stop_controllers_within(deadline)
        if not ok:
            log.warning("manager %s: did not stop within %.1fs", self.identity, timeout)
        return ok

    def run_until(self, stop_event: threading.Event, timeout: float = 30.0) -> bool:
        """Start, block until ``stop_event`` is set, then :meth:`stop` (with ``timeout``)."""
        self.start()
        stop_event.wait()
        return self.stop(timeout)

    def _start_controllers(self) -> None:
        for controller in self.controllers:
            log.info("manager %s: starting %s", self.identity, controller.component)
            controller.start()

    def _stop_controllers(self) -> None:
        # losing the lease mid-run: a reconcile in progress gets the same grace as a graceful stop
        self._stop_controllers_within(self._stop_deadline or time.monotonic() + 30.0)

    def _stop_controllers_within(self, deadline: float) -> bool:
        ok = True
        for controller in self.controllers:
            left = max(0.0, deadline - time.monotonic())
            if not controller.stop(left):
                log.warning(
                    "manager %s: %s did not stop in time", self.identity, controller.component
                )
                ok = False
        return ok
