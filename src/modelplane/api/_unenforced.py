"""Fields the schemas accept that nothing acts on yet, and the warning a write of one gets.

A field stays in the schema so that manifests written for what is coming keep applying; until a
subsystem implements it, its help text (``modelplane explain``) ends with :func:`note`, and
:func:`not_enforced` lists the ones an object sets, which the REST API returns as ``Warning``
headers (``299 - "spec.versions[0].license is not enforced yet: ..."``), as kube-apiserver warns of deprecated
fields. Remove an entry here when its field starts to work.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

LICENSE = "the license is recorded only; nothing checks or restricts it"
REMOTE_SOURCE = (
    "artifacts are not downloaded from remote sources (s3://, hf://, https://...): such a"
    " version is served only when its artifact was imported with `modelplane models import`"
    " (found by digest), and otherwise stays not Ready (reason UnsupportedSource)"
)
ONNX = "no worker loads onnx artifacts, so such a version cannot be served; use safetensors or gguf"

_GROUP = "modelplane.dev/"
_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def note(why: str) -> str:
    """The sentence a not-enforced field's description ends with."""
    return f"Not enforced yet: {why}."


def not_enforced(obj: Mapping[str, Any]) -> list[str]:
    """What ``obj`` sets that is not enforced yet: one message per field, naming its path.

    Works on the JSON form of an object (as written or as stored); anything it does not
    recognise gives no message.
    """
    api_version = obj.get("apiVersion")
    spec = obj.get("spec")
    if not isinstance(api_version, str) or not api_version.startswith(_GROUP):
        return []
    if not isinstance(spec, Mapping):
        return []
    kind = obj.get("kind")
    found: list[tuple[str, str]] = []
    if kind == "Model":
        versions = spec.get("versions")
        for i, version in enumerate(versions if isinstance(versions, list) else []):
            if isinstance(version, Mapping):
                found.extend((f"spec.versions[{i}].{f}", w) for f, w in _version_fields(version))
    return [f"{path} is not enforced yet: {why}" for path, why in found]


def _version_fields(version: Mapping[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    source = version.get("source")
    if (
        version.get("format") != "upstream"
        and isinstance(source, str)
        and _REMOTE.match(source)
        and not source.lower().startswith("file://")
    ):
        found.append(("source", REMOTE_SOURCE))
    if version.get("format") == "onnx":
        found.append(("format", ONNX))
    if version.get("license") is not None:
        found.append(("license", LICENSE))
    return found
