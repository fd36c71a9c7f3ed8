"""Allocation: which devices on which node a ResourceClaim gets (``resource.k8s.io/v1``, DRA).

The room of :func:`~modelplane.scheduling.allocate`: the inventory (``_inventory``), the CEL
environment (``_cel``), a claim resolved into plans (``_plans``), the per-node search
(``_search``), the decision over nodes (``_allocator``), what is allocated now (``_state``), what a
decision returns (``_results``) and the scorers (``_scoring``). Each DRA constraint type is one
module of :mod:`.constraints`. Nothing here reads the store or knows about queues and gangs.

The modules are private: the public names are re-exported by :mod:`modelplane.scheduling`.
"""
