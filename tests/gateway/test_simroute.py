"""The routing simulator: vLLM-like replicas driven by the gateway's real Router."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from modelplane.cli import cli
from modelplane.sim import (
    ReplicaModel,
    TraceError,
    TraceRequest,
    generate_trace,
    parse_trace,
    simulate_routing,
)

REQUIRED = (
    "ttft_p50_s",
    "ttft_p90_s",
    "ttft_p99_s",
    "throughput_tokens_s",
    "success_rate",
    "cache_hit_rate",
)


def _same_prefix(n: int, gap_s: float, prefix_tokens: int = 1000) -> list[TraceRequest]:
    return [TraceRequest(i * gap_s, "sys", prefix_tokens, 40, 10, f"u{i}") for i in range(n)]


def test_every_request_completes_or_is_counted_failed_under_overload() -> None:
    # given far more load than two small replicas can take, and a short patience
    trace = generate_trace("shared-prefix", rate=200, duration_s=10, seed=3)
    model = ReplicaModel(kv_blocks=600)  # some prompts + answers (up to 266 blocks) barely fit
    # when
    result = simulate_routing(
        trace, replicas=2, policy="round-robin", model=model, queue_timeout_s=2.0
    )
    # then nothing is lost: each request either finished or failed
    assert result["failed"] > 0
    assert result["completed"] + result["failed"] == result["requests"] == len(trace)
    assert result["success_rate"] == round(result["completed"] / len(trace), 4)


def test_a_request_that_can_never_fit_in_the_kv_cache_fails() -> None:
    trace = [TraceRequest(0.0, "big", 4000, 0, 10), TraceRequest(0.1, "small", 100, 0, 10)]
    result = simulate_routing(
        trace, replicas=1, policy="round-robin", model=ReplicaModel(kv_blocks=100), per_request=True
    )
    assert [d["ok"] for d in result["requests_detail"]] == [False, True]


def test_a_resident_prefix_is_a_cache_hit_of_its_whole_blocks() -> None:
    # given two requests with one 1,000-token prefix, the second after the first finished
    trace = _same_prefix(2, gap_s=5.0)
    # when
    result = simulate_routing(trace, replicas=1, policy="round-robin", per_request=True)
    first, second = result["requests_detail"]
    # then the first computes everything, the second only what lies past the 62 whole blocks
    assert first["hit_tokens"] == 0 and first["uncached_tokens"] == 1040
    assert second["hit_tokens"] == 62 * 16
    assert second["uncached_tokens"] == 1040 - 992
    assert result["cache_hit_rate"] == round(992 / 2080, 4)


def test_eviction_takes_an_idle_prefix_from_its_tail_so_its_head_still_hits() -> None:
    # given 80 blocks for two 50-block prefixes (+1 block each of their own): a, b, then a again
    trace = [
        TraceRequest(0.0, "a", 800, 0, 5),
        TraceRequest(5.0, "b", 800, 0, 5),
        TraceRequest(10.0, "a", 800, 0, 5),
    ]
    result = simulate_routing(
        trace, replicas=1, policy="round-robin", model=ReplicaModel(kv_blocks=80), per_request=True
    )
    # then b evicted a's last 21 blocks; a's leading 29 still hit
    assert [d["hit_tokens"] for d in result["requests_detail"]] == [0, 0, 29 * 16]
    assert result["success_rate"] == 1.0


def test_a_full_kv_cache_queues_requests_until_blocks_free() -> None:
    # given room for one sequence at a time, three at once
    trace = [TraceRequest(0.0, f"p{i}", 600, 0, 50) for i in range(3)]
    result = simulate_routing(
        trace, replicas=1, policy="round-robin", model=ReplicaModel(kv_blocks=45), per_request=True
    )
    ttfts = [d["ttft_s"] for d in result["requests_detail"]]
    # then all complete, one after another: each waits for the previous 50-token answer
    assert result["success_rate"] == 1.0 and result["max_queue"] == 3
    assert ttfts[0] < 0.1 < ttfts[1] < ttfts[2]


def test_ttft_is_never_below_the_prefill_time_of_uncached_tokens() -> None:
    model = ReplicaModel()
    trace = generate_trace("multi-round", rate=40, duration_s=60, seed=5)
    result = simulate_routing(
        trace, replicas=3, policy="prefix-load", model=model, per_request=True
    )
    served = [d for d in result["requests_detail"] if d["ok"]]
    assert served and any(d["hit_tokens"] for d in served)
    for d in served:
        assert d["ttft_s"] >= d["uncached_tokens"] * model.prefill_per_token_s + model.step_base_s


def test_the_same_trace_policy_and_seed_give_the_same_figures() -> None:
    trace = generate_trace("hot-prefix", rate=80, duration_s=20, seed=9)
    a = simulate_routing(trace, replicas=4, policy="prefix-load", seed=2)
    b = simulate_routing(trace, replicas=4, policy="prefix-load", seed=2)
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b
    assert generate_trace("hot-prefix", rate=80, duration_s=20, seed=9) == trace


def test_prefix_load_beats_round_robin_on_ttft_p90_with_shared_prefixes() -> None:
    # given many tenants sharing long prompts, offered more than round-robin can prefill
    trace = generate_trace("shared-prefix", rate=100, duration_s=30, seed=1)
    # when
    rr = simulate_routing(trace, replicas=10, policy="round-robin", seed=1)
    pl = simulate_routing(trace, replicas=10, policy="prefix-load", seed=1)
    # then prefix+load routing hits the cache more and answers first tokens sooner
    assert pl["cache_hit_rate"] > rr["cache_hit_rate"]
    assert pl["ttft_p90_s"] * 2 < rr["ttft_p90_s"]


def test_prefix_cache_piles_a_hot_prefix_onto_one_replica_and_prefix_load_spreads_it() -> None:
    trace = generate_trace("hot-prefix", rate=150, duration_s=20, seed=1)
    pc = simulate_routing(trace, replicas=10, policy="prefix-cache", seed=1)
    pl = simulate_routing(trace, replicas=10, policy="prefix-load", seed=1)
    # prefix-cache sends nearly everything to the replica holding the hot prefix; prefix-load keeps
    # some affinity (the busiest replica stays well under 2x the mean) and answers every request
    assert pc["load_spread"] > 5.0
    assert pl["load_spread"] < 2.0 and pl["success_rate"] == 1.0


def test_bad_trace_lines_name_the_line_and_the_field() -> None:
    with pytest.raises(TraceError, match=r"t.jsonl:2: output_tokens"):
        parse_trace(
            [
                '{"arrival": 0, "prefix_tokens": 5, "output_tokens": 1}',
                '{"arrival": 1, "prefix_tokens": 5, "output_tokens": 0}',
            ],
            "t.jsonl",
        )
    with pytest.raises(TraceError, match=r"t.jsonl:1: not JSON"):
        parse_trace(["{"], "t.jsonl")


def test_cli_sim_route_prints_one_json_object_with_the_metrics(tmp_path: Path) -> None:
    # given a generated trace in a file
    runner = CliRunner()
    generated = runner.invoke(
        cli, ["sim", "route", "--generate", "shared-prefix", "--rate", "20", "--duration", "5"]
    )
    assert generated.exit_code == 0, generated.output
    path = tmp_path / "trace.jsonl"
    path.write_text(generated.stdout)
    # when
    result = runner.invoke(
        cli,
        [
            "sim",
            "route",
            "--trace",
            str(path),
            "--replicas",
            "3",
            "--policy",
            "prefix-load",
            "-o",
            "json",
        ],
    )
    # then
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    figures = orjson.loads(lines[0])
    assert all(key in figures for key in REQUIRED)
    assert figures["requests"] == len(generated.stdout.strip().splitlines())


def test_cli_sim_route_rejects_a_bad_trace_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"arrival": "soon", "prefix_tokens": 5, "output_tokens": 3}\n')
    result = CliRunner().invoke(cli, ["sim", "route", "--trace", str(path)])
    assert result.exit_code != 0
    assert "bad.jsonl:1: arrival" in result.output
    assert "Traceback" not in result.output
