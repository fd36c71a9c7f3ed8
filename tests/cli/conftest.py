"""Fixtures of the CLI tests: one shared ``modelplane up`` per module, a namespace per test."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import Result

from ._platform import UpServer, run_cli


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the shared server may read Model sources from (its ``--model-root``)."""
    return tmp_path_factory.mktemp("model-root")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, model_root: Path) -> Iterator[UpServer]:
    """A ``modelplane up`` (SQLite) shared by the tests of one module."""
    home = tmp_path_factory.mktemp("up") / "home"
    server = UpServer(home, "--model-root", str(model_root)).start().wait_ready()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ns(request: pytest.FixtureRequest) -> str:
    """A namespace of this test's own, so tests sharing a server do not see each other."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return f"{base[:50].strip('-')}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def mp(platform: UpServer, ns: str) -> Callable[..., Result]:
    """``mp("get", "models")``: the CLI, in this process, against the shared server, in ``ns``."""

    def invoke(*args: str, input: str | None = None) -> Result:
        return run_cli("--server", platform.url, "-n", ns, *args, input=input)

    return invoke
