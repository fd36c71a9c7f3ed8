"""A Job's template, restart policy and backoff limit: defaults, and 422s naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from modelplane.api import validate
from modelplane.api.errors import Invalid

DIGEST = "sha256:" + "ab" * 32


def _job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "train"},
        "spec": {"replicas": 2, **spec},
    }


def _fields(obj: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(Invalid) as caught:
        validate(obj)
    return {c.field: c.message for c in caught.value.causes}


def test_a_job_with_a_template_gets_never_and_a_backoff_limit_of_six() -> None:
    job = validate(_job(template={"bundle": DIGEST, "command": ["python3", "train.py"]}))
    assert job["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 6
    assert job["spec"]["template"]["command"] == ["python3", "train.py"]


def test_a_program_outside_the_bundle_is_refused_naming_the_field() -> None:
    causes = _fields(_job(template={"bundle": DIGEST, "command": ["/bin/sh", "-c", "id"]}))
    assert "spec.template.command[0]" in causes
    assert "bundle" in causes["spec.template.command[0]"]
    causes = _fields(_job(template={"bundle": DIGEST, "command": ["../x.sh"]}))
    assert "spec.template.command[0]" in causes


def test_variables_the_runner_sets_are_refused() -> None:
    causes = _fields(
        _job(template={"bundle": DIGEST, "command": ["python3"], "env": {"RANK": "3"}})
    )
    assert "RANK" in causes["spec.template.env[RANK]"]


def test_a_bad_digest_restart_policy_and_backoff_limit_are_named() -> None:
    causes = _fields(
        _job(
            template={"bundle": "sha256:nothex", "command": ["python3"]},
            restartPolicy="Always",
            backoffLimit=-1,
        )
    )
    assert {"spec.template.bundle", "spec.restartPolicy", "spec.backoffLimit"} <= set(causes)


def test_a_template_needs_a_command() -> None:
    causes = _fields(_job(template={"bundle": DIGEST, "command": []}))
    assert "spec.template.command" in causes
