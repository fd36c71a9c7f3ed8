"""Batch Jobs: a Job's replicas run together as real processes, in one sandbox, all or nothing.

Owns running the Jobs placed on a node (:class:`JobRunner`, a ``platform.services`` entry beside
the node agent): it starts a Job's replicas once the scheduler has allocated every replica's
claim, with the rendezvous variables torchrun sets, inside the process sandbox
(:mod:`modelplane.sandbox`), from the Job's uploaded bundle; it restarts the gang per
``restartPolicy`` with exponential backoff up to ``backoffLimit``, and writes the Job's
``Running``, ``Complete`` and ``Failed`` conditions. It must not place anything (the scheduler
does, and writes ``Admitted``) nor touch other kinds' status.
"""

from modelplane.jobs._runner import MASTER_PORT, JobRunner, platform_packages

__all__ = ["MASTER_PORT", "JobRunner", "platform_packages"]
