"""Admission Policies see Relationship parents, over a real server, and follow their changes."""

from __future__ import annotations

from tests.control._wait import wait_until

from .test_admission import Api, _endpoint, _policy, _url, api  # noqa: F401 (the fixture)

TENANTS_ONLY = """
@id("members-only")
@reason("only members of team-a write there")
forbid(principal, action in [Action::"create", Action::"update", Action::"delete"], resource)
when { resource is Endpoint && resource.namespace == "team-a" } unless { principal in Namespace::"team-a" };
"""
MEMBER = {
    "apiVersion": "modelplane.dev/v1alpha1",
    "kind": "Relationship",
    "metadata": {"name": "alice-in-team-a", "namespace": "team-a"},
    "spec": {
        "subject": {"kind": "User", "name": "alice"},
        "relation": "member-of",
        "object": {"kind": "Namespace", "name": "team-a"},
    },
}


CAROL_MEMBER = {
    **MEMBER,
    "metadata": {"name": "carol-in-team-a", "namespace": "team-a"},
    "spec": {**MEMBER["spec"], "subject": {"kind": "User", "name": "carol"}},  # type: ignore[dict-item]
}


def test_a_relationship_makes_a_user_a_member_for_admission_policies(api: Api) -> None:  # noqa: F811
    # given a cluster-wide Policy letting only members of team-a write there
    wide = _policy("members", TENANTS_ONLY, namespace="modelplane-system")
    assert (
        api.admin.post(_url("policies", namespace="modelplane-system"), json=wide).status_code
        == 201
    )
    # when carol (a member of no namespace by her token) creates an Endpoint in team-a
    refused = api.outsider.post(_url("endpoints"), json=_endpoint("chat", 1))
    # then she is refused (by tenancy: not a member)
    assert refused.status_code == 403, refused.text
    # and a tenant cannot make herself a member: Relationships are operator-owned
    assert api.outsider.post(_url("relationships"), json=CAROL_MEMBER).status_code == 403
    # when an administrator relates her to team-a
    assert api.admin.post(_url("relationships"), json=CAROL_MEMBER).status_code == 201
    # then her write is admitted once the change is seen (recomputed on the change)
    wait_until(
        lambda: api.outsider.post(_url("endpoints"), json=_endpoint("chat", 1)).status_code == 201,
        what="the Relationship to be followed",
    )
    # and after the Relationship is deleted she is refused again
    assert api.admin.delete(_url("relationships", "carol-in-team-a")).status_code == 200
    wait_until(
        lambda: api.outsider.delete(_url("endpoints", "chat")).status_code == 403,
        what="the deletion to be followed",
    )


def _owner(namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Relationship",
        "metadata": {"name": f"alice-owns-{namespace}", "namespace": "modelplane-system"},
        "spec": {
            "subject": {"kind": "User", "name": "alice"},
            "relation": "owner-of",
            "object": {"kind": "Namespace", "name": namespace},
        },
    }


def test_the_owner_of_a_namespace_writes_its_relationships_and_no_others(api: Api) -> None:  # noqa: F811
    # given alice may not write Relationships
    assert api.tenant.post(_url("relationships"), json=MEMBER).status_code == 403
    # when an administrator makes her owner of team-a
    owner = _owner("team-a")
    assert (
        api.admin.post(_url("relationships", namespace="modelplane-system"), json=owner).status_code
        == 201
    )
    # then she relates within team-a (once the change is seen)
    wait_until(
        lambda: api.tenant.post(_url("relationships"), json=MEMBER).status_code == 201,
        what="the ownership to be followed",
    )
    # but not in team-b, nor cluster-wide in modelplane-system
    other = {**MEMBER, "metadata": {"name": "x", "namespace": "team-b"}}
    assert api.tenant.post(_url("relationships", namespace="team-b"), json=other).status_code == 403
    wide = {**MEMBER, "metadata": {"name": "x", "namespace": "modelplane-system"}}
    refused = api.tenant.post(_url("relationships", namespace="modelplane-system"), json=wide)
    assert refused.status_code == 403
    assert "operator-owned" in refused.json()["message"]
