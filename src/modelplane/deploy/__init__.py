"""Deploying to Kubernetes: the platform and its Endpoints rendered as Kubernetes objects.

Owns: CustomResourceDefinitions generated from our kinds' schemas (structural, with printer
columns and the status subresource), the components' Deployments, DaemonSet, Services,
ServiceAccounts and RBAC, each Endpoint's Deployments, Services and ``resource.k8s.io/v1``
ResourceClaimTemplate, and the Helm chart of the same objects (``modelplane render kubernetes``).
Must not touch: the store, the controllers or a cluster; it turns manifests into manifests and
reads nothing but the schemas of ``modelplane.api``.
"""

from modelplane.deploy._crd import crd_kinds, custom_resource_definition, json_path
from modelplane.deploy._endpoints import endpoint_objects
from modelplane.deploy._helm import IMAGE_MARK, NAMESPACE_MARK, chart, write_chart
from modelplane.deploy._render import DEFAULT_NAMESPACE, Rendered, render, to_yaml, write
from modelplane.deploy._structural import structural, structural_problems

__all__ = [
    "DEFAULT_NAMESPACE",
    "IMAGE_MARK",
    "NAMESPACE_MARK",
    "Rendered",
    "chart",
    "crd_kinds",
    "custom_resource_definition",
    "endpoint_objects",
    "json_path",
    "render",
    "structural",
    "structural_problems",
    "to_yaml",
    "write",
    "write_chart",
]
