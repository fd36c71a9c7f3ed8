"""Supply chain: checking the packages a project (or an agent) is about to depend on.

Owns the dependency guard (``modelplane audit deps``): reading dependency files, the offline
index snapshot (``modelplane audit snapshot``), typosquat detection, OSV advisories, SPDX license
allow-lists, and the JSON and SARIF reports. Model and dataset signing and the AI-BOM belong
here too and are not built yet.
Must not touch: the store or other subsystems; it reads files (and the package index pip is
configured with, when asked) and answers verdicts.
"""

from modelplane.supplychain._guard import (
    ALLOW,
    BLOCK,
    RULES,
    WARN,
    DependencyGuard,
    Finding,
    Lookup,
    Reason,
    Rule,
    worst,
)
from modelplane.supplychain._licenses import LicenseError, allowed
from modelplane.supplychain._manifests import Dependency, ManifestError, read, read_names
from modelplane.supplychain._names import fold, normalize, package_key
from modelplane.supplychain._online import (
    OnlineIndex,
    PackageIndexError,
    configured_index_url,
    shown,
)
from modelplane.supplychain._osv import Advisory, OsvDatabase, OsvError
from modelplane.supplychain._report import to_document, to_sarif
from modelplane.supplychain._snapshot import (
    IndexSnapshot,
    Package,
    Release,
    SnapshotError,
    build,
    read_name_list,
)
from modelplane.supplychain._typosquat import Suspicion, TyposquatDetector, osa_distance

__all__ = [
    "ALLOW",
    "BLOCK",
    "RULES",
    "WARN",
    "Advisory",
    "Dependency",
    "DependencyGuard",
    "Finding",
    "IndexSnapshot",
    "LicenseError",
    "Lookup",
    "ManifestError",
    "OnlineIndex",
    "OsvDatabase",
    "OsvError",
    "Package",
    "PackageIndexError",
    "Reason",
    "Release",
    "Rule",
    "SnapshotError",
    "Suspicion",
    "TyposquatDetector",
    "allowed",
    "build",
    "configured_index_url",
    "fold",
    "normalize",
    "osa_distance",
    "package_key",
    "read",
    "read_name_list",
    "read_names",
    "shown",
    "to_document",
    "to_sarif",
    "worst",
]
