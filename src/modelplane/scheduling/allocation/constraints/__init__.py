"""DRA constraints (``spec.devices.constraints[]``): one module per constraint type.

A constraint type is a :class:`~._base.Constraint` subclass named by its API field
(``matchAttribute`` in ``_match_attribute.py``, ``distinctAttribute`` in
``_distinct_attribute.py``), with a :class:`~._base.Tracker` that says which devices the
allocator's search may still add under it. ``_registry.py`` lists the types and parses a claim's
constraint into one of them. A new constraint type is one new module here, one line in the
registry and its field in ``api/_dra.py``; the allocator does not change.

The modules are private: the allocator and :mod:`modelplane.scheduling` use the registry.
"""
