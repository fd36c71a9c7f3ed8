"""Kinds are found by any of their names; unknown ones are refused naming the known ones."""

from __future__ import annotations

import pytest

from modelplane import api
from modelplane.api import errors

from . import _objects


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("endpoints", "Endpoint"),
        ("ep", "Endpoint"),
        ("Endpoint", "Endpoint"),
        ("ENDPOINT", "Endpoint"),
        ("mdl", "Model"),
        ("models", "Model"),
        ("rc", "ResourceClaim"),
        ("resourceclaims", "ResourceClaim"),
        ("resourceslices.resource.k8s.io", "ResourceSlice"),
        ("deviceclass", "DeviceClass"),
        ("policies", "Policy"),
        ("no", "Node"),
        ("ev", "Event"),
        ("q", "Queue"),
        ("jobs", "Job"),
    ],
)
def test_lookup_finds_a_kind_by_kind_plural_singular_or_short_name(name: str, kind: str) -> None:
    assert api.lookup(name).kind == kind


def test_lookup_of_unknown_name_names_the_known_kinds_and_the_closest() -> None:
    with pytest.raises(errors.NotFound) as caught:
        api.lookup("endpoitns")
    assert "did you mean 'endpoints'" in caught.value.message
    assert "Endpoint" in caught.value.message and "ResourceSlice" in caught.value.message


def test_every_kind_is_listed_once_with_its_placement() -> None:
    infos = api.kinds()
    assert [i.kind for i in infos] == list(_objects.ALL)
    by_kind = {i.kind: i for i in infos}
    assert by_kind["Endpoint"].api_version == "modelplane.dev/v1alpha1"
    assert by_kind["ResourceSlice"].api_version == "resource.k8s.io/v1"
    assert by_kind["ResourceSlice"].also_accepted == ("modelplane.dev/v1alpha1",)
    assert not by_kind["Node"].namespaced and not by_kind["DeviceClass"].namespaced
    assert by_kind["ResourceClaim"].namespaced and by_kind["Event"].namespaced
    assert by_kind["Policy"].plural == "policies" and by_kind["Policy"].singular == "policy"
    assert by_kind["Model"].schema is api.Model


def test_kind_info_accepts_the_alternate_api_version_of_dra_kinds() -> None:
    assert api.kind_info("modelplane.dev/v1alpha1", "ResourceClaim").kind == "ResourceClaim"


def test_kind_info_refuses_a_wrong_api_version_naming_the_right_one() -> None:
    with pytest.raises(errors.Invalid) as caught:
        api.kind_info("v1", "Endpoint")
    (cause,) = caught.value.causes
    assert cause.field == "apiVersion"
    assert "'modelplane.dev/v1alpha1'" in cause.message


def test_kind_info_refuses_an_unknown_kind_listing_the_known_ones() -> None:
    with pytest.raises(errors.Invalid) as caught:
        api.kind_info("modelplane.dev/v1alpha1", "endpoint")
    (cause,) = caught.value.causes
    assert cause.field == "kind"
    assert "case-sensitive" in cause.message and "'Endpoint'" in cause.message
    assert "Model, Endpoint, Graph" in cause.message


@pytest.mark.parametrize("kind", list(_objects.ALL))
def test_every_column_of_every_kind_resolves_on_a_valid_object(kind: str) -> None:
    info = api.lookup(kind)
    obj = api.validate(_objects.ALL[kind]())
    obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    for header, path in info.columns:
        assert header.isupper()
        api.resolve(obj, path)  # must not raise, whatever the object holds


def test_resolve_walks_fields_indices_filters_and_dotted_keys() -> None:
    obj = {
        "metadata": {"labels": {"kubernetes.io/hostname": "n1"}},
        "spec": {"versions": [{"name": "v1"}, {"name": "v2"}], "flag": False},
        "status": {
            "conditions": [
                {"type": "Progressing", "status": "False"},
                {"type": "Ready", "status": "True"},
            ]
        },
    }
    assert api.resolve(obj, "status.conditions[type=Ready].status") == "True"
    assert api.resolve(obj, "spec.versions[-1].name") == "v2"
    assert api.resolve(obj, "spec.versions[0].name") == "v1"
    assert api.resolve(obj, "metadata.labels[kubernetes.io/hostname]") == "n1"
    assert api.resolve(obj, "spec.flag") is False
    assert api.resolve(obj, "status.conditions[type=Healthy].status") is None
    assert api.resolve(obj, "spec.versions[5].name") is None
    assert api.resolve(obj, "spec.missing.deeper") is None
    assert api.resolve(obj, "spec.versions.name") is None
