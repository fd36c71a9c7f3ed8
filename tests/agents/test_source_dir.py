"""Agents applied from a manifest folder: the entrypoint is imported from that folder (on the module
search path only for the import) and stdio MCP servers start there; no PYTHONPATH needed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from tests.control._wait import wait_until

from modelplane.agents._journal import Database
from modelplane.agents._loader import import_entrypoint
from modelplane.agents._routes import agents_url
from modelplane.agents._service import AgentService
from modelplane.agents._tools import LocatedTool, call_tool, locate_tools
from modelplane.agents.runtime import Instances
from modelplane.api._agent import AgentSpec
from modelplane.api.errors import BadRequest
from modelplane.control import SOURCE_DIR_ANNOTATION
from modelplane.store import open_store

QUICKSTART_AGENT = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "agent"

HANDLER = """
from modelplane.agents import Context
from {helper} import double


async def handler(ctx: Context, input):
    return await ctx.step("double", double, input["n"])
"""


def _agent_folder(tmp_path: Path, module: str) -> Path:
    """A folder with a handler module that imports a sibling helper module at import time."""
    folder = tmp_path / module
    folder.mkdir()
    (folder / f"{module}.py").write_text(HANDLER.format(helper=f"{module}_helper"))
    (folder / f"{module}_helper.py").write_text("def double(n):\n    return 2 * n\n")
    return folder


def test_an_entrypoint_is_imported_from_its_folder_without_leaving_it_on_sys_path(
    tmp_path: Path,
) -> None:
    # given a handler module (and its helper) in a folder that is not on the search path
    folder = _agent_folder(tmp_path, "folder_agent_a")
    before = list(sys.path)
    # when its entrypoint is imported with that folder as its source
    handler = import_entrypoint("folder_agent_a:handler", str(folder))
    # then the handler comes from the folder, and sys.path is as it was
    assert handler.__module__ == "folder_agent_a"
    assert Path(sys.modules["folder_agent_a"].__file__ or "").parent == folder
    assert sys.path == before


def test_a_folder_already_on_sys_path_is_neither_added_twice_nor_removed(tmp_path: Path) -> None:
    folder = _agent_folder(tmp_path, "folder_agent_b")
    sys.path.insert(0, str(folder))
    try:
        import_entrypoint("folder_agent_b:handler", str(folder))
        assert sys.path.count(str(folder)) == 1
    finally:
        sys.path.remove(str(folder))


def test_a_missing_module_names_the_folder_it_was_looked_for_in(tmp_path: Path) -> None:
    with pytest.raises(BadRequest) as err:
        import_entrypoint("no_such_agent_module:handler", str(tmp_path))
    assert "no_such_agent_module" in err.value.message and str(tmp_path) in err.value.message


def test_a_module_name_already_imported_from_elsewhere_is_refused_with_both_places(
    tmp_path: Path,
) -> None:
    # given two agent folders whose handler modules have the same name
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = _agent_folder(tmp_path / "one", "folder_agent_c")
    second = _agent_folder(tmp_path / "two", "folder_agent_c")
    import_entrypoint("folder_agent_c:handler", str(first))
    # when the second is imported, then it is refused rather than given the first's code
    with pytest.raises(BadRequest) as err:
        import_entrypoint("folder_agent_c:handler", str(second))
    assert str(first) in err.value.message and str(second) in err.value.message


def test_a_stdio_tool_with_relative_args_starts_in_the_agents_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the quickstart's tool spec (`python mcp_server.py`), run from another folder
    monkeypatch.chdir(tmp_path)
    spec = AgentSpec.model_validate(
        {
            "entrypoint": "assistant:Assistant",
            "tools": [
                {
                    "name": "geo",
                    "transport": "stdio",
                    "command": "python",
                    "args": ["mcp_server.py"],
                }
            ],
        }
    )
    (tool,) = locate_tools(spec, str(QUICKSTART_AGENT)).tools
    assert isinstance(tool, LocatedTool) and tool.working_dir == str(QUICKSTART_AGENT)
    # when the tool is called, then the real MCP server beside the manifest answers
    result = asyncio.run(call_tool(tool, "lookup_capital", {"country": "Peru"}))
    assert result == {"result": "Lima"}


def test_the_service_defines_an_agent_from_the_folder_its_manifest_was_applied_from(
    tmp_path: Path,
) -> None:
    # given an Agent object carrying its manifest's folder, whose module is not on the path
    folder = _agent_folder(tmp_path, "folder_agent_d")
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    service = AgentService(store, api_url="http://127.0.0.1:9")
    service.start()
    db = Database(agents_url(store.url))
    ops = Instances(db)
    try:
        store.create(
            {
                "apiVersion": "modelplane.dev/v1alpha1",
                "kind": "Agent",
                "metadata": {
                    "name": "double",
                    "namespace": "default",
                    "annotations": {SOURCE_DIR_ANNOTATION: str(folder)},
                },
                "spec": {"entrypoint": "folder_agent_d:handler"},
            }
        )
        # when an instance runs
        ops.create("default", "double", "d1", {"n": 21})

        def done() -> dict[str, object] | None:
            info = ops.get("default", "double", "d1")
            return info if info["status"] not in ("running", "waiting") else None

        info = wait_until(done, timeout=20, what="the instance to finish")
        # then it ran the folder's code, and the folder did not stay on the search path
        assert (info["status"], info["result"]) == ("completed", 42), info
        assert str(folder) not in sys.path
    finally:
        assert service.stop(10)
        db.close()
        store.close()


def test_apply_records_the_manifest_folder_on_every_agent() -> None:
    from modelplane.api import load_paths
    from modelplane.cli._apply import _annotate_source_dir

    # given the quickstart's Agent manifest (its entrypoint names no path at all)
    (manifest,) = load_paths([QUICKSTART_AGENT / "agent.yaml"])
    obj = dict(manifest.obj)
    # when apply prepares it, then the Agent carries the manifest's folder
    _annotate_source_dir(obj, manifest)
    assert obj["metadata"]["annotations"][SOURCE_DIR_ANNOTATION] == str(QUICKSTART_AGENT)
