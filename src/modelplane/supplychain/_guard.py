"""The dependency guard: one verdict per dependency, allow, warn or block, with its reasons.

Checks, in order: does the name exist (the index snapshot, or the live index with ``--online``);
does it imitate a popular name (:mod:`._typosquat`); is it new; do known advisories affect its
pinned version (OSV); is its license allowed. Every reason says what to do about it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from modelplane.supplychain._licenses import LicenseError, allowed
from modelplane.supplychain._manifests import Dependency
from modelplane.supplychain._osv import Advisory, OsvDatabase
from modelplane.supplychain._snapshot import IndexSnapshot, Package
from modelplane.supplychain._typosquat import Suspicion, TyposquatDetector

ALLOW, WARN, BLOCK = "allow", "warn", "block"
_SEVERITY = {ALLOW: 0, WARN: 1, BLOCK: 2}


@dataclass(frozen=True)
class Rule:
    """One kind of finding (a SARIF rule)."""

    id: str
    name: str
    description: str


RULES = {
    r.name: r
    for r in (
        Rule("MPSC001", "not-found", "The package does not exist in the package index."),
        Rule("MPSC002", "typosquat", "The name imitates a far more popular package."),
        Rule("MPSC003", "new-package", "The package was first released only recently."),
        Rule("MPSC004", "vulnerable", "Known advisories affect the version used."),
        Rule("MPSC005", "license-not-allowed", "The license is not on the allow-list."),
        Rule("MPSC006", "license-unknown", "The license is not known, so it was not checked."),
        Rule("MPSC007", "not-checked", "The package could not be checked against the index."),
    )
}


@dataclass(frozen=True)
class Reason:
    rule: str  # a key of RULES
    level: str  # warn or block
    message: str


@dataclass
class Finding:
    """The verdict on one dependency and why."""

    dependency: Dependency
    reasons: list[Reason] = field(default_factory=list)
    package: Package | None = None

    @property
    def verdict(self) -> str:
        return max((r.level for r in self.reasons), key=_SEVERITY.__getitem__, default=ALLOW)


def worst(findings: list[Finding]) -> str:
    """The most severe verdict of all (allow when there are none)."""
    return max((f.verdict for f in findings), key=_SEVERITY.__getitem__, default=ALLOW)


#: how a dependency's existence is answered: the snapshot, or the live index (``--online``)
Lookup = Callable[[str], Package | None]


@dataclass
class DependencyGuard:
    """Checks dependencies against a snapshot, optionally OSV advisories and a license list."""

    snapshot: IndexSnapshot
    osv: OsvDatabase | None = None
    allow_licenses: frozenset[str] | None = None  # lower case; None: licenses not checked
    min_age_days: int = 30
    today: dt.date = field(default_factory=dt.date.today)
    lookup: Lookup | None = None  # None: the snapshot answers
    detector: TyposquatDetector | None = None

    def __post_init__(self) -> None:
        if self.detector is None:
            self.detector = TyposquatDetector(self.snapshot)

    def check(self, dep: Dependency) -> Finding:
        if dep.ecosystem != self.snapshot.ecosystem:
            why = f"the index snapshot is of {self.snapshot.ecosystem}, not {dep.ecosystem}"
            return Finding(dep, [Reason("not-checked", WARN, f"`{dep.name}` not checked: {why}")])
        # the live index speaks PEP 691, so it answers for PyPI names only
        online = self.lookup is not None and dep.ecosystem == "PyPI"
        package = (self.lookup if online and self.lookup else self.snapshot.get)(dep.name)
        finding = Finding(dep, package=package)
        assert self.detector is not None
        squat = self.detector.check(dep.name, exists=package is not None)
        if package is None:
            finding.reasons.append(self._not_found(dep, squat))
            return finding
        if squat is not None:
            finding.reasons.append(_squat_reason(squat, package))
        finding.reasons += self._age(dep, package)
        finding.reasons += self._vulnerabilities(dep)
        finding.reasons += self._license(dep, package)
        return finding

    def _not_found(self, dep: Dependency, squat: Suspicion | None) -> Reason:
        where = (
            "the package index"
            if self.lookup is not None and dep.ecosystem == "PyPI"
            else f"the index snapshot (built {self.snapshot.built})"
        )
        message = f"`{dep.name}` does not exist in {where}"
        if squat is not None:
            return Reason("typosquat", BLOCK, f"{message}; {squat.message}")
        return Reason("not-found", BLOCK, f"{message}; check the name, or remove it")

    def _age(self, dep: Dependency, package: Package) -> list[Reason]:
        if package.released is None:
            return []
        age = (self.today - package.released.last_day()).days
        if age >= self.min_age_days:
            return []
        return [
            Reason(
                "new-package",
                WARN,
                f"`{dep.name}` was first released {package.released}, less than"
                f" {self.min_age_days} days ago; make sure it is the package you mean",
            )
        ]

    def _vulnerabilities(self, dep: Dependency) -> list[Reason]:
        if self.osv is None:
            return []
        version = dep.pinned
        if version is None:
            known = self.osv.advisories(dep.ecosystem, dep.name)
            if not known:
                return []
            ids = ", ".join(a.id for a in known[:3]) + (" ..." if len(known) > 3 else "")
            return [
                Reason(
                    "vulnerable",
                    WARN,
                    f"`{dep.name}` is not pinned and {len(known)} advisories ({ids}) affect some"
                    " versions; pin a version (==) to check it",
                )
            ]
        return [
            Reason("vulnerable", BLOCK, _advisory_message(dep.name, version, a))
            for a in self.osv.affecting(dep.ecosystem, dep.name, version)
        ]

    def _license(self, dep: Dependency, package: Package) -> list[Reason]:
        if self.allow_licenses is None:
            return []
        if package.license is None:
            return [Reason("license-unknown", WARN, f"`{dep.name}`: license unknown, not checked")]
        try:
            ok = allowed(package.license, self.allow_licenses)
        except LicenseError as exc:
            return [Reason("license-unknown", WARN, f"`{dep.name}`: {exc}")]
        if ok:
            return []
        return [
            Reason(
                "license-not-allowed",
                BLOCK,
                f"`{dep.name}` is licensed {package.license}, which the allow-list"
                f" ({', '.join(sorted(self.allow_licenses))}) does not cover",
            )
        ]


def _squat_reason(squat: Suspicion, package: Package) -> Reason:
    """Block an unranked look-alike; an established package (it has a download rank) beside a
    far more popular one is as often an honest neighbour as a squat, so a person decides."""
    if package.rank is None and squat.distance <= 1:
        return Reason("typosquat", BLOCK, squat.message)
    if package.rank is None:
        return Reason("typosquat", WARN, squat.message)
    return Reason("typosquat", WARN, f"{squat.message} (`{package.name}` has rank {package.rank})")


def _advisory_message(name: str, version: str, advisory: Advisory) -> str:
    fixed = advisory.fixed_in()
    fix = f"; upgrade to {', '.join(fixed)} or later" if fixed else "; no fixed version known"
    alias = f" ({', '.join(advisory.aliases)})" if advisory.aliases else ""
    return f"`{name}` {version} is affected by {advisory.id}{alias}: {advisory.summary}{fix}"
