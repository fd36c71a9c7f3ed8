"""Policy benchmark: Cedar decisions in-process, beside the naive use of cedarpy as the baseline.

The world: 100 policies (per-namespace tenancy rules on ``list``/``get``, guardrails on writes,
rules on ``model.call``), and 10,000 entities (users, groups nested three deep, namespaces)
made of ``Relationship`` tuples resolved by :class:`~modelplane.policy.Relations`. It measures:

* ``decision`` — p50/p99 of one :meth:`PolicySet.decide` (policies parsed once, the principal's
  entities with their relationship parents cached per principal) over varied principals,
  actions and objects, each asked once; ``decision_repeated``, the same requests asked again
  (Cedar's parsed entities are reused); and ``naive``, the baseline in the same run: ``cedarpy.is_authorized``
  given the policy text (parsed on every call) and the entity list, as a first integration
  would write it. ``speedup`` is naive over ours;
* ``where_the_time_goes`` — the parts of one decision: building the resource entity, the
  principal's entities (cached, and rebuilt from the tuples), serialising the entities to JSON,
  and cedarpy's own call with 1, 10 and 100 policies (native evaluation);
* ``decisions_per_s_per_core`` — decisions of one thread per second of its CPU time (on a busy
  machine the wall-clock rate, also given, counts what other programs take);
* ``admission`` — updates/s on a SQLite store, each update passing
  :meth:`Admission.admit` with the 100 policies as admission Policies, against the same updates
  without any Policy (the baseline; ``overhead`` is the share of updates/s lost);
* ``list_filter`` — filtering 10,000 objects in 50 namespaces for a ``list``: one decision per
  object, against one decision per namespace (the tenancy rules decide on the namespace alone;
  the benchmark checks that both keep the same objects).

Progress goes to stderr; the last stdout line is one JSON object with the figures, the goals and
whether each was met.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import cedarpy
import orjson

from modelplane import api
from modelplane.api import Principal
from modelplane.bench._figures import parse_sized, percentile, print_summary, progress
from modelplane.policy import (
    Admission,
    PolicySet,
    Relations,
    compile_policy,
    principal_entities,
    resource_entity,
)
from modelplane.store import JSON, open_store

GOALS = {"decision_p99_us": 50.0, "decisions_per_s_per_core": 20_000.0, "admission_overhead": 0.05}
NAMESPACES = 50
#: requests asked twice for ``decision_repeated``: fewer than the parsed entity sets kept (4096)
REPEATED = 2_000
GROUP = "modelplane.dev/v1alpha1"


_log = progress("policy")


# -- the world ------------------------------------------------------------------------------------


def policy_texts(count: int = 100) -> list[str]:
    """``count`` Cedar statements: tenancy per namespace, write guardrails, model-call rules."""
    texts: list[str] = []
    for i in range(count):
        ns = f"ns-{i % NAMESPACES}"
        match i % 4:
            case 0 | 1:
                texts.append(
                    f'@reason("only members of {ns} read it")\n'
                    'forbid(principal, action in [Action::"list", Action::"get"], resource)\n'
                    f'when {{ resource.namespace == "{ns}" }} unless {{ principal in'
                    f' Namespace::"{ns}" }};'
                )
            case 2:
                texts.append(
                    f'@reason("at most {i} replicas in {ns}")\n'
                    'forbid(principal, action in [Action::"create", Action::"update"], resource)\n'
                    f'when {{ resource.namespace == "{ns}" && resource.spec has replicas &&'
                    f" resource.spec.replicas.max > {i} }};"
                )
            case _:
                texts.append(
                    f'@reason("{ns} models are called by their users")\n'
                    'forbid(principal, action == Action::"model.call", resource)\n'
                    f'when {{ resource.namespace == "{ns}" }} unless {{ principal in resource }};'
                )
    return texts


def _relationship(i: int, subject: JSON, relation: str, obj: JSON) -> JSON:
    return {
        "apiVersion": GROUP,
        "kind": "Relationship",
        "metadata": {"name": f"r{i}", "namespace": "modelplane-system"},
        "spec": {"subject": subject, "relation": relation, "object": obj},
    }


def relationships(entities: int = 10_000) -> list[JSON]:
    """Tuples making ``entities`` entities: users in leaf groups, leaf groups in team groups,
    team groups in department groups, each group a member of a namespace."""
    groups = max(entities // 10, 12)
    users = entities - groups - NAMESPACES
    out: list[JSON] = []
    for u in range(users):
        leaf = f"g{groups // 3 + u % (groups - groups // 3)}"
        out.append(_relationship(len(out), _user(f"u{u}"), "member-of", _group(leaf)))
    for g in range(groups):
        parent = g // 3 if g else None  # a tree: g -> g//3, three levels and more
        if parent is not None and parent != g:
            out.append(_relationship(len(out), _group(f"g{g}"), "member-of", _group(f"g{parent}")))
        ns = {"kind": "Namespace", "name": f"ns-{g % NAMESPACES}"}
        out.append(_relationship(len(out), _group(f"g{g}"), "member-of", ns))
    return out


def _user(name: str) -> JSON:
    return {"kind": "User", "name": name}


def _group(name: str) -> JSON:
    return {"kind": "Group", "name": name}


def endpoint(i: int, namespace: str | None = None) -> JSON:
    return {
        "apiVersion": GROUP,
        "kind": "Endpoint",
        "metadata": {"name": f"ep-{i}", "namespace": namespace or f"ns-{i % NAMESPACES}"},
        "spec": {"model": "llama", "replicas": {"min": 1, "max": 1 + i % 5}},
    }


# -- measurements -----------------------------------------------------------------------------------


def _percentiles_us(samples: list[float]) -> dict[str, float]:
    return {
        "p50_us": round(percentile(samples, 0.5) * 1e6, 1),
        "p99_us": round(percentile(samples, 0.99) * 1e6, 1),
    }


def _timed(calls: Sequence[Callable[[], object]]) -> list[float]:
    samples = []
    for call in calls:
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def _requests(count: int, users: int, seed: int = 7) -> list[tuple[Principal, str, JSON]]:
    rng = random.Random(seed)
    verbs = ("get", "list", "update", "model.call")
    return [
        (Principal(f"u{rng.randrange(users)}"), verbs[k % 4], endpoint(rng.randrange(10_000)))
        for k in range(count)
    ]


def measure_decisions(
    policies: PolicySet, texts: list[str], relations: Relations, samples: int, users: int
) -> JSON:
    """Ours and the naive baseline on the same requests; both must agree."""
    requests = _requests(samples, users)
    for principal, _, _ in requests:  # warm the per-principal cache, as a running server has
        relations.principal_entities(principal)
    calls = [partial(policies.decide, p, v, o, relations=relations) for p, v, o in requests]
    ours = _timed(calls)
    # the same requests again (as many as the reuse keeps): Cedar's parsed entities are reused
    again = calls[:REPEATED]
    repeated = _timed(again * 2)[len(again) :]
    text = "\n".join(texts) + "\npermit(principal, action, resource);"
    naive_requests = requests[: max(20, samples // 20)]
    naive = _timed([partial(_naive, text, relations, p, v, o) for p, v, o in naive_requests])
    agree = all(
        policies.decide(p, v, o, relations=relations).allowed == _naive(text, relations, p, v, o)
        for p, v, o in naive_requests
    )
    mine, base = _percentiles_us(ours), _percentiles_us(naive)
    return {
        "decision": mine,
        "decision_repeated": _percentiles_us(repeated),
        "naive": {**base, "samples": len(naive)},
        "speedup_p50": round(base["p50_us"] / mine["p50_us"], 1),
        "same_decisions": agree,
        "allowed_share": round(
            sum(policies.decide(p, v, o, relations=relations).allowed for p, v, o in requests[:200])
            / min(200, len(requests)),
            2,
        ),
    }


def _naive(text: str, relations: Relations, principal: Principal, verb: str, obj: JSON) -> bool:
    resource, entity = resource_entity(obj)
    parents = relations.graph.principal_parents(principal)
    people = principal_entities(principal)
    people[0]["parents"] += [{"type": t, "id": i} for t, i in sorted(parents)]
    request = {
        "principal": {"type": "User", "id": principal.name},
        "action": {"type": "Action", "id": verb},
        "resource": resource,
        "context": {},
    }
    return bool(cedarpy.is_authorized(request, text, [*people, entity]).allowed)


def where_the_time_goes(texts: list[str], relations: Relations, rounds: int) -> JSON:
    """Median microseconds of each part of a decision."""
    principal, obj = Principal("u1"), endpoint(3)
    _, entity = resource_entity(obj)
    entities = [*relations.principal_entities(principal), entity]
    request = {
        "principal": {"type": "User", "id": principal.name},
        "action": {"type": "Action", "id": "get"},
        "resource": resource_entity(obj)[0],
        "context": {},
    }

    def median_us(call: Callable[[], object]) -> float:
        return round(statistics.median(_timed([call] * rounds)) * 1e6, 1)

    parts = {
        "resource_entity_us": median_us(lambda: resource_entity(obj)),
        "principal_entities_cached_us": median_us(lambda: relations.principal_entities(principal)),
        "principal_parents_rebuilt_us": median_us(
            lambda: relations.graph.principal_parents(principal)
        ),
        "entities_json_stdlib_us": median_us(lambda: json.dumps(entities)),
        "entities_json_orjson_us": median_us(lambda: orjson.dumps(entities)),
    }
    handle = cedarpy.Entities.from_json_str(json.dumps(entities))
    for count in (1, 10, 100):
        parsed = cedarpy.PolicySet.from_str(
            "\n".join(texts[:count]) + "\npermit(principal, action, resource);"
        )
        parts[f"cedar_call_{count}_policies_us"] = median_us(
            partial(cedarpy.is_authorized, request, parsed, entities)
        )
        parts[f"cedar_call_{count}_policies_parsed_entities_us"] = median_us(
            partial(cedarpy.is_authorized, request, parsed, handle)
        )
    return parts


def decisions_per_second(
    policies: PolicySet, relations: Relations, seconds: float, users: int
) -> JSON:
    """Decisions of one thread per second of its CPU time (per core: what the machine's other
    load takes away is not counted) and per second of wall-clock time."""
    requests = _requests(20_000, users, seed=11)
    done, start, cpu = 0, time.perf_counter(), time.thread_time()
    while time.perf_counter() - start < seconds:
        principal, verb, obj = requests[done % len(requests)]
        policies.decide(principal, verb, obj, relations=relations)
        done += 1
    wall, used = time.perf_counter() - start, time.thread_time() - cpu
    return {"per_core": round(done / used, 1), "wall_clock": round(done / wall, 1)}


def measure_admission(texts: list[str], objects: int, updates: int, rounds: int, tmp: Path) -> JSON:
    """Updates/s through :meth:`Admission.admit` with the Policies, and without any Policy."""
    store = open_store(f"sqlite:///{tmp / 'policy-bench.db'}")
    try:
        for i, text in enumerate(texts):
            policy = {
                "apiVersion": GROUP,
                "kind": "Policy",
                "metadata": {"name": f"p{i}", "namespace": "modelplane-system"},
                "spec": {"scope": "admission", "cedar": text},
            }
            store.create(api.validate(policy))
        admission = Admission(store)
        admission.start()
        objs = [store.create(api.validate(endpoint(i, "ns-1"))) for i in range(objects)]
        writer = Principal("u1", frozenset({"system:authenticated"}))
        with_policies, without = [], []
        for _ in range(rounds):
            without.append(_updates(store, objs, updates, None))
            with_policies.append(
                _updates(store, objs, updates, lambda o: admission.admit(writer, "update", o))
            )
        admission.stop()
    finally:
        store.close()
    ours, base = statistics.median(with_policies), statistics.median(without)
    return {
        "updates_per_s": round(ours, 1),
        "baseline_updates_per_s": round(base, 1),
        "overhead": round(1 - ours / base, 3),
        "policies": len(texts),
    }


def _updates(
    store: Any, objs: list[JSON], count: int, check: Callable[[JSON], None] | None
) -> float:
    start = time.perf_counter()
    for k in range(count):
        i = k % len(objs)
        obj = objs[i]
        obj["metadata"].setdefault("labels", {})["round"] = str(k)
        if check is not None:
            check(obj)
        objs[i] = store.update(obj)
    return count / (time.perf_counter() - start)


def measure_list_filter(policies: PolicySet, relations: Relations, objects: int) -> JSON:
    """Keeping what a principal may list among ``objects``: per object, and per namespace."""
    objs = [endpoint(i) for i in range(objects)]
    principal = Principal("u1")
    start = time.perf_counter()
    per_object = [
        o for o in objs if policies.decide(principal, "list", o, relations=relations).allowed
    ]
    per_object_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    allowed: dict[str, bool] = {}
    kept = []
    for obj in objs:
        namespace = obj["metadata"]["namespace"]
        if namespace not in allowed:
            stand_in = {"kind": obj["kind"], "metadata": {"namespace": namespace, "name": ""}}
            allowed[namespace] = policies.decide(
                principal, "list", stand_in, relations=relations
            ).allowed
        if allowed[namespace]:
            kept.append(obj)
    per_namespace_ms = (time.perf_counter() - start) * 1e3
    return {
        "objects": objects,
        "kept": len(kept),
        "per_object_ms": round(per_object_ms, 1),
        "per_namespace_ms": round(per_namespace_ms, 2),
        "decisions_per_namespace": len(allowed),
        "same_objects": [o["metadata"]["name"] for o in kept]
        == [o["metadata"]["name"] for o in per_object],
        "speedup": round(per_object_ms / per_namespace_ms, 1),
    }


# -- the run ----------------------------------------------------------------------------------------


def run(
    *,
    policies: int = 100,
    entities: int = 10_000,
    samples: int = 5_000,
    seconds: float = 2.0,
    objects: int = 10_000,
    updates: int = 1_000,
    rounds: int = 3,
) -> dict[str, Any]:
    """Run the benchmark; returns the figures (see the module docstring)."""
    texts = policy_texts(policies)
    compiled = PolicySet(
        [compile_policy("modelplane-system", f"p{i}", t) for i, t in enumerate(texts)]
    )
    tuples = relationships(entities)
    users = sum(1 for t in tuples if t["spec"]["subject"]["kind"] == "User")
    start = time.perf_counter()
    relations = Relations(objects=tuples)
    relations.graph.principal_parents(Principal("u0"))
    _log(f"{len(tuples)} relationships resolved in {time.perf_counter() - start:.2f}s")
    result: dict[str, Any] = {
        "benchmark": "policy",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_1m": round(os.getloadavg()[0], 2),
            "platform": platform.platform(terse=True),
        },
        "params": {
            "policies": policies,
            "entities": entities,
            "relationships": len(tuples),
            "samples": samples,
            "objects": objects,
            "updates": updates,
            "rounds": rounds,
        },
        "goals": {
            "decision_p99_us": f"<= {GOALS['decision_p99_us']:g}",
            "decisions_per_s_per_core": f">= {GOALS['decisions_per_s_per_core']:g}",
            "admission_overhead": f"<= {GOALS['admission_overhead']:g} of updates/s",
        },
    }
    _log("decisions, ours and naive")
    result.update(measure_decisions(compiled, texts, relations, samples, users))
    _log("where the time goes")
    result["where_the_time_goes"] = where_the_time_goes(texts, relations, max(50, samples // 20))
    _log("decisions/s")
    rates = decisions_per_second(compiled, relations, seconds, users)
    result["decisions_per_s_per_core"] = rates["per_core"]
    result["decisions_per_s_wall_clock"] = rates["wall_clock"]
    _log("admission on the store write path")
    with tempfile.TemporaryDirectory(prefix="modelplane-bench-") as tmp:
        result["admission"] = measure_admission(
            texts, min(objects, 200), updates, rounds, Path(tmp)
        )
    _log("list filtering")
    result["list_filter"] = measure_list_filter(compiled, relations, objects)
    result["met"] = {
        "decision_p99_us": result["decision"]["p99_us"] <= GOALS["decision_p99_us"],
        "decisions_per_s_per_core": result["decisions_per_s_per_core"]
        >= GOALS["decisions_per_s_per_core"],
        "admission_overhead": result["admission"]["overhead"] <= GOALS["admission_overhead"],
    }
    result["all_met"] = all(result["met"].values())
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python benchmarks/policy.py [--quick] ...``."""
    parser = argparse.ArgumentParser(
        prog="modelplane bench policy",
        description="Measure Cedar decisions, admission overhead and list filtering; prints one"
        " JSON line.",
    )
    parser.add_argument("--policies", type=int, default=100)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=5_000, help="decisions timed one by one")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the decisions/s run")
    parser.add_argument("--objects", type=int, default=10_000, help="objects of the list filter")
    parser.add_argument("--updates", type=int, default=1_000, help="updates per admission round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating admission rounds")
    quick = {"entities": 500, "samples": 200, "seconds": 0.2}
    args = parse_sized(parser, argv, {**quick, "objects": 200, "updates": 50, "rounds": 1})
    result = run(
        policies=args.policies,
        entities=args.entities,
        samples=args.samples,
        seconds=args.seconds,
        objects=args.objects,
        updates=args.updates,
        rounds=args.rounds,
    )
    print_summary(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
