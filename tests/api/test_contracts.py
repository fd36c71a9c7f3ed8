"""The contracts several packages share live once, in ``modelplane.api``, and every package reads
them from there: the OpenAI error shape, the JSON-object request body, quantities, our label and
annotation names, the routing policies and the metadata the server owns."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import get_args

import orjson
import pytest

from modelplane import api, gateway, scheduling, serving
from modelplane.api import errors
from modelplane.api._endpoint import Routing
from modelplane.store import open_store


def test_the_scheduler_parses_quantities_with_the_api_parser() -> None:
    # given the parser the scheduler uses, when it reads a quantity, then it is the API's exact one
    assert scheduling.parse_quantity is api.parse_quantity
    assert scheduling.QuantityError is api.QuantityError
    assert api.parse_quantity("500m") == Fraction(1, 2)
    assert api.format_quantity(Fraction(80 * 2**30)) == "80Gi"


def test_a_quantity_with_a_huge_exponent_is_refused_by_the_scheduler_too() -> None:
    # the scheduler's own parser used to compute 10**999999 for this before answering
    with pytest.raises(scheduling.QuantityError, match="exponent"):
        scheduling.parse_quantity("1e999")


def test_an_openai_error_has_the_four_fields_clients_read() -> None:
    body = orjson.loads(
        api.openai_error_body("no such model", code="model_not_found", param="model")
    )
    assert body == {
        "error": {
            "message": "no such model",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


def test_a_stream_that_fails_ends_with_the_error_then_done() -> None:
    event = api.openai_stream_error("the replica went away", "upstream_error", code="x")
    first, second, rest = event.split(b"\n\n")
    assert orjson.loads(first.removeprefix(b"data: "))["error"]["code"] == "x"
    assert second == b"data: [DONE]" and rest == b""


def test_gateway_error_bodies_are_built_by_the_shared_builder() -> None:
    error = gateway.GatewayError(404, "no model x", code="model_not_found", param="model")
    assert error.body() == api.openai_error_body(
        "no model x", code="model_not_found", param="model"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "the request body is not JSON"),
        (b"[1, 2]", "the request body must be a JSON object"),
        (b"", "the request body is not JSON"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_bad_request(raw: bytes, message: str) -> None:
    with pytest.raises(errors.BadRequest, match=message):
        api.json_object(raw)


def test_an_empty_body_is_an_empty_object_where_every_field_is_optional() -> None:
    assert api.json_object(b"  ", empty_is_object=True) == {}
    assert api.json_object(b'{"a": 1}', empty_is_object=True) == {"a": 1}


def test_a_body_over_the_limit_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(errors.RequestEntityTooLarge, match="limit is 4"):
        api.json_object(b"{not json at all}", limit=4)


def test_the_routing_policies_an_endpoint_may_name_are_the_ones_the_gateway_routes_by() -> None:
    field = Routing.model_fields["policy"].annotation
    assert get_args(field) == api.ROUTING_POLICIES == gateway.POLICIES
    assert set(api.PREFIX_POLICIES) <= set(api.ROUTING_POLICIES)
    assert set(api.SCRAPED_POLICIES) <= set(api.ROUTING_POLICIES)


def test_the_annotations_packages_re_export_are_the_api_names() -> None:
    assert gateway.DEMAND_ANNOTATION is api.DEMAND_ANNOTATION == serving.DEMAND_ANNOTATION
    assert serving.SIMULATED_LABEL == api.SIMULATED_LABEL
    assert api.TOPOLOGY_LABELS["host"] == api.HOSTNAME_LABEL


def test_server_owned_metadata_a_client_sends_is_replaced_by_the_store(tmp_path: Path) -> None:
    # given a dumped object that still carries every server-owned field
    store = open_store(f"sqlite:///{tmp_path}/store.db")
    sent = {
        "apiVersion": "modelplane.dev/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "m", "namespace": "default", **dict.fromkeys(api.SERVER_OWNED, "7")},
        "spec": {"task": "chat"},
    }
    # when it is created, then none of the values it sent for them is kept
    try:
        stored = store.create(sent)
    finally:
        store.close()
    assert all(stored["metadata"].get(key) != "7" for key in api.SERVER_OWNED)
