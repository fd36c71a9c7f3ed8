"""Workloads: Queues, gangs, admission and preemption on top of the allocator.

Queues with quotas and cohorts (``_queues``), Jobs placed as gangs (``_gang``), who may be evicted
(``_preemption``), the decision that admits a workload (``_admission``), stored claims and Jobs
turned into workloads (``_workloads``) and the part of the claim controller that admits them
(``_admitting``). It uses :mod:`..allocation` and never the store directly, except ``_admitting``,
which runs inside the ResourceClaim controller.

The modules are private: the public names are re-exported by :mod:`modelplane.scheduling`.
"""
