"""A loop on a daemon thread: the start and stop every long-running part of ``control`` shares.

:class:`DaemonLoop` owns the thread and the stop signal; a subclass (an :class:`Informer`, a
:class:`LeaderElector`) writes only :meth:`DaemonLoop._run`, which returns once ``_stop`` is set.
Started again after a stop, it runs on a fresh thread.
"""

from __future__ import annotations

import abc
import threading


class DaemonLoop(abc.ABC):
    """``_run`` on a daemon thread named ``thread_name``, between :meth:`start` and :meth:`stop`."""

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abc.abstractmethod
    def _run(self) -> None:
        """The loop: returns soon after ``self._stop`` is set."""

    def start(self) -> None:
        """Run the loop on a daemon thread (returns at once); no-op while it runs."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the loop to end and wait for it; False if it did not end within ``timeout``
        seconds. Called from the loop's own thread, it only asks."""
        self._stop.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
