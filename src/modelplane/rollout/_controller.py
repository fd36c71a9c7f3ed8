"""The rollout controller: moves ``status.traffic`` toward ``spec.traffic`` one analysed step at a time.

``status.traffic`` is the split in force (the gateway and the node agents follow it when set);
``spec.traffic`` is the split wanted. For an Endpoint with ``spec.rollout``:

* first sight: the split in force becomes ``spec.traffic`` at once (there is nothing to roll from);
* ``spec.traffic`` changes: a rollout begins. The **canary** is the version whose weight rises the
  most, the **stable** the other version with the most weight in force. The steps are those of
  ``spec.rollout.steps`` between the canary's weight in force and its wanted weight; at each one
  the canary gets that percent, taken from the stable;
* a step's analysis window opens once a replica of the canary is ready; every
  ``analysis.interval`` the canary's samples are judged against the stable's from the same window
  (:func:`~modelplane.rollout.judge`): ``pass`` moves to the next step (after the last, the split
  in force becomes ``spec.traffic``: phase ``Succeeded``), ``inconclusive`` holds the step, ``fail``
  restores the split in force before the rollout (phase ``RolledBack``, condition ``Rollout=False``
  reason ``RolledBack`` with the figures, a Warning Event), or with ``autoRollback: false`` pauses
  (phase ``Paused``) for a person to promote or abort;
* the annotation ``modelplane.dev/rollout-action: promote|abort`` (what ``modelplane rollout
  promote|abort`` sets) promotes to ``spec.traffic`` or rolls back by hand; the controller
  removes it once applied.

While ``status.remediation.active`` is true (a remediation playbook of ``modelplane.sre`` moved
the traffic off a version that burns its SLO), the split in force is left as the playbook set it;
``promote`` then restores ``status.remediation.previousTraffic`` and ends the hold.

Without ``spec.rollout``, ``status.traffic`` (when some rollout left one) follows ``spec.traffic``
at once. Samples come from a :class:`~modelplane.rollout.SampleSource`: given to the constructor,
else the gateways named in ``MODELPLANE_GATEWAY_URL`` (comma-separated base URLs).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from modelplane.api import ACTION_ANNOTATION, parse_duration
from modelplane.api.errors import ModelplaneError, NotFound
from modelplane.control import Request, Result, StatusEvent, set_condition
from modelplane.control import parse_rfc3339 as _parse_time
from modelplane.control import rfc3339 as _timestamp
from modelplane.rollout._judge import Criteria, Judgement, judge
from modelplane.rollout._samples import GATEWAY_URL_ENV, SampledController, SampleSource

if TYPE_CHECKING:
    from modelplane.store import Store

log = logging.getLogger("modelplane.rollout")

ACTIONS = ("promote", "abort")
#: the status field a remediation playbook (``modelplane.sre``) holds the split with
REMEDIATION = "remediation"
CONDITION = "Rollout"
#: seconds between looks while a step waits for its canary replica or a sample source
_POLL = 1.0
_ACTIVE = ("Progressing", "Paused")

Split = dict[str, int]
JSON = dict[str, Any]


class RolloutController(SampledController):
    """Canary rollouts of Endpoints (see the module docstring).

    ``samples``: where request samples come from (default: ``MODELPLANE_GATEWAY_URL``, read at
    each analysis, so a platform may set it after building its controllers).
    ``clock``: seconds since the epoch, the time base of the samples.
    """

    kind = "Endpoint"
    name = "rollout-controller"

    def __init__(
        self,
        store: Store,
        *,
        samples: SampleSource | None = None,
        namespace: str | None = None,
        workers: int = 1,
        clock: Callable[[], float] = time.time,
        token: str | None = None,
    ) -> None:
        super().__init__(store, samples=samples, token=token, namespace=namespace, workers=workers)
        self.clock = clock

    # -- reconcile ----------------------------------------------------------------------------------

    def reconcile(self, request: Request) -> Result:
        endpoint = self.live_object(request)
        if endpoint is None:
            return Result()
        meta = endpoint.get("metadata") or {}
        spec = endpoint.get("spec") or {}
        status = endpoint.get("status") or {}
        desired = self._wanted(endpoint)
        if desired is None:
            return Result(requeue_after=5 * _POLL)  # its Model is not there yet
        in_force = _split(status["traffic"]) if status.get("traffic") else None
        action = (meta.get("annotations") or {}).get(ACTION_ANNOTATION)
        rollout = spec.get("rollout")
        held = status.get(REMEDIATION) or {}
        if held.get("active") and in_force is not None:
            return self._held(endpoint, held, action)

        if rollout is None:
            if in_force is not None and in_force != desired:
                return self._write(endpoint, {**status, "traffic": _targets(desired)})
            return self._clear_action(endpoint) if action else Result()
        if in_force is None:
            return self._write(endpoint, {**status, "traffic": _targets(desired)})
        state: JSON | None = status.get("rollout")
        if action:
            return self._act(endpoint, str(action), desired, in_force, state)
        if state is None or _split(state.get("target") or []) != desired:
            if state is None and in_force == desired:
                return Result()
            return self._begin(endpoint, desired, in_force, state)
        if state.get("phase") != "Progressing":
            return Result()
        return self._progress(endpoint, state, rollout)

    def _wanted(self, endpoint: JSON) -> Split | None:
        spec = endpoint.get("spec") or {}
        if spec.get("traffic"):
            return _split(spec["traffic"])
        # no split named: the Model's last version takes everything
        model = self._model(endpoint)
        versions = ((model or {}).get("spec") or {}).get("versions") or []
        if not versions:
            return None
        return {str(versions[-1]["name"]): 100}

    def _model(self, endpoint: JSON) -> JSON | None:
        ns = str(endpoint["metadata"].get("namespace") or "")
        try:
            return dict(self.store.get("Model", ns, str((endpoint.get("spec") or {}).get("model"))))
        except NotFound:
            return None

    # -- starting -----------------------------------------------------------------------------------

    def _begin(self, endpoint: JSON, desired: Split, in_force: Split, state: JSON | None) -> Result:
        status = copy.deepcopy(endpoint.get("status") or {})
        active = state is not None and state.get("phase") in _ACTIVE
        baseline = _split(state.get("baseline") or []) if state and active else in_force
        generation = endpoint["metadata"].get("generation")
        if desired == baseline:
            # spec.traffic went back to what was in force before: the canary is simply withdrawn
            message = "spec.traffic returned to the split in force before the rollout"
            status["traffic"] = _targets(desired)
            if state is not None:
                status["rollout"] = {**state, "phase": "Aborted", "weight": 0, "message": message}
                status["rollout"]["target"] = _targets(desired)
            set_condition(status, CONDITION, False, "Aborted", message, generation)
            return self._write(endpoint, status)
        canary, stable = _roles(baseline, desired)
        target_weight = desired[canary]
        steps_spec = ((endpoint.get("spec") or {}).get("rollout") or {}).get("steps") or []
        steps = [int(s) for s in steps_spec if baseline.get(canary, 0) < int(s) < target_weight]
        new: JSON = {
            "canary": canary,
            "stable": stable,
            "step": 0,
            "steps": steps,
            "target": _targets(desired),
            "baseline": _targets(baseline),
        }
        if not steps:
            message = f"{canary} promoted to {_describe(desired)}: no step lies below its weight"
            status["traffic"] = _targets(desired)
            status["rollout"] = {**new, "phase": "Succeeded", "weight": target_weight}
            status["rollout"]["message"] = message
            set_condition(status, CONDITION, True, "Succeeded", message, generation)
            return self._write(endpoint, status, ("Normal", "Promoted", message))
        split = _at_weight(baseline, canary, stable, steps[0])
        message = (
            f"rolling out {canary} against {stable}: {', '.join(f'{s}%' for s in steps)}, then"
            f" {_describe(desired)}"
        )
        status["traffic"] = _targets(split)
        status["rollout"] = {**new, "phase": "Progressing", "weight": steps[0], "message": message}
        set_condition(status, CONDITION, "Unknown", "Progressing", message, generation)
        return self._write(endpoint, status, ("Normal", "RolloutStarted", message))

    # -- a step -------------------------------------------------------------------------------------

    def _progress(self, endpoint: JSON, state: JSON, rollout: Mapping[str, Any]) -> Result:
        now = self.clock()
        analysis = rollout.get("analysis") or {}
        interval = parse_duration(str(analysis.get("interval") or "1m"))
        canary, stable = str(state["canary"]), str(state["stable"])
        step, steps = int(state.get("step") or 0), [int(s) for s in state.get("steps") or []]
        status = copy.deepcopy(endpoint.get("status") or {})
        new = status["rollout"]
        where = f"{canary} at {state.get('weight')}% (step {step + 1} of {len(steps)})"

        if not self._serves(endpoint, canary):
            new["message"] = f"{where}: waiting for a ready replica of {canary}"
            new["stepStartedAt"] = None
            return self._write(endpoint, status, requeue_after=_POLL)
        started = state.get("stepStartedAt")
        if not started:
            new["stepStartedAt"] = _timestamp(now)
            new["message"] = f"{where}: analysing every {analysis.get('interval') or '1m'}"
            return self._write(endpoint, status, requeue_after=max(interval, 0.05))
        opened = _parse_time(str(started))
        last = (state.get("lastAnalysis") or {}).get("time")
        due = max(opened, _parse_time(str(last)) if last else opened) + interval
        if now < due:
            return Result(requeue_after=due - now)

        judged = self._judge(endpoint, canary, stable, opened, now, analysis)
        new["lastAnalysis"] = _analysis(judged, now)
        generation = endpoint["metadata"].get("generation")
        if judged.verdict == "inconclusive":
            new["message"] = f"{where}: holding, {judged.reason}"
            return self._write(endpoint, status, requeue_after=max(interval, _POLL / 10))
        if judged.verdict == "pass":
            if step + 1 < len(steps):
                baseline = _split(state.get("baseline") or [])
                weight = steps[step + 1]
                status["traffic"] = _targets(_at_weight(baseline, canary, stable, weight))
                new.update(step=step + 1, weight=weight, stepStartedAt=_timestamp(now))
                new["message"] = f"{canary} passed at {state.get('weight')}%; now at {weight}%"
                set_condition(
                    status, CONDITION, "Unknown", "Progressing", new["message"], generation
                )
                event = ("Normal", "StepPassed", f"{new['message']}: {judged.reason}")
                return self._write(endpoint, status, event, requeue_after=_POLL)
            target = _split(state.get("target") or [])
            status["traffic"] = _targets(target)
            new.update(phase="Succeeded", weight=target.get(canary, 0))
            new["message"] = f"{canary} promoted to {_describe(target)} after {len(steps)} steps"
            set_condition(status, CONDITION, True, "Succeeded", new["message"], generation)
            return self._write(endpoint, status, ("Normal", "Promoted", new["message"]))
        # fail
        if rollout.get("autoRollback", True):
            status["traffic"] = list(state.get("baseline") or [])
            new.update(phase="RolledBack", weight=0)
            new["message"] = f"rolled back to {stable}: {judged.reason}"
            set_condition(status, CONDITION, False, "RolledBack", new["message"], generation)
            return self._write(endpoint, status, ("Warning", "RolledBack", new["message"]))
        new["phase"] = "Paused"
        new["message"] = (
            f"{where} failed analysis ({judged.reason}); autoRollback is off: run `modelplane"
            " rollout promote` or `modelplane rollout abort`"
        )
        set_condition(status, CONDITION, False, "AnalysisFailed", new["message"], generation)
        return self._write(endpoint, status, ("Warning", "AnalysisFailed", new["message"]))

    def _judge(
        self,
        endpoint: JSON,
        canary: str,
        stable: str,
        since: float,
        until: float,
        analysis: Mapping[str, Any],
    ) -> Judgement:
        source = self.sample_source()
        if source is None:
            return Judgement(
                "inconclusive",
                f"no sample source: set {GATEWAY_URL_ENV} to the gateway's base URL",
                0,
                0,
            )
        ns, name = str(endpoint["metadata"].get("namespace") or ""), endpoint["metadata"]["name"]
        try:
            c = [s for s in source.samples(ns, name, canary, since) if s.t <= until]
            s = [s for s in source.samples(ns, name, stable, since) if s.t <= until]
        except ModelplaneError as exc:
            return Judgement("inconclusive", f"samples unavailable: {exc}", 0, 0)
        return judge(
            c,
            s,
            Criteria.from_analysis(analysis),
            canary_name=f"canary {canary}",
            stable_name=f"stable {stable}",
        )

    def _serves(self, endpoint: JSON, version: str) -> bool:
        for replica in (endpoint.get("status") or {}).get("replicas") or []:
            if (
                isinstance(replica, dict)
                and replica.get("version") == version
                and replica.get("ready")
            ):
                return True
        # an upstream version runs no replica: the gateway calls its source directly
        model = self._model(endpoint)
        for v in ((model or {}).get("spec") or {}).get("versions") or []:
            if v.get("name") == version and v.get("format") == "upstream":
                return True
        return False

    # -- by hand ------------------------------------------------------------------------------------

    def _act(
        self, endpoint: JSON, action: str, desired: Split, in_force: Split, state: JSON | None
    ) -> Result:
        status = copy.deepcopy(endpoint.get("status") or {})
        generation = endpoint["metadata"].get("generation")
        active = state is not None and state.get("phase") in _ACTIVE
        event: tuple[str, str, str] | None = None
        if action == "promote" and in_force != desired:
            baseline = _split(state["baseline"]) if state and active else in_force
            canary, stable = _roles(baseline, desired)
            message = f"{canary} promoted by hand to {_describe(desired)}"
            status["traffic"] = _targets(desired)
            status["rollout"] = {
                **(state if state and active else {"step": 0, "steps": []}),
                "canary": canary,
                "stable": stable,
                "baseline": _targets(baseline),
                "target": _targets(desired),
                "phase": "Succeeded",
                "weight": desired.get(canary, 0),
                "message": message,
            }
            set_condition(status, CONDITION, True, "Promoted", message, generation)
            event = ("Normal", "Promoted", message)
        elif action == "abort" and state is not None and active:
            baseline = _split(state.get("baseline") or [])
            message = f"aborted by hand; traffic back to {_describe(baseline)}"
            status["traffic"] = list(state.get("baseline") or [])
            status["rollout"] = {**state, "phase": "Aborted", "weight": 0, "message": message}
            set_condition(status, CONDITION, False, "Aborted", message, generation)
            event = ("Warning", "Aborted", message)
        elif action not in ACTIONS:
            event = (
                "Warning",
                "UnknownRolloutAction",
                f"{ACTION_ANNOTATION}={action!r} is not one of {', '.join(ACTIONS)}; removed",
            )
        if event is not None and event[1] != "UnknownRolloutAction":
            result = self._write(endpoint, status, event)
            if result.requeue:
                return result
        elif event is not None:
            self._event(endpoint, event)
        return self._clear_action(endpoint)

    def _held(self, endpoint: JSON, held: JSON, action: Any) -> Result:
        """A remediation playbook holds the split: leave it, until ``promote`` restores the one
        it replaced (any rollout then carries on from there)."""
        if not action:
            return Result()
        if action != "promote":
            message = (
                f"{ACTION_ANNOTATION}={action!r} ignored: remediation playbook"
                f" {held.get('playbook')} holds the split; `modelplane rollout promote` restores"
                " the one it replaced"
            )
            self._event(endpoint, ("Warning", "RemediationHolds", message))
            return self._clear_action(endpoint)
        status = copy.deepcopy(endpoint.get("status") or {})
        previous = list(held.get("previousTraffic") or []) or status.get("traffic") or []
        message = f"remediation released by hand; traffic back to {_describe(_split(previous))}"
        status["traffic"] = previous
        status[REMEDIATION] = {
            **held,
            "active": False,
            "releasedAt": _timestamp(self.clock()),
            "message": message,
        }
        result = self._write(endpoint, status, ("Normal", "RemediationReleased", message))
        return result if result.requeue else self._clear_action(endpoint)

    def _clear_action(self, endpoint: JSON) -> Result:
        meta = endpoint["metadata"]
        with contextlib.suppress(NotFound):
            self.store.patch(
                self.kind,
                str(meta.get("namespace") or ""),
                str(meta["name"]),
                {"metadata": {"annotations": {ACTION_ANNOTATION: None}}},
            )
        return Result()

    # -- writing ------------------------------------------------------------------------------------

    def _write(
        self,
        endpoint: JSON,
        status: JSON,
        event: tuple[str, str, str] | None = None,
        *,
        requeue_after: float | None = None,
    ) -> Result:
        # the rollout's own Events say what it did; no Ready transition of its own to record
        written = StatusEvent.of(*event) if event is not None else None
        return self.write_status(endpoint, status, event=written, requeue_after=requeue_after)

    def _event(self, endpoint: JSON, event: tuple[str, str, str]) -> None:
        self.record(endpoint, StatusEvent.of(*event))


# -- splits ------------------------------------------------------------------------------------------


def _split(traffic: Any) -> Split:
    """Weights by version, only those above zero, in the order given."""
    out: Split = {}
    for target in traffic or []:
        if isinstance(target, dict) and int(target.get("weight") or 0) > 0:
            out[str(target["version"])] = int(target["weight"])
    return out


def _targets(split: Split) -> list[JSON]:
    return [{"version": v, "weight": w} for v, w in split.items()]


def _roles(baseline: Split, desired: Split) -> tuple[str, str]:
    """(canary, stable): the version whose weight rises most; the other one with most weight."""
    canary = max(desired, key=lambda v: (desired[v] - baseline.get(v, 0), desired[v]))
    others = {v: w for v, w in baseline.items() if v != canary}
    stable = max(others, key=lambda v: others[v]) if others else canary
    return canary, stable


def _at_weight(baseline: Split, canary: str, stable: str, weight: int) -> Split:
    """``baseline`` with the canary at ``weight``, the difference taken from the stable first."""
    split = dict(baseline)
    need = weight - split.get(canary, 0)
    split[canary] = weight
    for version in [stable, *(v for v in baseline if v not in (stable, canary))]:
        take = min(need, split.get(version, 0))
        split[version] = split.get(version, 0) - take
        need -= take
    return {v: w for v, w in split.items() if w > 0}


def _describe(split: Split) -> str:
    return ", ".join(f"{v} {w}%" for v, w in split.items())


def _analysis(judged: Judgement, now: float) -> JSON:
    return {
        "verdict": judged.verdict,
        "reason": judged.reason,
        "samples": judged.canary_samples,
        "stableSamples": judged.stable_samples,
        "time": _timestamp(now),
    }
