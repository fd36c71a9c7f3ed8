"""The platform service: Agent objects in the store are (re)defined in the runtime by a watch."""

from __future__ import annotations

import time
from pathlib import Path

from modelplane.agents._journal import Database
from modelplane.agents._routes import agents_url
from modelplane.agents._service import AgentService
from modelplane.agents.runtime import Instances
from modelplane.store import open_store


def _agent(entrypoint: str) -> dict[str, object]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Agent",
        "metadata": {"name": "count", "namespace": "default"},
        "spec": {"entrypoint": entrypoint},
    }


def _wait_status(
    ops: Instances, name: str, status: str, timeout: float = 20.0
) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        info = ops.get("default", "count", name)
        if info["status"] == status:
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.02)  # polling a condition with a deadline


def test_agents_created_updated_and_deleted_in_the_store_follow_into_the_runtime(
    tmp_path: Path,
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    # the tests' handlers are an installed package the operator allows
    service = AgentService(
        store, api_url="http://127.0.0.1:9", home=tmp_path, agent_packages=("agent_handlers",)
    )
    service.start()
    db = Database(agents_url(store.url))
    ops = Instances(db)
    try:
        # given an Agent object created after the service started
        store.create(_agent("agent_handlers:counter"))
        # when an instance of it is created
        ops.create("default", "count", "c1", {"steps": 3})
        # then the runtime learned the Agent from the watch and ran the instance
        info = _wait_status(ops, "c1", "completed")
        assert info["version"] == "1"
        # and a new generation of the Agent applies to new instances
        obj = store.get("Agent", "default", "count")
        obj["spec"]["entrypoint"] = "agent_handlers:sleeper"
        store.update(obj)
        rt = service.runtime
        assert rt is not None
        deadline = time.monotonic() + 20
        while getattr(rt.definition("default", "count"), "version", None) != "2":
            assert time.monotonic() < deadline, "the update did not reach the runtime"
            time.sleep(0.02)  # polling a condition with a deadline
        # and deleting the Agent undefines it
        store.delete("Agent", "default", "count")
        while rt.definition("default", "count") is not None:
            assert time.monotonic() < deadline, "the deletion did not reach the runtime"
            time.sleep(0.02)  # polling a condition with a deadline
    finally:
        assert service.stop(10)
        db.close()
        store.close()
