"""Modelplane: an AI-native platform.

Models, endpoints, inference graphs, agents and policies are declarative objects in the Kubernetes
shape, reconciled by controllers, scheduled onto heterogeneous accelerators described as in
Kubernetes Dynamic Resource Allocation. See ``docs/architecture.md`` for the map of packages.
"""

__version__ = "0.1.0"
