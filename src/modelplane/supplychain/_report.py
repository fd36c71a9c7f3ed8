"""Findings as programs read them: JSON, and SARIF 2.1.0 for code-scanning tools.

SARIF: one run whose ``tool.driver.rules`` are the guard's rules; one result per reason, with
``ruleId``, ``level`` (block is ``error``, warn is ``warning``) and a location at the file and
line that named the dependency.
"""

from __future__ import annotations

from typing import Any

from modelplane.supplychain._guard import RULES, Finding, worst

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVELS = {"block": "error", "warn": "warning"}


def to_document(findings: list[Finding], *, snapshot_built: str) -> dict[str, Any]:
    """The ``-o json`` document: the overall verdict and one entry per dependency."""
    return {
        "verdict": worst(findings),
        "snapshotBuilt": snapshot_built,
        "dependencies": [_entry(f) for f in findings],
    }


def _entry(finding: Finding) -> dict[str, Any]:
    dep = finding.dependency
    pkg = finding.package
    return {
        "name": dep.name,
        "ecosystem": dep.ecosystem,
        "specifier": dep.specifier,
        "file": dep.file,
        "line": dep.line,
        "verdict": finding.verdict,
        "rank": pkg.rank if pkg else None,
        "firstRelease": str(pkg.released) if pkg and pkg.released else None,
        "license": pkg.license if pkg else None,
        "reasons": [
            {"rule": r.rule, "ruleId": RULES[r.rule].id, "level": r.level, "message": r.message}
            for r in finding.reasons
        ],
    }


def to_sarif(findings: list[Finding], *, version: str) -> dict[str, Any]:
    """A SARIF 2.1.0 log of the findings (warn and block; allowed dependencies have none)."""
    rules = list(RULES.values())
    index = {r.name: i for i, r in enumerate(rules)}
    results = [
        {
            "ruleId": RULES[reason.rule].id,
            "ruleIndex": index[reason.rule],
            "level": _LEVELS[reason.level],
            "message": {"text": reason.message},
            "locations": [_location(f)],
        }
        for f in findings
        for reason in f.reasons
    ]
    driver = {
        "name": "modelplane audit deps",
        "version": version,
        "rules": [
            {
                "id": r.id,
                "name": r.name,
                "shortDescription": {"text": r.description},
            }
            for r in rules
        ],
    }
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "results": results}],
    }


def _location(finding: Finding) -> dict[str, Any]:
    dep = finding.dependency
    physical: dict[str, Any] = {"artifactLocation": {"uri": dep.file}}
    if dep.line:
        physical["region"] = {"startLine": dep.line}
    return {"physicalLocation": physical}
