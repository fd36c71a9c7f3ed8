"""The verdicts: existence, typosquats, new packages, OSV advisories and licenses."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from modelplane.supplychain import (
    Dependency,
    DependencyGuard,
    IndexSnapshot,
    LicenseError,
    OsvDatabase,
    OsvError,
    allowed,
    worst,
)

from .conftest import TODAY


def write_osv(path: Path) -> Path:
    """A small OSV database in the shape OSV publishes: a zip of JSON advisories."""
    advisories = [
        {
            "id": "GHSA-0001",
            "aliases": ["CVE-2024-0001"],
            "summary": "Proxy credentials leak",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "Requests"},
                    "ranges": [
                        {
                            "type": "ECOSYSTEM",
                            "events": [{"introduced": "2.3.0"}, {"fixed": "2.32.0"}],
                        }
                    ],
                }
            ],
        },
        {
            "id": "PYSEC-0002",
            "summary": "Arbitrary code on load",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "pyyaml"},
                    "ranges": [
                        {
                            "type": "ECOSYSTEM",
                            "events": [{"introduced": "0"}, {"last_affected": "5.3.1"}],
                        }
                    ],
                    "versions": ["5.4b1"],
                }
            ],
        },
    ]
    with zipfile.ZipFile(path, "w") as archive:
        for doc in advisories:
            archive.writestr(f"{doc['id']}.json", json.dumps(doc))
    return path


def guard(snapshot: IndexSnapshot, **kwargs: object) -> DependencyGuard:
    return DependencyGuard(snapshot, today=TODAY, **kwargs)  # type: ignore[arg-type]


def test_real_popular_packages_are_allowed(snapshot: IndexSnapshot) -> None:
    g = guard(snapshot)
    for name in ("requests", "numpy", "urllib3", "pyyaml", "requests-toolbelt"):
        finding = g.check(Dependency(name, "PyPI"))
        assert (finding.verdict, finding.reasons) == ("allow", []), name


def test_a_name_absent_from_the_snapshot_is_blocked_saying_when_it_was_built(
    snapshot: IndexSnapshot,
) -> None:
    finding = guard(snapshot).check(Dependency("flask-gpt-helper", "PyPI"))
    assert finding.verdict == "block"
    assert finding.reasons[0].rule == "not-found"
    assert finding.reasons[0].message.startswith(
        "`flask-gpt-helper` does not exist in the index snapshot (built 2026-12-07)"
    )


def test_an_absent_typosquat_is_blocked_with_the_name_it_imitates(snapshot: IndexSnapshot) -> None:
    finding = guard(snapshot).check(Dependency("reqests", "PyPI"))
    assert finding.verdict == "block"
    assert "did you mean requests?" in finding.reasons[0].message


def test_a_registered_typosquat_is_blocked(snapshot: IndexSnapshot) -> None:
    finding = guard(snapshot).check(Dependency("reqeusts", "PyPI"))
    assert [r.rule for r in finding.reasons] == ["typosquat"]
    assert finding.verdict == "block"


def test_an_established_look_alike_is_a_warning_naming_both_ranks(snapshot: IndexSnapshot) -> None:
    # pandaz has a download rank of its own: a person decides whether it is meant
    finding = guard(snapshot).check(Dependency("pandaz", "PyPI"))
    assert finding.verdict == "warn"
    assert finding.reasons[0].message == (
        "`pandaz` is 1 edit from `pandas` (rank 37, 'z' for 's', keyboard neighbours); did you mean"
        " pandas?"
        " (`pandaz` has rank 13902)"
    )


def test_a_new_package_is_a_warning_until_it_is_old_enough(snapshot: IndexSnapshot) -> None:
    finding = guard(snapshot).check(Dependency("fresh-thing", "PyPI"))
    assert finding.verdict == "warn"
    assert "first released 2026-12-01, less than 30 days ago" in finding.reasons[0].message
    assert (
        guard(snapshot, min_age_days=3).check(Dependency("fresh-thing", "PyPI")).verdict == "allow"
    )


def test_osv_ranges_and_versions_are_evaluated_against_the_pinned_version(
    tmp_path: Path, snapshot: IndexSnapshot
) -> None:
    osv = OsvDatabase.load(write_osv(tmp_path / "all.zip"))
    g = guard(snapshot, osv=osv)
    old = g.check(Dependency("requests", "PyPI", "==2.31.0"))
    assert old.verdict == "block"
    assert old.reasons[0].message == (
        "`requests` 2.31.0 is affected by GHSA-0001 (CVE-2024-0001): Proxy credentials leak;"
        " upgrade to 2.32.0 or later"
    )
    assert g.check(Dependency("requests", "PyPI", "==2.32.0")).verdict == "allow"
    assert g.check(Dependency("requests", "PyPI", "==2.2.9")).verdict == "allow"
    assert g.check(Dependency("pyyaml", "PyPI", "==5.3.1")).verdict == "block"  # last_affected
    assert g.check(Dependency("pyyaml", "PyPI", "==5.4b1")).verdict == "block"  # listed
    assert g.check(Dependency("pyyaml", "PyPI", "==5.4")).verdict == "allow"
    unpinned = g.check(Dependency("requests", "PyPI", ">=2"))
    assert unpinned.verdict == "warn" and "pin a version" in unpinned.reasons[0].message


def test_an_osv_file_that_is_not_a_zip_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "all.zip").write_text("nope")
    with pytest.raises(OsvError, match="not an OSV database zip"):
        OsvDatabase.load(tmp_path / "all.zip")


@pytest.mark.parametrize(
    ("expression", "ok"),
    [
        ("MIT", True),
        ("mit", True),
        ("GPL-3.0-only", False),
        ("MIT OR GPL-3.0-only", True),
        ("MIT AND GPL-3.0-only", False),
        ("(Apache-2.0 OR GPL-2.0-only) AND MIT", True),
        ("GPL-2.0-only WITH Classpath-exception-2.0", False),
        ("Apache-2.0 WITH LLVM-exception", True),
    ],
)
def test_spdx_expressions_against_an_allow_list(expression: str, ok: bool) -> None:
    assert allowed(expression, frozenset({"mit", "apache-2.0"})) is ok


def test_a_broken_spdx_expression_is_an_error() -> None:
    for bad in ("MIT OR", "(MIT", "AND MIT", ""):
        with pytest.raises(LicenseError):
            allowed(bad, frozenset({"mit"}))


def test_licenses_block_when_not_allowed_and_warn_when_unknown(snapshot: IndexSnapshot) -> None:
    g = guard(snapshot, allow_licenses=frozenset({"mit", "apache-2.0", "bsd-3-clause"}))
    assert g.check(Dependency("python-dateutil", "PyPI")).verdict == "allow"
    gpl = g.check(Dependency("gpl-thing", "PyPI"))
    assert gpl.verdict == "block" and "licensed GPL-3.0-only" in gpl.reasons[0].message
    unknown = g.check(Dependency("yaml", "PyPI"))
    assert unknown.verdict == "warn"
    assert unknown.reasons[0].message == "`yaml`: license unknown, not checked"


def test_a_dependency_of_another_ecosystem_is_not_checked_and_says_so(
    snapshot: IndexSnapshot,
) -> None:
    finding = guard(snapshot).check(Dependency("express", "npm", "4.19.2"))
    assert finding.verdict == "warn"
    assert "the index snapshot is of PyPI, not npm" in finding.reasons[0].message
    assert worst([finding, guard(snapshot).check(Dependency("nope-x", "PyPI"))]) == "block"


def test_an_advisory_outside_the_osv_schema_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "all.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X-1.json", json.dumps({"id": "X-1", "affected": ["requests"]}))
    with pytest.raises(OsvError, match="not in the OSV schema"):
        OsvDatabase.load(path)
