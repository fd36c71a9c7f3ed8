"""Schemathesis over every operation of a real `modelplane up`'s own ``/openapi.json``.

Valid and invalid requests (positive and negative generation) go to every route the document
describes, `/apis`, `/v1` and `/agents` alike, with a bearer token (auth is on). No answer may be a
5xx, and every answer must match the schema the document gives for its status code. Runs are
derandomized (the same requests each time), bounded per operation (:data:`EXAMPLES` per mode) and
in total (:data:`BUDGET_S`); every request has a timeout, and a watch is asked to end after a
second, so nothing can hang.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from tests.e2e._proc import UpProcess

pytestmark = pytest.mark.slow

TOKEN = "fuzz-token-7f3a"
#: examples per operation and generation mode
EXAMPLES = 6
#: the whole run may take this long; past it the test fails instead of running on
BUDGET_S = 420.0
#: one request may take this long (a future resourceVersion waits 3 s before its 504)
REQUEST_TIMEOUT_S = 15.0
CHECKS = [not_a_server_error, response_schema_conformance]
WATCH_TYPE = "application/json;stream=watch"
WATCH_EVENTS = ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    home = tmp_path_factory.mktemp("fuzz")
    tokens = home / "tokens"
    tokens.write_text(f"{TOKEN},fuzzer,uid-1,modelplane:namespace:default\n")
    proc = UpProcess(home / "home", extra=["--token-file", str(tokens)]).start()
    try:
        yield proc
    finally:
        proc.stop()


def _check_events(stream: bytes) -> None:
    """Each line of a watch stream is a WatchEvent: ``{"type": ..., "object": {...}}``."""
    for line in stream.splitlines():
        event = json.loads(line)
        assert event["type"] in WATCH_EVENTS and isinstance(event["object"], dict), event


def _prepared(case: Any, mode: GenerationMode) -> None:
    """A watch streams until told to stop: ask every one to end after a second. A valid body
    names the namespace and name of its URL (a create, one of a few fixed names), so that some
    creates and replaces get through to the store and later requests find objects."""
    query = case.query
    if isinstance(query, dict) and str(query.get("watch", "")).lower() in ("true", "1"):
        query["timeoutSeconds"] = 1
    body, path = case.body, case.path_parameters or {}
    if mode is GenerationMode.POSITIVE and isinstance(body, dict):
        metadata = body.get("metadata")
        if isinstance(metadata, dict):
            metadata.pop("namespace", None)
            metadata["name"] = path.get("name", f"fuzz-{len(str(body)) % 7}")
            if "namespace" in path:
                metadata["namespace"] = path["namespace"]


def _fuzz(
    operation: Any, mode: GenerationMode, base_url: str, deadline: float
) -> Callable[[], None]:
    headers = {"Authorization": f"Bearer {TOKEN}"}

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if time.monotonic() > deadline:
            pytest.fail(f"the fuzz run took longer than {BUDGET_S} s; lower EXAMPLES")
        _prepared(case, mode)
        response = case.call(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S)
        content_type = {k.lower(): v for k, v in response.headers.items()}.get("content-type")
        if content_type and content_type[0].startswith(WATCH_TYPE):
            # a stream of events, one JSON object a line, is no single JSON document
            case.validate_response(response, checks=[not_a_server_error])
            _check_events(response.content)
        else:
            case.validate_response(response, checks=CHECKS)

    return run


def test_every_operation_answers_without_5xx_and_as_its_schema_says(up: UpProcess) -> None:
    # given the document the server publishes about itself
    schema = schemathesis.openapi.from_url(
        f"{up.url}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    # it describes the OpenAI-compatible gateway and the agent runtime too
    assert "POST /v1/completions" in labels and "POST /v1/embeddings" in labels
    assert "GET /agents/{namespace}/{agent}/instances/{id}/journal" in labels
    assert "GET /healthz" in labels and "GET /version" in labels
    deadline = time.monotonic() + BUDGET_S
    failures: list[str] = []
    # when every operation gets valid and invalid requests
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, up.url, deadline)()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to get wrong
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    # then none failed a check (each entry names the request that did, to reproduce it)
    assert not failures, f"{len(failures)} operations failed:\n" + "\n\n".join(failures)
    assert "Traceback" not in Path(up.log).read_text()
