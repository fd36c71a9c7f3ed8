"""Kubernetes as the place our objects run: the operator that reconciles our custom resources.

Owns: ``modelplane operator`` — the client of a cluster's API (kubeconfig or in-cluster service
account), the reconcile of ``Endpoint`` custom resources into the Deployments, Services and
ResourceClaimTemplates that ``render kubernetes`` emits (owned, pruned, status written back), and
the validating admission webhook that holds our kinds to the API's own validation.
Must not touch: the store or our controllers (a cluster is the store here), nor how objects are
rendered (``modelplane.deploy`` owns that; this package applies what it renders).
"""

from modelplane.kube._client import (
    CLAIM_TEMPLATES,
    DEPLOYMENTS,
    ENDPOINTS,
    MODELS,
    SERVICES,
    KubeClient,
    KubeConfig,
    KubeError,
)
from modelplane.kube._operator import Operator
from modelplane.kube._webhook import review

__all__ = [
    "CLAIM_TEMPLATES",
    "DEPLOYMENTS",
    "ENDPOINTS",
    "MODELS",
    "SERVICES",
    "KubeClient",
    "KubeConfig",
    "KubeError",
    "Operator",
    "review",
]
