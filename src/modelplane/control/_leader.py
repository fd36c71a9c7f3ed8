"""Leader election on a store lease, as client-go's ``leaderelection``.

Every candidate tries to take the lease every ``retry_period`` seconds; the holder renews it at
the same pace for ``lease_duration`` seconds at a time. Safety comes from the timings:

* a holder that could not renew for ``renew_deadline`` seconds (the store unreachable, say) stops
  leading by itself, and ``renew_deadline < lease_duration``, so it has stepped down before its lease
  lapses and someone else can take it;
* a holder whose renewal is refused (someone else holds the lease) stops leading at once.

``on_started_leading`` runs when this candidate becomes leader, ``on_stopped_leading`` when it stops
(lost lease or :meth:`LeaderElector.stop`), always in that alternation and on the elector's thread.
A graceful :meth:`LeaderElector.stop` calls ``on_stopped_leading`` *first* and then releases the
lease, so another candidate takes over at its next try instead of waiting for the lease to lapse,
and the two never lead at the same time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from modelplane.control._loop import DaemonLoop

if TYPE_CHECKING:
    from modelplane.store import Store

from modelplane.control._metrics import LEADER

log = logging.getLogger("modelplane.control.leader")


class LeaderElector(DaemonLoop):
    """Campaigns for lease ``lease_name`` as ``identity`` on ``store`` (a ``modelplane.store.Store``).

    Timings are seconds; they must satisfy ``lease_duration > renew_deadline > retry_period > 0``.
    """

    def __init__(
        self,
        store: Store,
        lease_name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        *,
        on_started_leading: Callable[[], None] | None = None,
        on_stopped_leading: Callable[[], None] | None = None,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError(
                "leader election needs lease_duration > renew_deadline > retry_period > 0 (got"
                f" {lease_duration}, {renew_deadline}, {retry_period}); a holder must give up"
                " before its lease lapses, and retry several times before giving up"
            )
        if not identity:
            raise ValueError("leader election needs a non-empty identity (host name and pid, say)")
        self.store = store
        self.lease_name = lease_name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self._leading = threading.Event()
        super().__init__(f"leader-{lease_name}")

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def wait_for_leadership(self, timeout: float | None = None) -> bool:
        """Block until this candidate leads or ``timeout`` seconds pass; returns whether it leads."""
        return self._leading.wait(timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Stop campaigning; if leading, run ``on_stopped_leading`` and release the lease.

        Returns False if that did not finish within ``timeout`` seconds.
        """
        return super().stop(timeout)

    def _run(self) -> None:
        last_renewal = 0.0
        try:
            while not self._stop.is_set():
                attempt_started = time.monotonic()
                held = self._try_acquire()
                if held:
                    # measured from before the call: the store's clock started the lease no earlier
                    last_renewal = attempt_started
                    if not self._leading.is_set():
                        log.info("%s: became leader of %s", self.identity, self.lease_name)
                        self._leading.set()
                        LEADER.labels(self.lease_name).set(1)
                        self._callback(self.on_started_leading, "on_started_leading")
                elif self._leading.is_set() and (
                    held is False or time.monotonic() - last_renewal >= self.renew_deadline
                ):
                    why = "another holder took it" if held is False else "could not renew it"
                    log.warning("%s: lost lease %s (%s)", self.identity, self.lease_name, why)
                    self._step_down()
                self._stop.wait(self.retry_period)
        finally:
            if self._leading.is_set():
                self._step_down()
                self._release()

    def _try_acquire(self) -> bool | None:
        """True: we hold the lease; False: someone else does; None: the store failed."""
        try:
            lease = self.store.acquire_lease(self.lease_name, self.identity, self.lease_duration)
        except Exception as exc:
            log.warning(
                "%s: could not reach the store for lease %s: %s: %s",
                self.identity,
                self.lease_name,
                type(exc).__name__,
                exc,
            )
            return None
        return lease is not None

    def _step_down(self) -> None:
        self._leading.clear()
        LEADER.labels(self.lease_name).set(0)
        self._callback(self.on_stopped_leading, "on_stopped_leading")

    def _release(self) -> None:
        try:
            self.store.release_lease(self.lease_name, self.identity)
            log.info("%s: released lease %s", self.identity, self.lease_name)
        except Exception as exc:
            # not fatal: the lease lapses after lease_duration and someone else takes it then
            log.warning(
                "%s: could not release lease %s (%s: %s); it lapses in %.0fs",
                self.identity,
                self.lease_name,
                type(exc).__name__,
                exc,
                self.lease_duration,
            )

    def _callback(self, fn: Callable[[], None] | None, what: str) -> None:
        if fn is None:
            return
        try:
            fn()
        except Exception:
            log.exception("%s: %s failed", self.identity, what)
