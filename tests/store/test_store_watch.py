"""The store contract for watch and history, on every backend: order, filters, replay, resume,
expiry, slow watchers, async, several writers and several processes."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading

import pytest
from store_helpers import collect, model, node

from modelplane.api.errors import BadRequest, Expired
from modelplane.store import JSON, Store, WatchEvent, open_store


def test_watch_delivers_every_change_in_order(store: Store) -> None:
    # given a watch from now
    with store.watch("Model") as watch:
        # when an object is created, updated, has its status set and is deleted
        created = store.create(model("x"))
        updated = store.update({**created, "spec": {"task": "embedding"}})
        status = store.update_status({**updated, "status": {"phase": "Ready"}})
        deleted = store.delete("Model", "default", "x")

        # then the watch sees four events with the objects and versions the writes returned
        events = collect(watch, 4)
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    assert [e.object for e in events] == [created, updated, status, deleted]
    assert [e.resource_version for e in events] == [
        int(o["metadata"]["resourceVersion"]) for o in (created, updated, status, deleted)
    ]


def test_finalizers_show_as_modified_then_deleted(store: Store) -> None:
    obj = model("x")
    obj["metadata"]["finalizers"] = ["f"]
    store.create(obj)
    with store.watch("Model") as watch:
        marked = store.delete("Model", "default", "x")
        store.update({**marked, "metadata": {**marked["metadata"], "finalizers": []}})
        events = collect(watch, 2)

    assert [e.type for e in events] == ["MODIFIED", "DELETED"]
    assert events[0].object["metadata"]["deletionTimestamp"]
    assert events[1].object["metadata"]["finalizers"] == []


def test_watch_filters_by_kind_namespace_and_labels(store: Store) -> None:
    with (
        store.watch() as everything,
        store.watch("Model", "prod") as prod_models,
        store.watch("Model", label_selector="tier=gpu") as gpu_models,
    ):
        store.create(model("a", "prod", labels={"tier": "gpu"}))
        store.create(model("b", "dev", labels={"tier": "gpu"}))
        store.create(model("c", "prod"))
        store.create(node("n1"))

        all_events = collect(everything, 4)
        prod = collect(prod_models, 2)
        gpu = collect(gpu_models, 2)

    assert [e.object["metadata"]["name"] for e in all_events] == ["a", "b", "c", "n1"]
    assert [e.object["metadata"]["name"] for e in prod] == ["a", "c"]
    assert [e.object["metadata"]["name"] for e in gpu] == ["a", "b"]


def test_next_batch_returns_nothing_when_nothing_happens(store: Store) -> None:
    with store.watch() as watch:
        assert watch.next_batch(0.05) == []


def test_watch_from_an_old_version_replays_then_goes_live(store: Store) -> None:
    # given history: ten updates after version `start`
    start = store.current_resource_version()
    obj = store.create(model("x", n=0))
    for i in range(1, 10):
        obj = store.update({**obj, "spec": {"n": i}})

    # when watching from `start` and writing more while the replay is being read
    with store.watch("Model", since=start) as watch:
        first = watch.next_batch(5)
        for i in range(10, 15):
            obj = store.update({**obj, "spec": {"n": i}})
        events = first + collect(watch, 15 - len(first))

    # then every change arrives exactly once, in order: replay and live with no gap
    assert [e.object["spec"]["n"] for e in events] == list(range(15))
    versions = [e.resource_version for e in events]
    assert versions == list(range(start + 1, start + 16))


def test_watch_resumed_after_reconnect_loses_and_repeats_nothing(store: Store) -> None:
    obj = store.create(model("x", n=-1))
    seen: list[int] = []
    last = int(obj["metadata"]["resourceVersion"])

    # a client that reconnects three times, each time from the last version it saw,
    # while writes keep happening between connections
    for round_ in range(3):
        with store.watch("Model", since=last) as watch:
            for i in range(5):
                obj = store.update({**obj, "spec": {"n": round_ * 10 + i}})
            events = collect(watch, 3)  # reads only part of what is there, then "disconnects"
        seen.extend(e.object["spec"]["n"] for e in events)
        last = events[-1].resource_version
    with store.watch("Model", since=last) as watch:
        seen.extend(e.object["spec"]["n"] for e in collect(watch, 15 - len(seen)))

    assert seen == [r * 10 + i for r in range(3) for i in range(5)]


def test_watch_from_before_the_compacted_history_is_expired(store: Store) -> None:
    # given 10 writes of which only the newest 3 events are kept
    start = store.current_resource_version()
    for i in range(10):
        store.create(model(f"m{i}"))
    horizon = store.compact(3)
    assert horizon == start + 7

    # watching from the horizon works; from before it, it does not
    with store.watch(since=horizon) as watch:
        assert [e.resource_version for e in collect(watch, 3)] == [start + 8, start + 9, start + 10]
    with pytest.raises(Expired) as err:
        store.watch(since=horizon - 1)
    assert err.value.message == (
        f"resourceVersion {horizon - 1} is too old: history starts at {horizon};"
        " list again and watch from the list's resourceVersion"
    )


def test_compaction_never_goes_back(store: Store) -> None:
    for i in range(5):
        store.create(model(f"m{i}"))
    horizon = store.compact(1)
    assert store.compact(100) == horizon
    with pytest.raises(BadRequest):
        store.compact(-1)


def test_a_watch_overtaken_by_compaction_is_expired_when_it_reads(store: Store) -> None:
    start = store.current_resource_version()
    store.create(model("a"))
    watch = store.watch(since=start)
    store.create(model("b"))

    store.compact(0)

    with pytest.raises(Expired):
        watch.next_batch(1)
    watch.close()


def test_a_watcher_behind_the_memory_buffer_catches_up_from_the_table(store_url: str) -> None:
    # given a store that keeps only 8 events in memory and a watcher that does not read
    with open_store(store_url, watch_buffer=8) as small:
        start = small.current_resource_version()
        obj = small.create(model("x", n=0))
        with small.watch("Model", since=start) as slow, small.watch("Model") as fast:
            # when 60 writes happen (the buffer holds 8 to 16 of them)
            for i in range(1, 60):
                obj = small.update({**obj, "spec": {"n": i}})
            # then both watchers still see every write exactly once, in order
            assert [e.object["spec"]["n"] for e in collect(slow, 60)] == list(range(60))
            assert [e.object["spec"]["n"] for e in collect(fast, 59)] == list(range(1, 60))


def test_watch_since_accepts_strings_and_refuses_nonsense(store: Store) -> None:
    obj = store.create(model("x"))
    store.update({**obj, "spec": {"task": "z"}})
    with store.watch(since=obj["metadata"]["resourceVersion"]) as watch:
        assert [e.type for e in collect(watch, 1)] == ["MODIFIED"]
    with pytest.raises(BadRequest, match="not a version"):
        store.watch(since="yesterday")


def test_async_watch_awaits_without_blocking_the_loop(store: Store) -> None:
    async def scenario() -> list[str]:
        watch = store.watch("Model")
        try:
            waiting = asyncio.create_task(watch.next_batch_async(10))
            await asyncio.sleep(0)  # the watch is now waiting; the loop must stay free
            await asyncio.to_thread(store.create, model("a"))
            first = await waiting
            await asyncio.to_thread(store.create, model("b"))
            got = [e.object["metadata"]["name"] for e in first]
            async for event in watch:
                got.append(event.object["metadata"]["name"])
                break
            assert await watch.next_batch_async(0.05) == []
            return got
        finally:
            watch.close()

    assert asyncio.run(scenario()) == ["a", "b"]


def test_async_watch_replays_history(store: Store) -> None:
    start = store.current_resource_version()
    for name in "abc":
        store.create(model(name))

    async def scenario() -> list[str]:
        with store.watch(since=start) as watch:
            events = await watch.next_batch_async(5)
        return [e.object["metadata"]["name"] for e in events]

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_closing_a_watch_releases_a_blocked_reader(store: Store) -> None:
    watch = store.watch()
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(watch.next_batch(30)))
    reader.start()

    watch.close()
    reader.join(5)

    assert not reader.is_alive()
    assert result == [[]]


def test_concurrent_writers_produce_a_gap_free_ordered_stream(store: Store) -> None:
    # given a watcher and 4 threads that each create and update their own objects
    start = store.current_resource_version()
    writes_per_thread = 25

    def writer(t: int) -> None:
        obj = store.create(model(f"t{t}", n=0))
        for i in range(1, writes_per_thread):
            obj = store.update({**obj, "spec": {"n": i}})

    with store.watch("Model", since=start) as watch:
        threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        events = collect(watch, 4 * writes_per_thread)

    # then the stream has every version once, in order, with no gap
    assert [e.resource_version for e in events] == list(range(start + 1, start + 101))
    # and each object's own changes arrive in the order they were made
    for t in range(4):
        mine = [e.object["spec"]["n"] for e in events if e.object["metadata"]["name"] == f"t{t}"]
        assert mine == list(range(writes_per_thread))


def test_a_second_store_on_the_same_url_sees_and_watches_the_first(
    store: Store, store_url: str
) -> None:
    # given a second store on the same database (as a second process would open it)
    with open_store(store_url) as other:
        start = other.current_resource_version()
        with other.watch("Model") as watch:
            # when the first store writes
            created = store.create(model("shared"))
            updated = store.update({**created, "spec": {"task": "embedding"}})

            # then the second reads it and its watch delivers it
            assert other.get("Model", "default", "shared") == updated
            events = collect(watch, 2)
        assert [e.object for e in events] == [created, updated]

        # and writes of the second are seen by the first, with versions from one counter
        mine = other.create(model("from-other"))
        assert int(mine["metadata"]["resourceVersion"]) == start + 3
        assert store.get("Model", "default", "from-other") == mine


def test_two_stores_writing_at_once_share_one_gap_free_history(
    store: Store, store_url: str
) -> None:
    start = store.current_resource_version()
    with open_store(store_url) as other:

        def write(s: Store, prefix: str) -> None:
            for i in range(30):
                s.create(model(f"{prefix}{i}"))

        threads = [
            threading.Thread(target=write, args=(store, "a")),
            threading.Thread(target=write, args=(other, "b")),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with other.watch(since=start) as watch:
            events = collect(watch, 60)

    assert [e.resource_version for e in events] == list(range(start + 1, start + 61))
    assert len(store.list("Model").items) == 60


_OTHER_PROCESS = """
import sys
from modelplane.store import open_store

with open_store(sys.argv[1]) as store:
    for i in range(20):
        store.create({"kind": "Model", "metadata": {"name": f"p{i}", "namespace": "default"}})
"""


def test_a_watch_sees_the_writes_of_another_process(store: Store, store_url: str) -> None:
    # given a watch in this process
    with store.watch("Model") as watch:
        # when another process writes 20 objects
        done = subprocess.run(
            [sys.executable, "-c", _OTHER_PROCESS, store_url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr

        # then this process's watch delivers them, in order
        events = collect(watch, 20)
    assert [e.object["metadata"]["name"] for e in events] == [f"p{i}" for i in range(20)]


def test_changing_a_sent_object_afterwards_does_not_change_what_watchers_filter_on(
    store: Store,
) -> None:
    with store.watch("Model", label_selector="team=a") as watch:
        obj = model("x", labels={"team": "a"})
        store.create(obj)
        obj["metadata"]["labels"]["team"] = "b"  # the caller reuses its dict

        events = collect(watch, 1)
    assert [e.object["metadata"]["labels"] for e in events] == [{"team": "a"}]


# -- label selectors: objects enter and leave the selection, as in Kubernetes -----------------


def _relabel(store: Store, obj: JSON, labels: dict[str, str]) -> JSON:
    return store.update({**obj, "metadata": {**obj["metadata"], "labels": labels}})


def _summary(events: list[WatchEvent]) -> list[tuple[str, str, dict[str, str]]]:
    return [
        (e.type, e.object["metadata"]["name"], e.object["metadata"].get("labels") or {})
        for e in events
    ]


def _relabel_story(store: Store) -> int:
    """Writes, after the returned version: x leaves tier=gpu, y joins it, z changes within it,
    w changes outside it, z is deleted, then x (outside by now) is deleted."""
    x = store.create(model("x", labels={"tier": "gpu"}))
    y = store.create(model("y", labels={"tier": "cpu"}))
    z = store.create(model("z", labels={"tier": "gpu"}))
    w = store.create(model("w", labels={"tier": "cpu"}))
    start = store.current_resource_version()
    _relabel(store, x, {"tier": "cpu"})
    _relabel(store, y, {"tier": "gpu"})
    _relabel(store, z, {"tier": "gpu", "zone": "a"})
    _relabel(store, w, {"tier": "cpu", "zone": "a"})
    store.delete("Model", "default", "z")
    store.delete("Model", "default", "x")
    return start


_STORY_SEEN_BY_GPU = [
    ("DELETED", "x", {"tier": "cpu"}),
    ("ADDED", "y", {"tier": "gpu"}),
    ("MODIFIED", "z", {"tier": "gpu", "zone": "a"}),
    ("DELETED", "z", {"tier": "gpu", "zone": "a"}),
]


def test_an_object_relabelled_out_of_the_selection_is_deleted_for_the_watch(store: Store) -> None:
    # given an object in the selection of a watch
    obj = store.create(model("x", labels={"tier": "gpu"}))
    with store.watch("Model", label_selector="tier=gpu") as watch:
        # when it is relabelled out of the selection
        moved = _relabel(store, obj, {"tier": "cpu"})
        # then the watch sees it DELETED, carrying the object as it is now
        events = collect(watch, 1)
        # and later changes of it are no longer seen
        _relabel(store, moved, {"tier": "cpu", "zone": "a"})
        assert watch.next_batch(0.2) == []
    assert [(e.type, e.object) for e in events] == [("DELETED", moved)]


def test_an_object_relabelled_into_the_selection_is_added_for_the_watch(store: Store) -> None:
    # given an object outside the selection of a watch
    obj = store.create(model("y", labels={"tier": "cpu"}))
    with store.watch("Model", label_selector="tier=gpu") as watch:
        # when it is relabelled into it
        moved = _relabel(store, obj, {"tier": "gpu"})
        # then the watch sees it ADDED
        events = collect(watch, 1)
    assert [(e.type, e.object) for e in events] == [("ADDED", moved)]


def test_a_label_selected_watch_sees_entering_leaving_and_staying_objects(store: Store) -> None:
    # given watches with and without a selector from before a story of relabellings
    with (
        store.watch("Model", label_selector="tier=gpu") as gpu,
        store.watch("Model") as everything,
    ):
        _relabel_story(store)
        # then the selected watch sees objects enter and leave; the other sees the plain events
        seen = collect(gpu, 2 + len(_STORY_SEEN_BY_GPU))
        assert gpu.next_batch(0.2) == []
        plain = collect(everything, 10)
    created = [("ADDED", "x", {"tier": "gpu"}), ("ADDED", "z", {"tier": "gpu"})]
    assert _summary(seen) == created + _STORY_SEEN_BY_GPU
    assert [e.type for e in plain] == ["ADDED"] * 4 + ["MODIFIED"] * 4 + ["DELETED"] * 2


def test_resuming_across_a_relabelling_gives_the_same_answers(store: Store, store_url: str) -> None:
    # given a story of relabellings after version `start`
    start = _relabel_story(store)
    # when it is replayed from `start` by this store (its memory) and by a second store on the
    # same database (its memory has none of it: the events table)
    with store.watch("Model", since=start, label_selector="tier=gpu") as here:
        replayed_here = collect(here, len(_STORY_SEEN_BY_GPU))
        assert here.next_batch(0.2) == []
    with (
        open_store(store_url) as other,
        other.watch("Model", since=start, label_selector="tier=gpu") as there,
    ):
        replayed_there = collect(there, len(_STORY_SEEN_BY_GPU))
        assert there.next_batch(0.2) == []
    # then both give what a live watch saw
    assert _summary(replayed_here) == _STORY_SEEN_BY_GPU
    assert _summary(replayed_there) == _STORY_SEEN_BY_GPU


def test_removing_the_last_finalizer_while_relabelling_is_judged_by_the_labels_before(
    store: Store,
) -> None:
    # given two objects waiting on a finalizer, one in the selection and one outside it
    objs = {}
    for name, tier in (("in", "gpu"), ("out", "cpu")):
        obj = model(name, labels={"tier": tier})
        obj["metadata"]["finalizers"] = ["f"]
        store.create(obj)
        objs[name] = store.delete("Model", "default", name)
    with store.watch("Model", label_selector="tier=gpu") as watch:
        # when each loses its finalizer (so goes) in the same write that swaps its tier
        for name, tier in (("in", "cpu"), ("out", "gpu")):
            meta = {**objs[name]["metadata"], "finalizers": [], "labels": {"tier": tier}}
            store.update({**objs[name], "metadata": meta})
        # then only the one that was in the selection is seen going
        events = collect(watch, 1)
        assert watch.next_batch(0.2) == []
    assert _summary(events) == [("DELETED", "in", {"tier": "cpu"})]


def _drop_prev_labels_column(url: str) -> None:
    """Make the database look as one written before ``mp_events.prev_labels`` existed."""
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            conn.execute("ALTER TABLE mp_events DROP COLUMN prev_labels")
            conn.commit()
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute("ALTER TABLE mp_events DROP COLUMN prev_labels")


def test_a_database_from_before_prev_labels_gets_the_column_and_reads_old_events(
    store_url: str,
) -> None:
    # given a database whose events table has no prev_labels, holding a relabelling
    with open_store(store_url) as old:
        obj = old.create(model("x", labels={"tier": "gpu"}))
        start = old.current_resource_version()
        moved = _relabel(old, obj, {"tier": "gpu", "zone": "a"})
    _drop_prev_labels_column(store_url)
    # when it is opened again and watched from before the relabelling
    with (
        open_store(store_url) as store,
        store.watch("Model", since=start, label_selector="tier=gpu") as watch,
    ):
        # then the old event reads as "labels unchanged" (still in the selection: MODIFIED)
        replayed = collect(watch, 1)
        # and new relabellings are recorded in the column it got
        _relabel(store, moved, {"tier": "cpu"})
        live = collect(watch, 1)
    assert _summary(replayed) == [("MODIFIED", "x", {"tier": "gpu", "zone": "a"})]
    assert _summary(live) == [("DELETED", "x", {"tier": "cpu"})]
