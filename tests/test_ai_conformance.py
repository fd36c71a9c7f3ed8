"""``docs/ai-conformance.yaml``: the CNCF Kubernetes AI Conformance checklist (v1.37), filled in.

The file keeps the checklist's own format (``metadata``, ``spec.<category>[] {id, description,
level, status, evidence, notes}``). These tests hold it honest: every requirement of v1.37 is there
at its level, each status is one the checklist knows, and every piece of evidence it names exists —
a test function (``tests/...py::test_name``), a benchmark file, or a heading of our docs
(``docs/x.md#anchor``). A requirement not implemented says why in ``notes``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHECKLIST = ROOT / "docs" / "ai-conformance.yaml"

#: the requirements of the v1.37 checklist (cncf/k8s-ai-conformance, docs/AIConformance-1.37.yaml)
REQUIREMENTS: dict[str, dict[str, str]] = {
    "accelerators": {
        "driver_runtime_management": "SHOULD",
        "gpu_sharing": "SHOULD",
        "virtualized_accelerator": "SHOULD",
    },
    "networking": {
        "ai_inference": "MUST",
        "advanced_inference_ingress": "SHOULD",
        "high_performance_networking": "SHOULD",
        "disaggregated_inference": "SHOULD",
    },
    "schedulingOrchestration": {
        "gang_scheduling": "MUST",
        "cluster_autoscaling": "MUST",
        "pod_autoscaling": "MUST",
    },
    "observability": {"accelerator_metrics": "MUST", "ai_service_metrics": "MUST"},
    "security": {"secure_accelerator_access": "MUST", "workload_sandboxing": "SHOULD"},
    "operator": {"robust_controller": "MUST"},
}

STATUSES = {"Implemented", "Partially Implemented", "Not Implemented", "N/A"}


def _checklist() -> dict[str, object]:
    loaded = yaml.safe_load(CHECKLIST.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _items() -> list[tuple[str, dict[str, object]]]:
    spec = _checklist()["spec"]
    assert isinstance(spec, dict)
    return [(category, item) for category, items in spec.items() for item in items]


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    out = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            title = re.sub(r"[^\w\- ]", "", title)
            out.add(title.replace(" ", "-"))
    return out


def _missing(evidence: str) -> str | None:
    """Why ``evidence`` names nothing that exists, or None when it does."""
    target, _, name = evidence.replace("::", "#", 1).partition("#")
    path = ROOT / target
    if target.startswith(("/", "http")) or ".." in target or not path.is_file():
        return f"{target} is not a file of this repository"
    if not name:
        return None
    if path.suffix == ".py" and name not in _functions(path):
        return f"{target} has no function {name}"
    if path.suffix == ".md" and name not in _anchors(path):
        return f"{target} has no heading #{name}"
    return None


def test_the_checklist_is_v1_37_with_every_requirement_at_its_level() -> None:
    checklist = _checklist()
    assert checklist["metadata"]["kubernetesVersion"] == "v1.37"  # type: ignore[index]
    found = {(category, item["id"]): item["level"] for category, item in _items()}
    expected = {
        (category, rid): level
        for category, requirements in REQUIREMENTS.items()
        for rid, level in requirements.items()
    }
    assert found == expected


@pytest.mark.parametrize("category,item", _items(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_status_is_known_and_its_evidence_exists(
    category: str, item: dict[str, object]
) -> None:
    assert item["status"] in STATUSES, f"{item['id']}: status {item['status']!r}"
    evidence = item["evidence"]
    assert isinstance(evidence, list)
    problems = [why for e in evidence if (why := _missing(str(e)))]
    assert not problems, f"{item['id']}: {problems}"
    if item["status"] == "Implemented":
        assert any("::" in str(e) for e in evidence), (
            f"{item['id']}: implemented, but no test named"
        )
    else:
        assert str(item["notes"]).strip(), (
            f"{item['id']}: {item['status']}, and notes do not say why"
        )


def test_an_evidence_that_names_nothing_is_caught() -> None:
    assert _missing("tests/test_ai_conformance.py::test_no_such_test") is not None
    assert _missing("docs/nothing-here.md") is not None
    assert _missing("https://example.com/evidence") is not None
    assert (
        _missing("tests/test_ai_conformance.py::test_an_evidence_that_names_nothing_is_caught")
        is None
    )
