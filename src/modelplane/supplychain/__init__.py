"""Supply chain: checking the packages a project (or an agent) is about to depend on.

Owns the dependency guard (``modelplane audit deps``): reading dependency files, the offline
index snapshot (``modelplane audit snapshot``), typosquat detection, OSV advisories, SPDX license
allow-lists, and the JSON and SARIF reports; model artifacts signed and verified with
``model-signing`` (per-file SHA-256 manifests), pickles inspected without unpickling, and the
AI-BOM (CycloneDX 1.6) of Models, Endpoints and the serving code's Python dependencies; and the
agent-time guard (``guarded_install``): an install that pip runs only when nothing is blocked.
Must not touch: the store or other subsystems; it reads files (and the package index pip is
configured with, when asked) and answers verdicts; it starts pip only for ``guarded_install``.
"""

from modelplane.supplychain._bom import BomError, PythonPackage, python_dependencies
from modelplane.supplychain._bom import build as build_bom
from modelplane.supplychain._bom import validate as validate_bom
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
from modelplane.supplychain._install import (
    InstallGuard,
    InstallRefused,
    InstallResult,
    guarded_install,
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
from modelplane.supplychain._pickles import (
    SAFE_GLOBALS,
    PickleUnreadable,
    UnsafeGlobal,
    globals_of,
    unsafe_globals,
)
from modelplane.supplychain._report import to_document, to_sarif
from modelplane.supplychain._signing import (
    FileMismatch,
    SignatureError,
    file_manifest,
    generate_key,
    sign,
    signature_path,
    signed_manifest,
    verify,
)
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
    "SAFE_GLOBALS",
    "WARN",
    "Advisory",
    "BomError",
    "Dependency",
    "DependencyGuard",
    "FileMismatch",
    "Finding",
    "IndexSnapshot",
    "InstallGuard",
    "InstallRefused",
    "InstallResult",
    "LicenseError",
    "Lookup",
    "ManifestError",
    "OnlineIndex",
    "OsvDatabase",
    "OsvError",
    "Package",
    "PackageIndexError",
    "PickleUnreadable",
    "PythonPackage",
    "Reason",
    "Release",
    "Rule",
    "SignatureError",
    "SnapshotError",
    "Suspicion",
    "TyposquatDetector",
    "UnsafeGlobal",
    "allowed",
    "build",
    "build_bom",
    "configured_index_url",
    "file_manifest",
    "fold",
    "generate_key",
    "globals_of",
    "guarded_install",
    "normalize",
    "osa_distance",
    "package_key",
    "python_dependencies",
    "read",
    "read_name_list",
    "read_names",
    "shown",
    "sign",
    "signature_path",
    "signed_manifest",
    "to_document",
    "to_sarif",
    "unsafe_globals",
    "validate_bom",
    "verify",
    "worst",
]
