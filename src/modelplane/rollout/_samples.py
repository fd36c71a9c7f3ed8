"""Where request samples come from: the gateway over HTTP, or a recording held in memory.

A :class:`Sample` is one finished request to one version of an Endpoint, as the gateway records
it: when it finished (``t``, seconds since the epoch), its time to first token and mean time per
output token (None when not measured), whether it failed, and optionally an eval score.

:class:`GatewaySamples` reads ``GET /v1/_modelplane/samples`` of one or more gateways (scale-out
runs several; each keeps its own window, so their samples are merged). :class:`RecordedSamples`
holds samples in memory: fed by a program, or loaded from a file the samples endpoint returned,
for offline analysis (``modelplane rollout analyze``) and for tests of the judge and controller.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import orjson

from modelplane.api.errors import Invalid, Unavailable
from modelplane.control import Controller

if TYPE_CHECKING:
    from modelplane.store import Store

#: how long one samples request may take before the analysis holds the step
_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One finished request to one version."""

    t: float
    ttft_s: float | None = None
    tpot_s: float | None = None
    error: bool = False
    score: float | None = None


class SampleSource(Protocol):
    """Per-version request samples of an Endpoint, finished after ``since`` (epoch seconds)."""

    def samples(self, namespace: str, endpoint: str, version: str, since: float) -> list[Sample]:
        """Samples of ``version`` with ``t > since``; raises Unavailable when they cannot be read."""
        ...


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def sample_from_json(data: Mapping[str, Any]) -> Sample:
    """A :class:`Sample` from the samples endpoint's ``{"t", "ttft_s", "tpot_s", "error",
    "score"}`` (``score`` null or absent when the answer was not evaluated)."""
    t = _number(data.get("t"))
    if t is None:
        raise ValueError(f"a sample needs a time 't' in seconds since the epoch (got {data!r})")
    return Sample(
        t=t,
        ttft_s=_number(data.get("ttft_s")),
        tpot_s=_number(data.get("tpot_s")),
        error=bool(data.get("error")),
        score=_number(data.get("score")),
    )


class GatewaySamples:
    """Samples read from gateways' ``/v1/_modelplane/samples`` (merged when several).

    ``urls``: base URLs of the gateways (``http://host:port``; a trailing ``/v1`` is accepted).
    ``token``: a bearer token, when the gateway requires one.
    """

    def __init__(
        self, urls: Sequence[str], *, token: str | None = None, timeout: float = _TIMEOUT
    ) -> None:
        if not urls:
            raise ValueError("GatewaySamples needs at least one gateway URL")
        self.urls = [_samples_url(u) for u in urls]
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._http = httpx.Client(timeout=timeout, headers=headers)

    @classmethod
    def from_text(cls, text: str, *, token: str | None = None) -> GatewaySamples:
        """From a comma-separated list of URLs (as ``MODELPLANE_GATEWAY_URL`` holds them)."""
        return cls([u.strip() for u in text.split(",") if u.strip()], token=token)

    def close(self) -> None:
        self._http.close()

    def samples(self, namespace: str, endpoint: str, version: str, since: float) -> list[Sample]:
        params = {"namespace": namespace, "endpoint": endpoint, "version": version}
        params["since"] = repr(since)
        out: list[Sample] = []
        for url in self.urls:
            try:
                response = self._http.get(url, params=params)
            except httpx.HTTPError as exc:
                raise Unavailable(
                    f"cannot read samples from the gateway at {url}: {exc or type(exc).__name__};"
                    " is it running? (set MODELPLANE_GATEWAY_URL to its address)"
                ) from None
            if response.status_code != 200:
                raise Unavailable(
                    f"the gateway at {url} answered {response.status_code} for samples:"
                    f" {response.text[:200]}"
                )
            body = orjson.loads(response.content)
            out.extend(sample_from_json(s) for s in body.get("samples") or [])
        out.sort(key=lambda s: s.t)
        return out


#: where controllers find the gateways whose samples they read: comma-separated base URLs
GATEWAY_URL_ENV = "MODELPLANE_GATEWAY_URL"


class GivenOrGateways:
    """A controller's sample source: the one given, else the gateways named in
    ``MODELPLANE_GATEWAY_URL`` (read again at each :meth:`get`, so a changed value takes effect),
    else None. :meth:`close` releases the connections of the gateways' source."""

    def __init__(self, given: SampleSource | None, *, token: str | None = None) -> None:
        self._given = given
        self._token = token
        self._from_env: tuple[str, GatewaySamples] | None = None

    def get(self) -> SampleSource | None:
        if self._given is not None:
            return self._given
        text = os.environ.get(GATEWAY_URL_ENV, "").strip()
        if not text:
            return None
        if self._from_env is None or self._from_env[0] != text:
            self.close()
            self._from_env = (text, GatewaySamples.from_text(text, token=self._token))
        return self._from_env[1]

    def close(self) -> None:
        if self._from_env is not None:
            self._from_env[1].close()
            self._from_env = None


class SampledController(Controller):
    """A controller that judges Endpoints by request samples (the rollout and SLO controllers).

    ``samples``: where the samples come from (default: the gateways in
    ``MODELPLANE_GATEWAY_URL``, read at each :meth:`sample_source`, so a platform may set it after
    building its controllers); ``token``: the bearer token for those gateways. :meth:`stop` also
    releases the gateways' connections.
    """

    def __init__(
        self,
        store: Store,
        *,
        samples: SampleSource | None = None,
        token: str | None = None,
        namespace: str | None = None,
        workers: int = 1,
    ) -> None:
        super().__init__(store, namespace=namespace, workers=workers)
        self._sources = GivenOrGateways(samples, token=token)

    def sample_source(self) -> SampleSource | None:
        """The source given, else one for the gateways in ``MODELPLANE_GATEWAY_URL``, else None."""
        return self._sources.get()

    def stop(self, timeout: float | None = None) -> bool:
        ok = super().stop(timeout)
        self._sources.close()
        return ok


def _samples_url(base: str) -> str:
    base = base.rstrip("/")
    if base.endswith("/v1"):
        base = base[: -len("/v1")]
    return f"{base}/v1/_modelplane/samples"


class RecordedSamples:
    """Samples held in memory, per (namespace, endpoint, version).

    Fill it with :meth:`add` / :meth:`extend`, or :meth:`load` a file saved from
    ``GET /v1/_modelplane/samples?endpoint=NAME`` (its ``{"namespace", "endpoint", "versions":
    {version: [samples]}}`` shape, or one version's ``{"samples": [...]}`` with ``version``).
    """

    def __init__(self) -> None:
        self._samples: dict[tuple[str, str, str], list[Sample]] = {}

    def add(self, namespace: str, endpoint: str, version: str, sample: Sample) -> None:
        self._samples.setdefault((namespace, endpoint, version), []).append(sample)

    def extend(
        self, namespace: str, endpoint: str, version: str, samples: Iterable[Sample]
    ) -> None:
        self._samples.setdefault((namespace, endpoint, version), []).extend(samples)

    def versions(self, namespace: str, endpoint: str) -> list[str]:
        """The versions that have samples, sorted."""
        return sorted(v for (ns, ep, v) in self._samples if (ns, ep) == (namespace, endpoint))

    def endpoints(self) -> list[tuple[str, str]]:
        """(namespace, endpoint) pairs that have samples, sorted."""
        return sorted({(ns, ep) for (ns, ep, _) in self._samples})

    def samples(self, namespace: str, endpoint: str, version: str, since: float) -> list[Sample]:
        return [s for s in self._samples.get((namespace, endpoint, version), []) if s.t > since]

    @classmethod
    def load(cls, path: str | Path) -> RecordedSamples:
        """Samples from a JSON file the samples endpoint returned; Invalid names what is wrong."""
        try:
            data = orjson.loads(Path(path).read_bytes())
        except OSError as exc:
            raise Invalid(f"cannot read {path}: {exc.strerror or exc}") from None
        except orjson.JSONDecodeError as exc:
            raise Invalid(
                f"{path} is not JSON ({exc}); save what /v1/_modelplane/samples returned"
            ) from None
        recorded = cls()
        try:
            recorded.add_response(data)
        except ValueError as exc:
            raise Invalid(f"{path}: {exc}") from None
        return recorded

    def add_response(self, data: Any) -> None:
        """Add what ``GET /v1/_modelplane/samples`` returned (decoded JSON)."""
        if not isinstance(data, dict) or not data.get("endpoint"):
            raise ValueError(
                'expected the samples endpoint\'s object {"namespace", "endpoint", "versions"}'
            )
        namespace = str(data.get("namespace") or "default")
        endpoint = str(data["endpoint"])
        versions = data.get("versions")
        if not isinstance(versions, dict):
            if "version" in data and isinstance(data.get("samples"), list):
                versions = {str(data["version"]): data["samples"]}
            else:
                raise ValueError('"versions" must map each version to a list of samples')
        for version, samples in versions.items():
            if not isinstance(samples, list):
                raise ValueError(f"versions.{version} must be a list of samples")
            self.extend(namespace, endpoint, str(version), (sample_from_json(s) for s in samples))
