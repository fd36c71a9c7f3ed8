"""Kill -9 the embedded server in the middle of a stream of applies, many times.

Given a writer applying Models over HTTP and a watcher following them, when the server process is
killed with SIGKILL at random instants and restarted on the same store, then:
- every write the server acknowledged is there after the restart;
- the watcher, resuming from the last resourceVersion it saw, sees every acknowledged write's event,
  each event once, in resourceVersion order;
- the state rebuilt from the events equals a fresh list.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from tests.e2e._proc import UpProcess

BASE = "/apis/modelplane.dev/v1alpha1/namespaces/crash/models"
OBJECTS = 20


def _model(name: str, seq: int) -> dict[str, object]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": "crash", "annotations": {"test/seq": str(seq)}},
        "spec": {
            "task": "chat",
            "versions": [{"name": "v1", "format": "upstream", "source": "http://127.0.0.1:9/v1"}],
        },
    }


@dataclass
class Ledger:
    """What the server acknowledged: per object, the last acknowledged seq and its resourceVersion."""

    acked: dict[str, tuple[int, int]] = field(default_factory=dict)
    acked_rvs: set[int] = field(default_factory=set)
    writes: int = 0


def _write_until_dead(
    client: httpx.Client, ledger: Ledger, seq0: int, stop: threading.Event
) -> int:
    """Apply (create or replace) Models until the server stops answering; returns the next seq."""
    rng = random.Random(seq0)
    seq = seq0
    while not stop.is_set():
        name = f"m{rng.randrange(OBJECTS)}"
        seq += 1
        try:
            r = client.post(BASE, json=_model(name, seq))
            if r.status_code == 409:
                r = client.put(f"{BASE}/{name}", json=_model(name, seq))
        except httpx.TransportError:
            return seq  # unacknowledged: the server died under us
        if r.status_code in (200, 201):
            rv = int(r.json()["metadata"]["resourceVersion"])
            ledger.acked[name] = (seq, rv)
            ledger.acked_rvs.add(rv)
            ledger.writes += 1
        elif r.status_code >= 500:
            return seq
        else:
            raise AssertionError(f"unexpected answer {r.status_code}: {r.text}")
    return seq


@dataclass
class Follower:
    """A watcher that survives server restarts by resuming from the last version it saw."""

    last_rv: int = 0
    events: list[tuple[int, str, str, int]] = field(default_factory=list)  # rv, type, name, seq
    state: dict[str, int] = field(default_factory=dict)

    def follow(self, url: str, stop: threading.Event) -> None:
        params = {"watch": "true", "resourceVersion": str(self.last_rv), "timeoutSeconds": "60"}
        try:
            with httpx.stream("GET", url + BASE, params=params, timeout=None) as r:
                assert r.status_code == 200, r.read()
                for line in r.iter_lines():
                    if not line:
                        continue
                    ev = json.loads(line)
                    assert ev["type"] != "ERROR", ev
                    if ev["type"] == "BOOKMARK":
                        self.last_rv = int(ev["object"]["metadata"]["resourceVersion"])
                        continue
                    obj = ev["object"]
                    rv = int(obj["metadata"]["resourceVersion"])
                    name = obj["metadata"]["name"]
                    seq = int(obj["metadata"].get("annotations", {}).get("test/seq", "0"))
                    self.events.append((rv, ev["type"], name, seq))
                    self.last_rv = rv
                    if ev["type"] == "DELETED":
                        self.state.pop(name, None)
                    else:
                        self.state[name] = seq
                    if stop.is_set():
                        return
        except (httpx.TransportError, httpx.RemoteProtocolError):
            return  # the server died; resume from last_rv after the restart


def _crash_loop(home: Path, database_url: str | None, rounds: int) -> None:
    up = UpProcess(home, database_url=database_url).start()
    ledger = Ledger()
    follower = Follower()
    rng = random.Random(2026)
    seq = 0
    # watch from a known version, not "from now": a sentinel write gives one before any other write
    with httpx.Client(base_url=up.url, timeout=10.0) as client:
        r = client.post(BASE, json=_model("sentinel", 0))
        assert r.status_code == 201, r.text
        follower.last_rv = int(r.json()["metadata"]["resourceVersion"])
        follower.state["sentinel"] = 0
    try:
        for _ in range(rounds):
            stop = threading.Event()
            watcher = threading.Thread(target=follower.follow, args=(up.url, stop), daemon=True)
            watcher.start()
            with httpx.Client(base_url=up.url, timeout=10.0) as client:
                # the writer runs in this thread; a timer kills the server at a random instant
                killer = threading.Timer(rng.uniform(0.3, 1.2), up.kill)
                killer.start()
                seq = _write_until_dead(client, ledger, seq, stop)
                killer.join()
            watcher.join(30)
            assert not watcher.is_alive(), "the watch stream did not end when the server died"
            up.start()

        # after the last restart: every acknowledged write is there
        with httpx.Client(base_url=up.url, timeout=10.0) as client:
            items = client.get(BASE).json()["items"]
        stored = {o["metadata"]["name"]: o for o in items}
        for name, (acked_seq, _rv) in ledger.acked.items():
            assert name in stored, f"acknowledged object {name} lost"
            got = int(stored[name]["metadata"]["annotations"]["test/seq"])
            # a later write may have landed without its acknowledgement reaching us, never an earlier
            assert got >= acked_seq, f"{name}: acknowledged seq {acked_seq}, stored {got}"

        # the follower catches up and has seen each event once, in order, none missing
        list_rv = max(int(o["metadata"]["resourceVersion"]) for o in items)
        stop = threading.Event()
        stop.set()
        while follower.last_rv < list_rv:
            follower.follow(up.url, stop)
        rvs = [e[0] for e in follower.events]
        assert rvs == sorted(rvs), "events out of order"
        assert len(rvs) == len(set(rvs)), "an event was delivered twice"
        missing = ledger.acked_rvs - set(rvs)
        assert not missing, f"acknowledged writes never seen by the watcher: {sorted(missing)[:10]}"
        assert follower.state == {
            n: int(o["metadata"]["annotations"]["test/seq"]) for n, o in stored.items()
        }
        assert ledger.writes > rounds, "the writer hardly wrote anything: the test proves little"
    finally:
        up.stop()


@pytest.mark.slow
def test_kill_9_during_applies_loses_no_acknowledged_write_sqlite(tmp_path: Path) -> None:
    _crash_loop(tmp_path / "home", None, rounds=6)


@pytest.mark.slow
@pytest.mark.postgres
def test_kill_9_during_applies_loses_no_acknowledged_write_postgres(
    tmp_path: Path, pg_url: str
) -> None:
    _crash_loop(tmp_path / "home", pg_url, rounds=4)
