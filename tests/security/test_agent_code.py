"""Agent code runs only from where an operator put it: installed packages the operator allows, or
content-addressed bundles an administrator uploaded; stdio tools start only programs from the
operator's ToolServer catalogue. No field or annotation makes the server import from, or start a
program in, a path a client chose."""

from __future__ import annotations

import asyncio
import io
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.control._wait import wait_until
from tests.server.conftest import serving

from modelplane import platform
from modelplane.agents._bundles import BundleStore, digest_of, pack
from modelplane.agents._journal import Database
from modelplane.agents._loader import AgentCode, CodeRefused
from modelplane.agents._routes import agents_url
from modelplane.agents._service import AgentService
from modelplane.agents._tools import call_tool
from modelplane.agents._worker import bundle_fetcher
from modelplane.agents.errors import BundleError
from modelplane.agents.runtime import Instances
from modelplane.api import kind_info, validate
from modelplane.api._agent import AgentSpec, Tool
from modelplane.api._toolserver import ToolServerSpec
from modelplane.api.errors import Invalid
from modelplane.cli._apply import run_apply
from modelplane.cli._client import Client
from modelplane.cli._context import Settings
from modelplane.control import get_condition
from modelplane.server import create_app
from modelplane.store import Store, open_store

QUICKSTART_AGENT = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "agent"

#: a module whose import alone leaves a mark: proof that code ran
MARKING_MODULE = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")

async def handler(ctx, input):
    return "ran"
"""

HANDLER = """
from {helper} import answer

async def handler(ctx, input):
    return answer()
"""


def _agent(name: str, spec: dict[str, Any], annotations: dict[str, str] | None = None) -> Any:
    metadata: dict[str, Any] = {"name": name, "namespace": "default"}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Agent",
        "metadata": metadata,
        "spec": spec,
    }


def _code_folder(root: Path, module: str, answer: str) -> Path:
    """An Agent's folder: its manifest, a handler module and a sibling it imports at the top."""
    folder = root / module
    folder.mkdir(parents=True)
    (folder / f"{module}.py").write_text(HANDLER.format(helper=f"{module}_helper"))
    (folder / f"{module}_helper.py").write_text(f"def answer():\n    return {answer!r}\n")
    (folder / "agent.yaml").write_text(
        "apiVersion: modelplane.dev/v1alpha1\nkind: Agent\n"
        f"metadata: {{name: {module.replace('_', '-')}}}\n"
        f"spec: {{entrypoint: '{module}:handler'}}\n"
    )
    return folder


def _ready(store: Store, name: str) -> dict[str, Any] | None:
    obj = store.get("Agent", "default", name)
    return get_condition(obj.get("status"), "Ready")


@contextmanager
def _platform(tmp_path: Path, *, agent_packages: tuple[str, ...] = ()) -> Iterator[Any]:
    """A store, the agent runtime service and the API (with the bundle routes) on loopback."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    home = tmp_path / "home"
    app = create_app(store, routes=platform.routes(store, home=str(home)))
    service = AgentService(
        store, api_url="http://127.0.0.1:9", home=home, agent_packages=agent_packages
    )
    service.start()
    db = Database(agents_url(store.url))
    try:
        with serving(app) as url:
            yield store, url, Instances(db)
    finally:
        assert service.stop(10)
        db.close()
        store.close()


def _finished(ops: Instances, agent: str, name: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        info = ops.get("default", agent, name)
        return info if info["status"] not in ("running", "waiting") else None

    result: dict[str, Any] = wait_until(done, timeout=20, what=f"instance {name} to finish")
    return result


# -- hole: code in by annotation -------------------------------------------------------------


def test_an_annotation_naming_a_folder_never_makes_the_server_import_from_it(
    tmp_path: Path,
) -> None:
    # given a folder (of the client's choosing) whose module writes a marker when imported
    folder = tmp_path / "client-folder"
    folder.mkdir()
    marker = tmp_path / "marker"
    (folder / "planted_agent.py").write_text(MARKING_MODULE.format(marker=str(marker)))
    with _platform(tmp_path) as (store, _url, _ops):
        # when an Agent names it by the old source-dir annotation
        store.create(
            _agent(
                "planted",
                {"entrypoint": "planted_agent:handler"},
                {"modelplane.dev/source-dir": str(folder)},
            )
        )
        # then the Agent is refused with a reason a person can act on
        ready = wait_until(lambda: _ready(store, "planted"), timeout=20, what="Agent status")
        assert (ready["status"], ready["reason"]) == ("False", "EntrypointNotAllowed")
        assert "spec.bundle" in ready["message"] and "--agent-packages" in ready["message"]
        events = store.list("Event", "default").items
        assert any(e.get("reason") == "EntrypointNotAllowed" for e in events), events
    # and nothing of the folder ran, nor is it on the search path
    assert not marker.exists()
    assert str(folder) not in sys.path


def test_an_entrypoint_outside_the_allowed_packages_is_refused_before_any_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an importable module whose import leaves a mark, and an operator allowing another
    marker = tmp_path / "marker"
    (tmp_path / "installed_elsewhere.py").write_text(MARKING_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    code = AgentCode(packages=("support_bot",))
    # when an Agent without a bundle names it, then it is refused and never imported
    with pytest.raises(CodeRefused) as refused:
        code.load(AgentSpec(entrypoint="installed_elsewhere:handler"))
    assert refused.value.cause == "EntrypointNotAllowed"
    assert not marker.exists()
    # and a prefix match is on module boundaries: support_bot_evil is not support_bot
    with pytest.raises(CodeRefused):
        code.load(AgentSpec(entrypoint="support_bot_evil.agent:handler"))


def test_a_bundle_cannot_name_an_installed_module_as_its_entrypoint(tmp_path: Path) -> None:
    # given an uploaded bundle, and an Agent whose entrypoint names a module not in it
    store = BundleStore(tmp_path)
    data = pack(_code_folder(tmp_path / "src", "bundled_agent_x", "x"))
    store.put(digest_of(data), data)
    spec = AgentSpec(entrypoint="json:loads", bundle=digest_of(data))
    # when it is loaded, then it is refused: a bundle's entrypoint is a module of the bundle
    with pytest.raises(CodeRefused) as refused:
        AgentCode(packages=(), bundles=store).load(spec)
    assert refused.value.cause == "EntrypointNotInBundle"


# -- bundles ------------------------------------------------------------------------------------


def test_a_folder_packs_to_the_same_digest_every_time_and_an_edit_gives_a_new_one(
    tmp_path: Path,
) -> None:
    folder = _code_folder(tmp_path, "packed_agent", "one")
    first = pack(folder)
    (folder / "__pycache__").mkdir()  # caches are not code: they change nothing
    (folder / "__pycache__" / "packed_agent.cpython-311.pyc").write_bytes(b"\0")
    assert digest_of(pack(folder)) == digest_of(first)
    (folder / "packed_agent_helper.py").write_text("def answer():\n    return 'two'\n")
    assert digest_of(pack(folder)) != digest_of(first)


def _tar(entries: list[tarfile.TarInfo], data: bytes = b"x") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for info in entries:
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return raw.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "entry",
    [
        _entry("../escaped.py"),
        _entry("/tmp/absolute.py"),
        _entry("inner/../../escaped.py"),
        _entry("link.py", tarfile.SYMTYPE, "/etc/passwd"),
        _entry("hard.py", tarfile.LNKTYPE, "/etc/passwd"),
        _entry("fifo", tarfile.FIFOTYPE),
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "symlink", "hardlink", "fifo"],
)
def test_a_bundle_with_an_entry_that_could_escape_is_refused_and_nothing_is_written(
    tmp_path: Path, entry: tarfile.TarInfo
) -> None:
    home = tmp_path / "home"
    data = _tar([_entry("ok.py"), entry])
    with pytest.raises(BundleError) as err:
        BundleStore(home).put(digest_of(data), data)
    assert err.value.reason == "InvalidBundle"
    assert not (tmp_path / "escaped.py").exists()
    assert not BundleStore(home).has(digest_of(data))


def test_a_bundle_that_unpacks_past_the_limits_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelplane.agents import _bundles

    monkeypatch.setattr(_bundles, "MAX_ENTRIES", 3)
    data = _tar([_entry(f"m{i}.py") for i in range(4)])
    with pytest.raises(BundleError) as err:
        BundleStore(tmp_path).put(digest_of(data), data)
    assert err.value.reason == "BundleTooLarge"


def test_uploads_are_verified_against_their_digest_and_only_admins_may_upload(
    tmp_path: Path,
) -> None:
    data = pack(_code_folder(tmp_path / "src", "uploaded_agent", "x"))
    digest = digest_of(data)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    home = tmp_path / "home"
    tokens = {"alice-token": "alice"}
    app = create_app(store, tokens=tokens, routes=platform.routes(store, home=str(home)))
    try:
        with serving(app) as url, httpx.Client(base_url=url, timeout=10) as http:
            alice = {"Authorization": "Bearer alice-token"}
            # a principal who is not an administrator may not upload code
            r = http.put(f"/bundles/{digest}", content=data, headers=alice)
            assert r.status_code == 403, r.text
            assert "administrators" in r.json()["message"]
            assert not BundleStore(home).has(digest)
            # without a token nobody gets in at all
            assert http.put(f"/bundles/{digest}", content=data).status_code == 401
    finally:
        store.close()
    store = open_store(f"sqlite:///{tmp_path / 'store2.db'}")
    app = create_app(store, routes=platform.routes(store, home=str(home)))  # local operator
    try:
        with serving(app) as url, httpx.Client(base_url=url, timeout=10) as http:
            # bytes under another digest are refused
            wrong = "sha256:" + "0" * 64
            r = http.put(f"/bundles/{wrong}", content=data)
            assert r.status_code == 400 and "sha256:" in r.json()["message"], r.text
            assert http.head(f"/bundles/{wrong}").status_code == 404
            # the administrator's upload is stored once, then served by digest
            assert http.put(f"/bundles/{digest}", content=data).status_code == 201
            assert http.put(f"/bundles/{digest}", content=data).status_code == 200
            assert http.get(f"/bundles/{digest}").content == data
            assert http.get("/bundles/not-a-digest").status_code == 400
    finally:
        store.close()


def test_a_worker_fetches_a_bundle_by_digest_and_refuses_bytes_that_do_not_match(
    tmp_path: Path,
) -> None:
    # given a server holding a bundle, and a worker whose own home lacks it
    data = pack(_code_folder(tmp_path / "src", "fetched_agent", "fetched"))
    digest = digest_of(data)
    server_home = tmp_path / "server-home"
    BundleStore(server_home).put(digest, data)
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    app = create_app(store, routes=platform.routes(store, home=str(server_home)))
    try:
        with serving(app) as url:
            worker = BundleStore(tmp_path / "worker-home", fetch=bundle_fetcher(url, None))
            # when it loads an Agent of that bundle, then it fetched it and runs its code
            code = AgentCode(packages=(), bundles=worker)
            handler = code.load(AgentSpec(entrypoint="fetched_agent:handler", bundle=digest))
            assert asyncio.run(handler(None, None)) == "fetched"
            # and bytes that do not hash to the digest asked for are refused
            tampered = BundleStore(tmp_path / "other-home", fetch=lambda _d: data + b"\0")
            with pytest.raises(BundleError) as err:
                tampered.folder(digest)
            assert err.value.reason == "DigestMismatch"
    finally:
        store.close()


def test_apply_uploads_an_agents_folder_and_an_edit_then_apply_runs_the_new_code(
    tmp_path: Path,
) -> None:
    # given the platform, and an Agent manifest beside its code (no bundle named)
    folder = _code_folder(tmp_path / "work", "looped_agent", "first")
    with _platform(tmp_path) as (store, url, ops), Client(url) as client:
        s = Settings(server=url)
        # when the folder is applied
        assert run_apply(client, [str(folder)], s)
        first = store.get("Agent", "default", "looped-agent")
        assert first["spec"]["bundle"] == digest_of(pack(folder))
        assert client.has_bundle(first["spec"]["bundle"])
        # then the runtime runs the bundle's code
        instances = "/agents/default/looped-agent/instances"
        client.request("POST", instances, body={"id": "a"})
        assert _finished(ops, "looped-agent", "a")["result"] == "first"
        # when the code is edited and applied again
        (folder / "looped_agent_helper.py").write_text("def answer():\n    return 'second'\n")
        assert run_apply(client, [str(folder)], s)
        second = store.get("Agent", "default", "looped-agent")
        assert second["spec"]["bundle"] != first["spec"]["bundle"]
        assert second["metadata"]["generation"] == first["metadata"]["generation"] + 1
        # then a new instance runs the new code (new digest, new generation)
        wait_until(
            lambda: (
                (_ready(store, "looped-agent") or {}).get("observedGeneration")
                == second["metadata"]["generation"]
            ),
            timeout=20,
            what="the new generation defined",
        )
        info = client.request("POST", instances, body={"id": "b"})
        assert info["version"] == str(second["metadata"]["generation"])
        assert _finished(ops, "looped-agent", "b")["result"] == "second"
        # and the client's folder is nowhere on the server's search path
        assert str(folder) not in sys.path


def test_an_explicit_bundle_in_the_manifest_wins_over_the_folder(tmp_path: Path) -> None:
    from modelplane.api import load_paths
    from modelplane.cli._apply import _prepare

    folder = _code_folder(tmp_path, "pinned_agent", "x")
    pinned = "sha256:" + "a" * 64
    manifest = folder / "agent.yaml"
    manifest.write_text(manifest.read_text().replace("}\n", f", bundle: '{pinned}'}}\n"))
    (loaded,) = load_paths([manifest])
    item = _prepare(loaded, Settings(server="http://127.0.0.1:9"))
    assert item.body["spec"]["bundle"] == pinned and item.bundle is None


# -- tools --------------------------------------------------------------------------------------


def test_a_stdio_tool_naming_a_command_is_refused_with_how_to_move() -> None:
    agent = _agent(
        "tooled",
        {
            "entrypoint": "assistant:Assistant",
            "tools": [{"name": "geo", "transport": "stdio", "command": "/bin/sh", "args": ["-c"]}],
        },
    )
    with pytest.raises(Invalid) as err:
        validate(agent)
    fields = {c.field: c.message for c in err.value.causes}
    assert set(fields) == {"spec.tools[0].command", "spec.tools[0].args"}
    assert "ToolServer" in fields["spec.tools[0].command"]
    assert "server:" in fields["spec.tools[0].command"]


def test_tool_servers_are_cluster_scoped_and_only_administrators_may_write_them() -> None:
    info = kind_info("modelplane.dev/v1alpha1", "ToolServer")
    assert info.admin_only and not info.namespaced


def test_a_stdio_tool_starts_the_toolservers_command_in_the_agents_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the quickstart's folder as an uploaded bundle, and the operator's ToolServer `geo`
    data = pack(QUICKSTART_AGENT)
    store = BundleStore(tmp_path / "home")
    store.put(digest_of(data), data)
    folder = store.folder(digest_of(data))
    catalogue = {"geo": ToolServerSpec(command="python", args=["mcp_server.py"])}
    tool = Tool(name="geo", transport="stdio", server="geo")
    monkeypatch.chdir(tmp_path)  # wherever the runtime runs
    # when the tool is called, then the bundle's MCP server answers
    result = asyncio.run(
        call_tool(tool, "lookup_capital", {"country": "Peru"}, catalogue.get, folder)
    )
    assert result == {"result": "Lima"}
    # and a tool naming a ToolServer that does not exist fails saying who can create it
    with pytest.raises(RuntimeError, match="ask an administrator"):
        asyncio.run(call_tool(tool, "lookup_capital", {}, {}.get, folder))
