"""The store contract for lists, on every backend: order, namespaces, selectors, paging."""

from __future__ import annotations

import pytest
from store_helpers import model

from modelplane.api.errors import BadRequest, Expired
from modelplane.store import Store


def names(items: list[dict]) -> list[str]:
    return [f"{o['metadata'].get('namespace', '')}/{o['metadata']['name']}" for o in items]


def test_list_is_ordered_by_namespace_then_name(store: Store) -> None:
    for ns, name in [("b", "z"), ("a", "y"), ("b", "a"), ("a", "b")]:
        store.create(model(name, ns))
    store.create({**model("other", "a"), "kind": "Endpoint"})

    assert names(store.list("Model").items) == ["a/b", "a/y", "b/a", "b/z"]
    assert names(store.list("Model", "b").items) == ["b/a", "b/z"]
    assert store.list("Model", "c").items == []


def test_list_reports_the_current_version(store: Store) -> None:
    store.create(model("x"))
    listed = store.list("Model")
    assert listed.resource_version == store.current_resource_version()
    assert listed.continue_token is None


@pytest.fixture
def labelled(store: Store) -> Store:
    for name, labels in {
        "a": {"env": "prod", "tier": "gpu"},
        "b": {"env": "dev", "tier": "gpu"},
        "c": {"env": "prod"},
        "d": {"replicas": "3"},
        "e": {},
    }.items():
        store.create(model(name, labels=labels))
    return store


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", "abcde"),
        ("env=prod", "ac"),
        ("env==prod", "ac"),
        ("env!=prod", "bde"),
        ("env in (prod, dev)", "abc"),
        ("env notin (prod)", "bde"),
        ("tier", "ab"),
        ("!tier", "cde"),
        ("env=prod,tier", "a"),
        ("env = prod , !tier", "c"),
        ("replicas>2", "d"),
        ("replicas<3", ""),
        ("example.com/owner", ""),
    ],
)
def test_label_selector(labelled: Store, selector: str, expected: str) -> None:
    got = [o["metadata"]["name"] for o in labelled.list("Model", label_selector=selector).items]
    assert "".join(got) == expected


@pytest.mark.parametrize(
    "selector",
    ["env in prod", "env in (a,", "=prod", "env=pr od", "-bad=x", "a=b=c", "env notin ()x", "x>y"],
)
def test_malformed_label_selector_is_a_bad_request(labelled: Store, selector: str) -> None:
    with pytest.raises(BadRequest) as err:
        labelled.list("Model", label_selector=selector)
    assert "label selector" in err.value.message
    assert "key=value" in err.value.message  # says what is accepted


def test_an_empty_label_value_selects_empty_labels(store: Store) -> None:
    # as in Kubernetes, "env=" is legal and matches a label whose value is the empty string
    store.create(model("empty", labels={"env": ""}))
    store.create(model("full", labels={"env": "prod"}))
    got = store.list("Model", label_selector="env=").items
    assert [o["metadata"]["name"] for o in got] == ["empty"]


def test_field_selectors_on_name_and_namespace(store: Store) -> None:
    for ns, name in [("a", "x"), ("a", "y"), ("b", "x")]:
        store.create(model(name, ns))

    by_name = store.list("Model", field_selector="metadata.name=x")
    not_a = store.list("Model", field_selector="metadata.namespace!=a")
    both = store.list("Model", field_selector="metadata.name==x,metadata.namespace=a")

    assert names(by_name.items) == ["a/x", "b/x"]
    assert names(not_a.items) == ["b/x"]
    assert names(both.items) == ["a/x"]
    with pytest.raises(BadRequest, match=r"metadata\.name"):
        store.list("Model", field_selector="spec.task=chat")


def test_paging_returns_every_object_once_in_order(store: Store) -> None:
    # given 7 objects
    for i in range(7):
        store.create(model(f"m{i}", "ns" if i % 2 else "default"))
    expected = names(store.list("Model").items)

    # when listed 3 at a time while a change happens between pages
    pages = [store.list("Model", limit=3)]
    first_rv = pages[0].resource_version
    store.update(model("m6", task="changed"))
    while pages[-1].continue_token:
        pages.append(store.list("Model", limit=3, continue_token=pages[-1].continue_token))

    # then every object came exactly once, in order, and every page reports the first version
    assert [len(p.items) for p in pages] == [3, 3, 1]
    assert [n for p in pages for n in names(p.items)] == expected
    assert {p.resource_version for p in pages} == {first_rv}


def test_paging_with_a_label_selector_fills_pages_with_matches(labelled: Store) -> None:
    first = labelled.list("Model", label_selector="env", limit=2)
    rest = labelled.list(
        "Model", label_selector="env", limit=2, continue_token=first.continue_token
    )

    assert [o["metadata"]["name"] for o in first.items] == ["a", "b"]
    assert [o["metadata"]["name"] for o in rest.items] == ["c"]
    assert rest.continue_token is None


@pytest.mark.parametrize("token", ["garbage", "eyJ2IjoxfQ", "!!!"])
def test_an_invalid_continue_token_is_a_bad_request(store: Store, token: str) -> None:
    with pytest.raises(BadRequest, match="continue token"):
        store.list("Model", limit=1, continue_token=token)


def test_a_continue_token_of_another_list_is_a_bad_request(store: Store) -> None:
    store.create(model("a"))
    store.create(model("b"))
    token = store.list("Model", limit=1).continue_token
    assert token is not None
    with pytest.raises(BadRequest, match="belongs to a list of Model"):
        store.list("Endpoint", limit=1, continue_token=token)


def test_a_continue_token_older_than_history_is_expired(store: Store) -> None:
    for name in "abc":
        store.create(model(name))
    token = store.list("Model", limit=1).continue_token
    assert token is not None
    store.update(model("a", task="x"))

    store.compact(0)

    with pytest.raises(Expired, match="list again"):
        store.list("Model", limit=1, continue_token=token)


def test_negative_limit_is_a_bad_request(store: Store) -> None:
    with pytest.raises(BadRequest, match="limit"):
        store.list("Model", limit=-1)
