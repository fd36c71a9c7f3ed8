"""Agents run from their bundles: the entrypoint is imported from the extracted bundle (on the
module search path only for the import, its modules out of ``sys.modules`` afterwards, so two
bundles may both have an ``assistant.py``); no PYTHONPATH, no folder of the client's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tests.control._wait import wait_until

from modelplane.agents._bundles import BundleStore, digest_of, pack
from modelplane.agents._journal import Database
from modelplane.agents._loader import AgentCode
from modelplane.agents._routes import agents_url
from modelplane.agents._service import AgentService
from modelplane.agents.runtime import Instances
from modelplane.api._agent import AgentSpec
from modelplane.api.errors import BadRequest
from modelplane.store import open_store

HANDLER = """
from modelplane.agents import Context
from {helper} import double


async def handler(ctx: Context, input):
    return await ctx.step("double", double, input["n"])
"""


def _agent_folder(tmp_path: Path, module: str, factor: int = 2) -> Path:
    """A folder with a handler module that imports a sibling helper module at import time."""
    folder = tmp_path / module
    folder.mkdir(parents=True)
    (folder / f"{module}.py").write_text(HANDLER.format(helper=f"{module}_helper"))
    (folder / f"{module}_helper.py").write_text(f"def double(n):\n    return {factor} * n\n")
    return folder


def _uploaded(home: Path, folder: Path) -> str:
    data = pack(folder)
    BundleStore(home).put(digest_of(data), data)
    return digest_of(data)


def test_an_entrypoint_is_imported_from_its_bundle_without_leaving_it_on_sys_path(
    tmp_path: Path,
) -> None:
    # given a handler module (and its helper) uploaded as a bundle
    digest = _uploaded(tmp_path / "home", _agent_folder(tmp_path / "src", "bundle_agent_a"))
    code = AgentCode(packages=(), bundles=BundleStore(tmp_path / "home"))
    before = list(sys.path)
    # when its entrypoint is loaded
    handler = code.load(AgentSpec(entrypoint="bundle_agent_a:handler", bundle=digest))
    # then the handler comes from the bundle, and sys.path and sys.modules are as they were
    assert handler.__module__ == "bundle_agent_a"
    assert Path(handler.__code__.co_filename).parent == BundleStore(tmp_path / "home").folder(
        digest
    )
    assert sys.path == before
    assert "bundle_agent_a" not in sys.modules and "bundle_agent_a_helper" not in sys.modules


def test_a_missing_module_names_the_bundle(tmp_path: Path) -> None:
    digest = _uploaded(tmp_path / "home", _agent_folder(tmp_path / "src", "bundle_agent_b"))
    code = AgentCode(packages=(), bundles=BundleStore(tmp_path / "home"))
    with pytest.raises(BadRequest) as err:
        code.load(AgentSpec(entrypoint="no_such_agent_module:handler", bundle=digest))
    assert "no_such_agent_module" in err.value.message and "bundle" in err.value.message


def test_two_bundles_with_the_same_module_names_each_run_their_own_code(tmp_path: Path) -> None:
    # given two bundles whose handler and helper modules have the same names
    home = tmp_path / "home"
    one = _uploaded(home, _agent_folder(tmp_path / "one", "bundle_agent_c", factor=2))
    two = _uploaded(home, _agent_folder(tmp_path / "two", "bundle_agent_c", factor=3))
    code = AgentCode(packages=(), bundles=BundleStore(home))
    # when both are loaded, then each handler sees its own helper
    first = code.load(AgentSpec(entrypoint="bundle_agent_c:handler", bundle=one))
    second = code.load(AgentSpec(entrypoint="bundle_agent_c:handler", bundle=two))
    assert first.__globals__["double"](7) == 14
    assert second.__globals__["double"](7) == 21


def test_the_service_defines_an_agent_from_its_bundle(tmp_path: Path) -> None:
    # given an Agent object naming an uploaded bundle whose module is not on the path
    home = tmp_path / "home"
    digest = _uploaded(home, _agent_folder(tmp_path / "src", "bundle_agent_d"))
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    service = AgentService(store, api_url="http://127.0.0.1:9", home=home)
    service.start()
    db = Database(agents_url(store.url))
    ops = Instances(db)
    try:
        store.create(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Agent",
                "metadata": {"name": "double", "namespace": "default"},
                "spec": {"entrypoint": "bundle_agent_d:handler", "bundle": digest},
            }
        )
        # when an instance runs
        ops.create("default", "double", "d1", {"n": 21})

        def done() -> dict[str, object] | None:
            info = ops.get("default", "double", "d1")
            return info if info["status"] not in ("running", "waiting") else None

        info = wait_until(done, timeout=20, what="the instance to finish")
        # then it ran the bundle's code, and the Agent says where its code came from
        assert (info["status"], info["result"]) == ("completed", 42), info
        ready = store.get("Agent", "default", "double")["status"]["conditions"][0]
        assert (ready["status"], ready["reason"]) == ("True", "Defined")
        assert digest in ready["message"]
    finally:
        assert service.stop(10)
        db.close()
        store.close()


def test_an_agent_naming_a_bundle_nobody_uploaded_says_how_to_upload_it(tmp_path: Path) -> None:
    code = AgentCode(packages=(), bundles=BundleStore(tmp_path))
    with pytest.raises(BadRequest) as err:
        code.load(AgentSpec(entrypoint="x:handler", bundle="sha256:" + "1" * 64))
    assert "apply -f" in err.value.message
