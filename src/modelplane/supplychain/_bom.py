"""The AI-BOM: Models, Endpoints and the serving code's Python dependencies as CycloneDX 1.6 JSON.

Built with ``cyclonedx-python-lib`` from objects as the API returns them (this package does not read
the store):

* each Model version with an artifact is a ``machine-learning-model`` component (``bom-ref``
  ``model:<ns>/<model>@<version>``): its digest as a SHA-256 hash, its ``license`` (an SPDX id or
  expression, else a name), its source and format as properties, and a ``modelCard`` whose
  ``modelParameters.task`` is the Model's task (the library has no model-card class yet, so the card
  is added to the JSON it writes, and the whole document is validated against the 1.6 schema);
* each Endpoint is an ``application`` component that depends on the versions it serves (its
  ``traffic`` targets with weight above 0, else the Model's last version) and on the serving code;
* the serving code is the ``modelplane`` application, depending on every Python distribution it
  requires (the transitive closure of the installed distribution's metadata, extras left out),
  each a ``library`` with its version, ``pkg:pypi`` purl and license from its metadata;
* with an OSV database (:class:`~modelplane.supplychain.OsvDatabase`), a ``vulnerabilities`` entry
  for each advisory affecting an installed version, naming the library it affects, its aliases
  and the fixed versions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelplane.supplychain._osv import OsvDatabase

JSON = dict[str, Any]

#: the distribution whose requirements are the serving code's dependencies
SERVING_DISTRIBUTION = "modelplane"
_CLASSIFIER = "License :: OSI Approved :: "


class BomError(Exception):
    """A BOM that cannot be built or does not validate; the message says what."""


@dataclass(frozen=True, slots=True)
class PythonPackage:
    """An installed distribution: name, version and license as its metadata gives them."""

    name: str
    version: str
    license: str = ""


def python_dependencies(distribution: str = SERVING_DISTRIBUTION) -> list[PythonPackage]:
    """Every distribution ``distribution`` requires (transitively, markers evaluated, extras
    left out) that is installed, sorted by name."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    seen: dict[str, PythonPackage] = {}
    todo = [distribution]
    while todo:
        try:
            dist = metadata.distribution(todo.pop())
        except metadata.PackageNotFoundError:
            continue
        for line in dist.requires or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            key = canonicalize_name(req.name)
            if key in seen or key == canonicalize_name(distribution):
                continue
            try:
                found = metadata.distribution(req.name)
            except metadata.PackageNotFoundError:
                continue
            seen[key] = PythonPackage(key, found.version, _license_of(found))
            todo.append(req.name)
    return sorted(seen.values(), key=lambda p: p.name)


def _license_of(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    expression = meta["License-Expression"]
    if expression:
        return str(expression).strip()
    text = str(meta["License"] or "").strip()
    if text and "\n" not in text and len(text) <= 80 and text.upper() != "UNKNOWN":
        return text
    for classifier in meta.get_all("Classifier") or []:
        if str(classifier).startswith(_CLASSIFIER):
            return str(classifier).removeprefix(_CLASSIFIER)
    return ""


def build(
    models: Sequence[Mapping[str, Any]],
    endpoints: Sequence[Mapping[str, Any]],
    packages: Sequence[PythonPackage],
    *,
    serving_version: str = "",
    osv: OsvDatabase | None = None,
) -> str:
    """The CycloneDX 1.6 JSON document of ``models`` (their artifact versions), ``endpoints``
    and the serving code's ``packages``, validated against the 1.6 schema."""
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6

    bom = Bom()
    serving = Component(
        type=ComponentType.APPLICATION,
        name=SERVING_DISTRIBUTION,
        version=serving_version or None,
        bom_ref="serving:modelplane",
    )
    bom.metadata.component = serving
    libraries = [_library(p) for p in packages]
    for library in libraries:
        bom.components.add(library)
    bom.register_dependency(serving, libraries)
    if osv is not None:
        for package, library in zip(packages, libraries, strict=True):
            for vulnerability in _vulnerabilities(osv, package, library):
                bom.vulnerabilities.add(vulnerability)
    cards: dict[str, JSON] = {}
    versions: dict[str, Component] = {}
    for model in models:
        for ref, component, card in _model_components(model):
            bom.components.add(component)
            versions[ref] = component
            cards[ref] = card
    for endpoint in endpoints:
        app = _endpoint_component(endpoint)
        bom.components.add(app)
        served = [versions[r] for r in _served_refs(endpoint, models) if r in versions]
        bom.register_dependency(app, [*served, serving])
    document = json.loads(JsonV1Dot6(bom).output_as_string())
    for component in document.get("components", []):
        found = cards.get(str(component.get("bom-ref")))
        if found is not None:
            component["modelCard"] = found
    text = json.dumps(document, indent=2, sort_keys=False)
    problems = validate(text)
    if problems:
        raise BomError(f"the BOM does not validate against CycloneDX 1.6: {problems}")
    return text


def validate(text: str) -> str | None:
    """None when ``text`` is a valid CycloneDX 1.6 JSON document, else the validator's message."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    return None if error is None else str(error)


def _library(package: PythonPackage) -> Any:
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    return Component(
        type=ComponentType.LIBRARY,
        name=package.name,
        version=package.version,
        bom_ref=f"pypi:{package.name}@{package.version}",
        purl=PackageURL(type="pypi", name=package.name, version=package.version),
        licenses=_licenses(package.license),
    )


def _vulnerabilities(osv: OsvDatabase, package: PythonPackage, library: Any) -> list[Any]:
    from cyclonedx.model.vulnerability import BomTarget, Vulnerability, VulnerabilitySource

    found = []
    for advisory in osv.affecting("PyPI", package.name, package.version):
        fixed = advisory.fixed_in()
        found.append(
            Vulnerability(
                bom_ref=f"vuln:{advisory.id}:{package.name}@{package.version}",
                id=advisory.id,
                source=VulnerabilitySource(name="OSV"),
                description=advisory.summary or None,
                recommendation=f"upgrade {package.name} to {' or '.join(fixed)}" if fixed else None,
                affects=[BomTarget(ref=str(library.bom_ref))],
                properties=_alias_properties(advisory.aliases),
            )
        )
    return found


def _alias_properties(aliases: Sequence[str]) -> list[Any]:
    from cyclonedx.model import Property

    return [Property(name="modelplane:alias", value=a) for a in aliases]


def _licenses(expression: str) -> list[Any]:
    from cyclonedx.contrib.license.factories import LicenseFactory

    if not expression:
        return []
    return [LicenseFactory().make_from_string(expression)]


def _model_components(model: Mapping[str, Any]) -> Iterable[tuple[str, Any, JSON]]:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.component import Component, ComponentType

    meta = model.get("metadata") or {}
    spec = model.get("spec") or {}
    task = str(spec.get("task") or "chat")
    for version in spec.get("versions") or []:
        if not isinstance(version, dict) or version.get("format") == "upstream":
            continue
        ref = _model_ref(meta, str(version.get("name")))
        digest = str(version.get("digest") or "")
        properties = [
            Property(name=f"modelplane:{key}", value=str(version[key]))
            for key in ("format", "source", "signature")
            if version.get(key)
        ]
        component = Component(
            type=ComponentType.MACHINE_LEARNING_MODEL,
            name=str(meta.get("name")),
            version=str(version.get("name")),
            group=str(meta.get("namespace") or "default"),
            bom_ref=ref,
            hashes=_hashes(digest, HashType, HashAlgorithm),
            licenses=_licenses(str(version.get("license") or "")),
            properties=properties,
        )
        card = {"modelParameters": {"task": task, "inputs": [{"format": "text"}]}}
        card["modelParameters"]["outputs"] = [
            {"format": "embedding" if task == "embedding" else "text"}
        ]
        yield ref, component, card


def _hashes(digest: str, hash_type: Any, algorithm: Any) -> list[Any]:
    hex_digest = digest.removeprefix("sha256:")
    if re.fullmatch(r"[0-9a-f]{64}", hex_digest) is None:
        return []
    return [hash_type(alg=algorithm.SHA_256, content=hex_digest)]


def _endpoint_component(endpoint: Mapping[str, Any]) -> Any:
    from cyclonedx.model.component import Component, ComponentType

    meta = endpoint.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name"))
    return Component(
        type=ComponentType.APPLICATION,
        name=name,
        group=namespace,
        bom_ref=f"endpoint:{namespace}/{name}",
        description=f"Endpoint {namespace}/{name} serving Model {(endpoint.get('spec') or {}).get('model')}",
    )


def _served_refs(endpoint: Mapping[str, Any], models: Sequence[Mapping[str, Any]]) -> list[str]:
    """The model versions ``endpoint`` serves: traffic targets with weight, else the last."""
    meta = endpoint.get("metadata") or {}
    spec = endpoint.get("spec") or {}
    namespace = str(meta.get("namespace") or "default")
    model = next(
        (
            m
            for m in models
            if (m.get("metadata") or {}).get("name") == spec.get("model")
            and str((m.get("metadata") or {}).get("namespace") or "default") == namespace
        ),
        None,
    )
    if model is None:
        return []
    traffic = [t for t in spec.get("traffic") or [] if int(t.get("weight") or 0) > 0]
    names = [str(t.get("version")) for t in traffic]
    if not names:
        versions = (model.get("spec") or {}).get("versions") or []
        names = [str(versions[-1].get("name"))] if versions else []
    return [_model_ref(model.get("metadata") or {}, n) for n in names]


def _model_ref(meta: Mapping[str, Any], version: str) -> str:
    return f"model:{meta.get('namespace') or 'default'}/{meta.get('name')}@{version}"
