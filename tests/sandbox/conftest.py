"""The process sandbox needs bubblewrap and user namespaces: skipped with the reason where the
machine lacks them, but failing under ``CI=true`` (``.ci/run`` installs bubblewrap)."""

from __future__ import annotations

import os

import pytest

from modelplane.sandbox import ProcessSandbox, SandboxUnavailable


@pytest.fixture(scope="session")
def sandbox() -> ProcessSandbox:
    box = ProcessSandbox()
    try:
        box.run(["/bin/true"])
    except SandboxUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{exc}; CI=true requires the process sandbox")
        pytest.skip(str(exc))
    return box
