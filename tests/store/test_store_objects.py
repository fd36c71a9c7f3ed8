"""The store contract for objects, on every backend: identity, versions, generation, status,
optimistic concurrency, merge patch, finalizers."""

from __future__ import annotations

import pytest
from store_helpers import model, node

from modelplane.api.errors import AlreadyExists, BadRequest, Conflict, NotFound
from modelplane.store import Store

# -- create and get -------------------------------------------------------------------------


def test_create_sets_identity_version_and_generation(store: Store) -> None:
    # given an empty store
    before = store.current_resource_version()

    # when a Model is created
    created = store.create(model("llama", task="chat"))

    # then the store set uid, creationTimestamp, generation 1 and the next resourceVersion
    meta = created["metadata"]
    assert meta["uid"]
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert meta["resourceVersion"] == str(before + 1)
    assert store.current_resource_version() == before + 1
    # and get returns exactly what create returned
    assert store.get("Model", "default", "llama") == created


def test_create_ignores_server_owned_metadata_sent_by_the_client(store: Store) -> None:
    obj = model("llama")
    obj["metadata"].update(uid="mine", generation=7, resourceVersion="99")

    created = store.create(obj)

    assert created["metadata"]["uid"] != "mine"
    assert created["metadata"]["generation"] == 1
    assert created["metadata"]["resourceVersion"] != "99"


def test_create_of_an_existing_object_is_refused(store: Store) -> None:
    store.create(model("llama"))

    with pytest.raises(AlreadyExists) as err:
        store.create(model("llama", task="embedding"))

    assert "Model default/llama already exists" in err.value.message
    assert store.get("Model", "default", "llama")["spec"] == {"task": "chat"}


def test_same_name_in_another_namespace_or_kind_is_another_object(store: Store) -> None:
    a = store.create(model("llama", "team-a"))
    b = store.create(model("llama", "team-b"))
    n = store.create(node("llama"))

    assert len({a["metadata"]["uid"], b["metadata"]["uid"], n["metadata"]["uid"]}) == 3


def test_cluster_scoped_objects_live_in_the_empty_namespace(store: Store) -> None:
    store.create(node("gpu-1"))

    assert store.get("Node", "", "gpu-1")["metadata"]["name"] == "gpu-1"
    assert [o["metadata"]["name"] for o in store.list("Node", "").items] == ["gpu-1"]


def test_get_of_a_missing_object_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound) as err:
        store.get("Model", "default", "nope")
    assert err.value.message == "Model default/nope not found"


@pytest.mark.parametrize(
    ("obj", "says"),
    [
        ({"metadata": {"name": "x"}}, "no kind"),
        ({"kind": "Model"}, "no metadata"),
        ({"kind": "Model", "metadata": {"namespace": "default"}}, "no metadata.name"),
        ({"kind": "Model", "metadata": {"name": "x"}, "spec": {"when": object()}}, "JSON"),
    ],
)
def test_create_of_a_malformed_object_is_a_bad_request(store: Store, obj: dict, says: str) -> None:
    before = store.current_resource_version()
    with pytest.raises(BadRequest) as err:
        store.create(obj)
    assert says in err.value.message
    assert store.current_resource_version() == before


# -- update ---------------------------------------------------------------------------------


def test_update_with_stale_resource_version_is_refused(store: Store) -> None:
    # given an object changed twice since a client read it
    stale = store.create(model("x"))
    current = store.update({**stale, "spec": {"task": "completion"}})
    current = store.update({**current, "spec": {"task": "embedding"}})

    # when the client writes back its stale copy
    with pytest.raises(Conflict) as err:
        store.update({**stale, "spec": {"task": "chat"}})

    # then it is refused, naming both versions, and nothing changed
    sent, now = stale["metadata"]["resourceVersion"], current["metadata"]["resourceVersion"]
    assert err.value.message == (
        f"Model default/x was modified: you sent resourceVersion {sent}, the current one is {now};"
        " get it again and retry"
    )
    assert store.get("Model", "default", "x") == current


def test_update_without_resource_version_overwrites(store: Store) -> None:
    store.create(model("x"))
    store.update(model("x", task="completion"))

    updated = store.update(model("x", task="embedding"))

    assert updated["spec"] == {"task": "embedding"}
    assert updated["metadata"]["generation"] == 3


def test_update_of_a_missing_object_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.update(model("ghost"))


def test_generation_is_bumped_only_by_spec_changes(store: Store) -> None:
    obj = store.create(model("x", labels={"a": "1"}))

    relabelled = store.update({**obj, "metadata": {**obj["metadata"], "labels": {"a": "2"}}})
    respecced = store.update({**relabelled, "spec": {"task": "embedding"}})
    extra_top_level = store.update({**respecced, "data": {"k": "v"}})

    assert relabelled["metadata"]["generation"] == 1
    assert int(relabelled["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])
    assert respecced["metadata"]["generation"] == 2
    assert extra_top_level["metadata"]["generation"] == 3


def test_update_ignores_status_and_keeps_server_owned_metadata(store: Store) -> None:
    obj = store.create(model("x"))
    with_status = store.update_status({**obj, "status": {"phase": "Ready"}})

    sent = {
        **with_status,
        "metadata": {**with_status["metadata"], "uid": "forged", "creationTimestamp": "1999"},
        "spec": {"task": "embedding"},
        "status": {"phase": "Broken"},
    }
    updated = store.update(sent)

    assert updated["status"] == {"phase": "Ready"}
    assert updated["metadata"]["uid"] == obj["metadata"]["uid"]
    assert updated["metadata"]["creationTimestamp"] == obj["metadata"]["creationTimestamp"]
    assert updated["spec"] == {"task": "embedding"}


def test_update_status_changes_only_status(store: Store) -> None:
    obj = store.create(model("x"))

    sent = {**obj, "spec": {"task": "embedding"}, "status": {"observedGeneration": 1}}
    updated = store.update_status(sent)

    assert updated["status"] == {"observedGeneration": 1}
    assert updated["spec"] == {"task": "chat"}
    assert updated["metadata"]["generation"] == 1
    assert int(updated["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])


def test_update_status_with_stale_resource_version_is_refused(store: Store) -> None:
    obj = store.create(model("x"))
    store.update_status({**obj, "status": {"phase": "A"}})

    with pytest.raises(Conflict):
        store.update_status({**obj, "status": {"phase": "B"}})

    assert store.get("Model", "default", "x")["status"] == {"phase": "A"}


def test_a_write_that_changes_nothing_is_not_a_write(store: Store) -> None:
    obj = store.create(model("x"))
    before = store.current_resource_version()

    again = store.update(obj)
    same_status = store.update_status({**obj, "status": None})

    assert again == obj
    assert same_status == obj
    assert store.current_resource_version() == before


# -- patch ----------------------------------------------------------------------------------


def test_merge_patch_merges_objects_replaces_lists_and_null_deletes(store: Store) -> None:
    store.create(
        {
            **model("x", labels={"a": "1", "b": "2"}),
            "spec": {"task": "chat", "versions": [{"name": "v1"}], "limits": {"rpm": 5, "tpm": 9}},
        }
    )

    patched = store.patch(
        "Model",
        "default",
        "x",
        {
            "metadata": {"labels": {"a": None, "c": "3"}},
            "spec": {"versions": [{"name": "v2"}], "limits": {"tpm": None}},
        },
    )

    assert patched["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert patched["spec"] == {"task": "chat", "versions": [{"name": "v2"}], "limits": {"rpm": 5}}
    assert patched["metadata"]["generation"] == 2


def test_patch_ignores_status_unless_it_is_a_status_patch(store: Store) -> None:
    store.create(model("x"))

    ignored = store.patch("Model", "default", "x", {"status": {"phase": "Ready"}})
    applied = store.patch(
        "Model",
        "default",
        "x",
        {"spec": {"task": "no"}, "status": {"phase": "Ready"}},
        subresource="status",
    )

    assert "status" not in ignored
    assert applied["status"] == {"phase": "Ready"}
    assert applied["spec"] == {"task": "chat"}


def test_patch_with_stale_resource_version_is_refused(store: Store) -> None:
    obj = store.create(model("x"))
    store.update({**obj, "spec": {"task": "embedding"}})

    with pytest.raises(Conflict) as err:
        store.patch(
            "Model",
            "default",
            "x",
            {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "spec": {"a": 1}},
        )
    assert "you sent resourceVersion" in err.value.message


@pytest.mark.parametrize(
    ("patch", "subresource", "says"),
    [
        ({"metadata": {"name": "other"}}, None, "cannot change"),
        ({"spec": {}}, "scale", "unknown subresource"),
    ],
)
def test_bad_patches_are_refused(
    store: Store, patch: dict, subresource: str | None, says: str
) -> None:
    store.create(model("x"))
    with pytest.raises(BadRequest) as err:
        store.patch("Model", "default", "x", patch, subresource=subresource)
    assert says in err.value.message


def test_patch_of_a_missing_object_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.patch("Model", "default", "ghost", {"spec": {}})


# -- delete and finalizers ------------------------------------------------------------------


def test_delete_removes_the_object(store: Store) -> None:
    store.create(model("x"))

    gone = store.delete("Model", "default", "x")

    assert gone["metadata"]["name"] == "x"
    assert int(gone["metadata"]["resourceVersion"]) == store.current_resource_version()
    with pytest.raises(NotFound):
        store.get("Model", "default", "x")


def test_delete_with_finalizers_waits_until_an_update_empties_them(store: Store) -> None:
    # given an object with a finalizer
    obj = model("x")
    obj["metadata"]["finalizers"] = ["modelplane.dev/cleanup"]
    store.create(obj)

    # when it is deleted, it is only marked
    marked = store.delete("Model", "default", "x")
    assert marked["metadata"]["deletionTimestamp"]
    assert store.get("Model", "default", "x") == marked
    # (deleting again changes nothing)
    assert store.delete("Model", "default", "x") == marked

    # and when the controller removes its finalizer, the object goes
    store.update({**marked, "metadata": {**marked["metadata"], "finalizers": []}})
    with pytest.raises(NotFound):
        store.get("Model", "default", "x")


def test_delete_with_stale_resource_version_is_refused(store: Store) -> None:
    obj = store.create(model("x"))
    store.update({**obj, "spec": {"task": "embedding"}})

    with pytest.raises(Conflict):
        store.delete("Model", "default", "x", resource_version=obj["metadata"]["resourceVersion"])

    assert store.get("Model", "default", "x")["spec"] == {"task": "embedding"}


def test_delete_with_the_current_resource_version_succeeds(store: Store) -> None:
    obj = store.create(model("x"))
    store.delete("Model", "default", "x", resource_version=obj["metadata"]["resourceVersion"])
    with pytest.raises(NotFound):
        store.get("Model", "default", "x")


def test_delete_of_a_missing_object_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.delete("Model", "default", "ghost")


def test_returned_objects_are_the_callers_to_change(store: Store) -> None:
    obj = model("x")
    created = store.create(obj)

    obj["spec"]["task"] = "mutated after create"
    created["spec"]["task"] = "mutated result"

    assert store.get("Model", "default", "x")["spec"] == {"task": "chat"}
