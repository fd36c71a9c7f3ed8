"""Escape probes: every attempt out of either sandbox is denied; a grant opens exactly one door."""

from __future__ import annotations

import socket

import pytest

from modelplane.sandbox import ProcessGrants, ProcessSandbox, WasmRuntime
from modelplane.sandbox.probes import PROCESS_PROBES, run_escape_probes, run_process_probe


@pytest.mark.parametrize("name", sorted(PROCESS_PROBES))
def test_process_probe_is_denied(sandbox: ProcessSandbox, name: str) -> None:
    result = run_process_probe(sandbox, name)
    assert result.denied, result.detail


def test_every_probe_of_the_suite_is_denied(sandbox: ProcessSandbox) -> None:
    results = run_escape_probes(sandbox, WasmRuntime())
    assert len(results) >= 15
    assert [r.name for r in results if not r.denied] == []


def test_granted_network_reaches_the_host_and_the_denial_was_the_sandbox(
    sandbox: ProcessSandbox,
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        denied = run_process_probe(sandbox, "network_loopback_of_host", port=port)
        granted = run_process_probe(
            sandbox, "network_loopback_of_host", port=port, grants=ProcessGrants(network=True)
        )
    assert denied.denied, denied.detail
    assert not granted.denied and "connected" in granted.detail
