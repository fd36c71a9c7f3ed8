"""The gateway's request path: name -> route -> version -> replica, with retries and fallbacks.

Retries: a replica that fails *before the first byte of its answer reaches the client* (connect
error, timeout, 5xx, a stream that ends before its first chunk) is left for another replica of
the same version, up to ``max_attempts`` replicas. Once a streamed answer has started, a failure
ends the stream with an error event (``data: {"error": ...}`` then ``data: [DONE]``): re-running
a generation the client has partly seen would duplicate output.

Cold starts: a request for a ``scaleToZero`` Endpoint with no ready replica is held, not failed.
The gateway signals demand (the Endpoint annotation ``modelplane.dev/demand``, Unix seconds,
written at most once per ``demand_interval`` per Endpoint, off the serving loop) so the node agent
starts a replica, and waits until the routing table shows a ready one, at most ``hold_timeout``
seconds (then 503 with ``Retry-After``).

Fallbacks: when every attempt on an endpoint failed (or it has no ready replica), the models named
in its ``spec.fallbacks`` (else the deprecated ``modelplane.dev/fallbacks`` annotation) are tried
in order; then the client gets 503 with ``Retry-After`` (504 if every attempt timed out).

Bodies go to workers as the client sent them (no re-encoding); only upstream APIs get a copy with
their own model name. Answers are relayed as the bytes arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry.trace import INVALID_SPAN, Span
from starlette.responses import Response, StreamingResponse

from modelplane.api import (
    DEMAND_ANNOTATION,
    LOCAL_OPERATOR,
    PREFIX_POLICIES,
    PRIORITY_VALUE_HEADER,
    SCRAPED_POLICIES,
    Principal,
    openai_stream_error,
)
from modelplane.egress import EgressRules
from modelplane.gateway._app import build_app
from modelplane.gateway._call import Call
from modelplane.gateway._errors import GatewayError, unavailable
from modelplane.gateway._evals import Evaluations
from modelplane.gateway._flow import FlowControl, QosPolicy
from modelplane.gateway._graphs import run_graph
from modelplane.gateway._httproutes import HTTPRouteTable, choose
from modelplane.gateway._limits import Limiter, Ticket
from modelplane.gateway._routing import Router, pick_version
from modelplane.gateway._shared_limits import SharedLimits
from modelplane.gateway._table import (
    EndpointRoute,
    GraphRoute,
    Replica,
    Route,
    RoutingTable,
    VersionRoute,
)
from modelplane.gateway._telemetry import (
    OPERATIONS,
    StreamWatch,
    Telemetry,
    answered_tpot,
    configure_tracing,
    end_attempt_span,
    end_request_span,
    ends_on_failure,
    record_answer,
    record_first_token,
    record_stream,
    start_attempt_span,
    start_request_span,
    streamed_tpot,
    token_counts,
    trace_headers,
)
from modelplane.gateway._upstream import (
    UpstreamClient,
    UpstreamError,
    UpstreamRefused,
    UpstreamResponse,
    UpstreamTimeout,
)
from modelplane.policy import AuditEvent, AuditSink, Decision, RuntimePolicies, Tenancy
from modelplane.store import Store, backend_of

log = logging.getLogger("modelplane.gateway")

_METRIC_NAMES = {
    b"modelplane_worker_queue_depth": "queue_depth",
    b"modelplane_worker_running_requests": "running",
    b"modelplane_worker_kv_cache_usage_ratio": "kv_cache",
}


class _Exhausted(Exception):
    """Every attempt on one endpoint failed before answering; carries the error to give."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


class Gateway:
    """The OpenAI-compatible data plane over one store. See :mod:`modelplane.gateway`.

    ``connect_timeout``: seconds to open a connection to a replica; ``read_timeout``: the longest
    silence allowed between two bytes of an answer (so also the longest time to first token);
    ``max_attempts``: replicas tried per endpoint before falling back; ``hold_timeout``: how long
    a request for a scaled-to-zero endpoint waits for a replica to start; ``demand_interval``: the
    least time between two demand signals for one endpoint. ``egress``: the operator's rules
    for the hosts of upstream versions (default: no allow-list, loopback refused); replicas
    published by our node agents are not upstreams and are not checked. ``shared_limits``:
    hold ``spec.limits`` across every gateway on the store (None: when the store is PostgreSQL;
    see :mod:`modelplane.gateway._shared_limits`), else per process.
    """

    def __init__(
        self,
        store: Store,
        *,
        egress: EgressRules | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 300.0,
        max_attempts: int = 3,
        max_body_bytes: int = 2 * 1024 * 1024,
        default_max_tokens: int = 512,
        block_chars: int = 64,
        scrape_interval: float = 1.0,
        hold_timeout: float = 120.0,
        demand_interval: float = 5.0,
        router: Router | None = None,
        tenancy: Tenancy | None = None,
        audit: AuditSink | None = None,
        runtime: RuntimePolicies | None = None,
        shared_limits: bool | None = None,
    ) -> None:
        self.store = store
        self.tenancy = tenancy or Tenancy()
        self.audit = audit
        self.runtime = runtime
        self.table = RoutingTable(store)
        self.http_routes = HTTPRouteTable(store, self.table)
        self.egress = egress or EgressRules()
        self.router = router or Router()
        if shared_limits is None:  # embedded SQLite is one gateway; PostgreSQL is scale-out
            shared_limits = backend_of(store.url) == "postgres"
        self.limiter = Limiter(shared=SharedLimits(store) if shared_limits else None)
        self.telemetry = Telemetry()
        #: requests held by priority while an Endpoint with spec.qos is saturated
        self.flow = FlowControl()
        self.telemetry.collectors.append(self.flow.prometheus)
        self.router.on_release = lambda _url: self.flow.pump()
        #: answers sampled for a rollout's evaluation, scored off the request path
        self.evals = Evaluations(self, self.telemetry)
        configure_tracing()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_attempts = max_attempts
        self.max_body_bytes = max_body_bytes
        self.default_max_tokens = default_max_tokens
        self.block_chars = block_chars
        self.scrape_interval = scrape_interval
        self.hold_timeout = hold_timeout
        self.demand_interval = demand_interval
        self.random = random.Random()
        self._demanded: dict[str, float] = {}
        self._client: UpstreamClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scraper: asyncio.Task[None] | None = None
        self.app = build_app(self)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Gateway:
        """Start the informers that keep the routing table current (returns at once)."""
        self.table.start()
        self.http_routes.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        return self.http_routes.stop(timeout) & self.table.stop(timeout)

    async def aclose(self) -> None:
        await self.evals.aclose()
        await self.limiter.aclose()
        if self._scraper is not None:
            self._scraper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._scraper
            self._scraper = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def client(self) -> UpstreamClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # one pooled keep-alive client per serving loop
            self._loop = loop
            self._client = UpstreamClient(
                connect_timeout=self.connect_timeout, read_timeout=self.read_timeout
            )
            self._scraper = loop.create_task(self._scrape_forever())
        return self._client

    # -- serving ------------------------------------------------------------------------------

    def model_names(self, principal: Principal = LOCAL_OPERATOR) -> list[str]:
        """The model names ``principal`` may call (``name`` in ``default``, else ``ns/name``)."""
        return sorted(
            r.name if r.namespace == "default" else r.key for r in self.callable_routes(principal)
        )

    def callable_routes(self, principal: Principal) -> list[Route]:
        """The Endpoints and Graphs ``principal`` may call (for ``/v1/models``)."""
        routes = self.table.routes().values()
        return [r for r in routes if self.authorize(principal, r, None).allowed]

    def authorize(
        self, principal: Principal, route: Route, body: dict[str, Any] | None
    ) -> Decision:
        """Whether ``principal`` may call ``route`` with ``body`` (None: any call, as for
        ``/v1/models``): the one place the gateway decides model access.

        First the tenancy rules (a principal calls the Endpoints and Graphs of the namespaces it
        belongs to; administrators all), then the ``scope: runtime`` Policies (``runtime``), both
        as Cedar action ``model.call``; the runtime resource is ``Endpoint::"<ns>/<name>"`` (or
        ``Graph``) with ``context.max_tokens`` (0 when the body has none) and ``context.model``.
        This is the hook every call, Graph step and fallback passes, and ``/v1/models`` lists by.
        """
        kind = "Graph" if isinstance(route, GraphRoute) else "Endpoint"
        decision = self.tenancy.decide(principal, "model.call", kind, route.namespace)
        if not decision.allowed or self.runtime is None:
            return decision
        asked = body or {}
        max_tokens = asked.get("max_tokens") or asked.get("max_completion_tokens") or 0
        context = {
            "max_tokens": max_tokens if isinstance(max_tokens, int) else 0,
            "model": str(asked.get("model") or route.key),
        }
        resource = {
            "uid": {"type": kind, "id": route.key},
            "attrs": {
                "namespace": route.namespace,
                "name": route.key.partition("/")[2],
                "labels": self.runtime.namespace_labels(route.namespace),
            },
            "parents": [{"type": "Namespace", "id": route.namespace}],
        }
        decided = self.runtime.decide(principal, "model.call", resource, context)
        if decided.allowed:
            return Decision(True, decision.policies, decision.reasons, decided.version)
        return Decision(False, decided.policies, decided.reasons, decided.version)

    def resolve(self, model: str, principal: Principal = LOCAL_OPERATOR) -> Route:
        """The route ``model`` names; 404 when there is none (the names ``principal`` may call are
        listed, so the answer says nothing of other tenants' models)."""
        route = self.table.lookup(model)
        if route is None:
            raise self._not_found(model, principal)
        return route

    def _not_found(self, model: str, principal: Principal) -> GatewayError:
        names = self.model_names(principal)
        shown = ", ".join(names[:50]) + (f" and {len(names) - 50} more" if len(names) > 50 else "")
        return GatewayError(
            404,
            f"The model {model!r} does not exist or you do not have access to it. "
            + (
                f"Models you may call here: {shown}."
                if names
                else "No models are served to you yet: apply an Endpoint in your namespace."
            ),
            code="model_not_found",
            param="model",
        )

    def _admit_caller(self, route: Route, call: Call) -> None:
        """Decide model access for ``call`` (audited, allow or deny); a deny is the 404 an
        unknown model gets."""
        decision = self.authorize(call.principal, route, call.body)
        if self.audit is not None:
            self.audit.append(
                AuditEvent(
                    category="model",
                    principal=call.principal.name,
                    action="model.call",
                    resource=f"{'Graph' if isinstance(route, GraphRoute) else 'Endpoint'}/{route.key}",
                    decision="allow" if decision.allowed else "deny",
                    namespace=route.namespace,
                    policies=decision.policies,
                    reasons=decision.reasons,
                    policy_version=decision.version,
                )
            )
        if not decision.allowed and self._tenant_may(call.principal, route):
            raise _policy_denied(decision)  # a runtime Policy's deny: say which
        if not decision.allowed:
            model = call.body.get("model")
            raise self._not_found(model if isinstance(model, str) else route.key, call.principal)

    def _tenant_may(self, principal: Principal, route: Route) -> bool:
        kind = "Graph" if isinstance(route, GraphRoute) else "Endpoint"
        return self.tenancy.decide(principal, "model.call", kind, route.namespace).allowed

    async def handle(self, model: str, call: Call) -> Response:
        """Serve one parsed request for the model name the client gave: through the HTTPRoutes
        serving that name when there are any (:mod:`modelplane.gateway._httproutes`), else
        the Endpoint or Graph of that name."""
        entries = self.http_routes.routes_for(model)
        if entries and call.facts is not None:
            if not self.tenancy.decide(
                call.principal, "model.call", "Endpoint", entries[0].namespace
            ).allowed:
                raise self._not_found(model, call.principal)
            return await self.serve(choose(entries, model, call.facts, self.random), call)
        return await self.serve(self.resolve(model, call.principal), call)

    async def serve(self, route: Route, call: Call) -> Response:
        """Serve ``call`` from ``route``: the one request path, for clients and Graph steps alike.

        A Graph runs its nodes, and each endpoint step comes back here. An Endpoint admits the
        call against its ``spec.limits`` (raising a 429 GatewayError), traces it (a span that is
        a child of the current one, so a Graph's steps sit under the Graph's span), and serves it
        from the endpoint, then its fallbacks; metrics and samples are recorded per attempt.
        """
        self._admit_caller(route, call)
        if isinstance(route, GraphRoute):
            return await run_graph(self, route, call)
        model = call.body.get("model")
        span = call.span = start_request_span(
            call.path, model if isinstance(model, str) else route.name, call.body
        )
        if call.step is not None and span.is_recording():
            span.set_attribute("modelplane.graph.step", call.step)
        with ends_on_failure(span):
            response = await self._admitted(route, call)
        if call.span is not None:  # not handed to a stream's relay: the answer is complete
            end_request_span(call.span, code=response.status_code)
        return response

    async def _admitted(self, route: EndpointRoute, call: Call) -> Response:
        ticket: Ticket | None = None
        if route.limits is not None:
            ticket = await self.limiter.acquire(
                route.namespace,
                route.name,
                call.principal.name,
                route.limits,
                self._reservation(call),
            )
        try:
            if route.qos is not None:
                await self._flow(route, route.qos, call)
            return await self._serve_chain(route, call, ticket)
        except BaseException:
            if ticket is not None:
                self.limiter.settle(ticket, 0)
            raise

    async def _flow(self, route: EndpointRoute, qos: QosPolicy, call: Call) -> None:
        """Wait for flow control to let ``call`` on (raises 429 when it is shed)."""
        klass = qos.classify(call.priority, call.principal)
        call.priority_value = klass.priority
        urls = [r.url for v in route.versions for r in v.replicas if not r.upstream]

        def headroom(policy: QosPolicy, priority: int) -> float:
            return self.router.headroom(
                urls,
                queue_depth=policy.queue_depth,
                kv_cache=policy.kv_bound(priority),
                max_in_flight=policy.in_flight_bound(priority),
            )

        await self.flow.admit(route.key, qos, klass, self._reservation(call), headroom)
        # from here to the replica's ``router.begin`` nothing awaits: it counts in flight there
        self.flow.started(route.key)

    def _reservation(self, call: Call) -> int:
        body = call.body
        most = (
            body.get("max_completion_tokens") or body.get("max_tokens") or self.default_max_tokens
        )
        prompt = len(call.prompt) if call.prompt else len(call.raw)
        return int(most) + prompt // 4 + 1

    async def _serve_chain(
        self, route: EndpointRoute, call: Call, ticket: Ticket | None = None
    ) -> Response:
        """Serve from ``route``, then from its fallbacks in order; raise the last error."""
        chain = [route]
        seen = {route.key}
        for name in route.fallbacks:
            target = self.table.lookup(name, route.namespace)
            if (
                isinstance(target, EndpointRoute)
                and target.key not in seen
                and self.authorize(call.principal, target, call.body).allowed
            ):
                seen.add(target.key)
                chain.append(target)
        error: GatewayError | None = None
        for i, target in enumerate(chain):
            try:
                response = await self._serve(target, call, ticket)
            except _Exhausted as exc:
                error = exc.error
                continue
            if i:
                response.headers["x-modelplane-fallback-from"] = route.name
            return response
        assert error is not None
        if len(chain) > 1:
            error.message += f" (fallbacks tried: {', '.join(t.name for t in chain[1:])})"
        raise error

    async def _serve(self, route: EndpointRoute, call: Call, ticket: Ticket | None) -> Response:
        route, version = await self._version(route, call)
        blocks = call.blocks(self.block_chars) if route.policy in PREFIX_POLICIES else []
        tried: set[str] = set()
        timeouts = failures = 0
        client = self.client()
        for _ in range(self.max_attempts):
            replica = self.router.pick(
                route, version, session=call.session, blocks=blocks, exclude=tried
            )
            if replica is None:
                break
            tried.add(replica.url)
            start = time.perf_counter()
            self.router.begin(replica.url)
            attempt = start_attempt_span(
                call.span or INVALID_SPAN,
                endpoint=route.key,
                version=version.name,
                replica=replica.name,
                url=replica.url,
                attempt=len(tried),
            )
            try:
                response = await self._attempt(client, route, version, replica, call, ticket, start)
            except UpstreamRefused as exc:
                # the operator's rules refuse the address: no other replica or retry would do
                self.router.end(replica.url)
                end_attempt_span(attempt, code=403, error="upstream_not_allowed")
                raise _Exhausted(
                    GatewayError(
                        403,
                        f"endpoint {route.key}, version {version.name}: {exc.refusal.message()}",
                        type="invalid_request_error",
                        code="upstream_not_allowed",
                    )
                ) from None
            except UpstreamTimeout:
                timeouts += 1
                end_attempt_span(attempt, code=None, error="timeout")
            except _Failed as exc:
                failures += 1
                end_attempt_span(attempt, code=exc.code, error=exc.error_type)
            except UpstreamError as exc:
                failures += 1
                end_attempt_span(attempt, code=None, error=type(exc).__qualname__)
            else:
                end_attempt_span(attempt, code=response.status_code)
                return response
            # the attempt failed before answering: it counts as an error of that version
            self.router.end(replica.url)
            self.telemetry.record(
                route.namespace,
                route.name,
                version.name,
                code=503,
                ttft=None,
                tpot=None,
                duration=time.perf_counter() - start,
                output_tokens=0,
                operation=OPERATIONS.get(call.path, ""),
            )
        raise _Exhausted(self._no_answer(route, version, len(tried), timeouts, failures))

    async def _version(
        self, route: EndpointRoute, call: Call
    ) -> tuple[EndpointRoute, VersionRoute]:
        """The version to serve ``call`` from (holding the request while a scaled-to-zero
        endpoint starts a replica), with the route as it then stands; raises _Exhausted (503)
        when no version has a ready replica."""
        headers = call.facts.headers if call.facts is not None else None
        version = pick_version(route, call.session, self.random, headers)
        if version is None and route.scale_to_zero:
            route = await self._hold(route)
            version = pick_version(route, call.session, self.random, headers)
        if version is not None:
            return route, version
        problems = "; ".join(f"version {v.name}: {v.problem}" for v in route.versions if v.problem)
        raise _Exhausted(
            unavailable(
                f"endpoint {route.key} has no ready replica"
                + (
                    f" ({problems})"
                    if problems
                    else ""
                    if route.versions
                    else f" (its Model {route.model!r} has no such versions)"
                ),
                retry_after=2.0,
            )
        )

    def _no_answer(
        self, route: EndpointRoute, version: VersionRoute, tried: int, timeouts: int, failures: int
    ) -> GatewayError:
        """The error when every attempt failed before answering: 504 when all timed out."""
        if timeouts and not failures:
            return GatewayError(
                504,
                f"endpoint {route.key}: no replica answered within {self.read_timeout}s"
                f" ({timeouts} tried)",
                type="timeout",
                code="upstream_timeout",
                retry_after=1.0,
            )
        return unavailable(
            f"endpoint {route.key}: every replica tried failed before answering"
            f" ({tried} of {len(version.replicas)} of version {version.name})"
        )

    async def _hold(self, route: EndpointRoute) -> EndpointRoute:
        """Signal demand for ``route`` and wait for a ready replica (module docstring: cold
        starts); the route as it stands then. Raises _Exhausted (503) after ``hold_timeout``."""
        deadline = time.monotonic() + self.hold_timeout
        while True:
            await self._signal_demand(route)
            current = self.table.lookup(route.key)
            if not isinstance(current, EndpointRoute):
                raise _Exhausted(unavailable(f"endpoint {route.key} was deleted", retry_after=2.0))
            route = current
            if any(v.replicas for v in route.versions):
                return route
            if time.monotonic() >= deadline:
                raise _Exhausted(
                    unavailable(
                        f"endpoint {route.key} is scaled to zero and no replica became ready"
                        f" within {self.hold_timeout:g}s; see its status (modelplane describe"
                        f" endpoint {route.name})",
                        retry_after=5.0,
                    )
                )
            # the table changes through informers on other threads: look again shortly
            await asyncio.sleep(0.05)

    async def _signal_demand(self, route: EndpointRoute) -> None:
        now = time.monotonic()
        if now - self._demanded.get(route.key, -self.demand_interval) < self.demand_interval:
            return
        self._demanded[route.key] = now
        patch = {"metadata": {"annotations": {DEMAND_ANNOTATION: str(int(time.time()))}}}
        try:
            # a store write blocks: keep it off the serving loop
            await asyncio.to_thread(
                self.store.patch, "Endpoint", route.namespace, route.name, patch
            )
        except Exception as exc:  # the next signal retries; the hold's deadline still applies
            log.warning("could not signal demand for endpoint %s: %s", route.key, exc)

    async def _attempt(
        self,
        client: UpstreamClient,
        route: EndpointRoute,
        version: VersionRoute,
        replica: Replica,
        call: Call,
        ticket: Ticket | None,
        start: float,
    ) -> Response:
        # the replica's spans, if it makes any, join the request's trace
        headers = {"content-type": "application/json", **trace_headers(call.span)}
        if call.priority_value is not None:
            headers[PRIORITY_VALUE_HEADER] = str(call.priority_value)
        raw = call.raw
        if replica.upstream:
            raw = orjson.dumps({**call.body, "model": version.upstream_model})
            if version.authorization:
                headers["authorization"] = version.authorization
        upstream = await client.request(
            "POST",
            replica.url + call.path,
            raw,
            headers,
            egress=self.egress if replica.upstream else None,
        )
        try:
            if upstream.status_code >= 500:
                raise _Failed(
                    f"{replica.name} answered {upstream.status_code}", code=upstream.status_code
                )
            if call.stream and upstream.status_code == 200:
                chunks = upstream.chunks()
                try:
                    first = await chunks.__anext__()
                except StopAsyncIteration:
                    raise _Failed(
                        f"{replica.name} ended its stream before the first byte",
                        code=upstream.status_code,
                        error_type="stream_ended_before_first_byte",
                    ) from None
                ttft = time.perf_counter() - start
                relay = _Relay(self, route, version, replica, upstream, chunks, ticket, start, ttft)
                relay.prompt_tokens = len(call.prompt) // 4
                relay.operation = OPERATIONS.get(call.path, "")
                relay.evaluated = call if self.evals.sampled(route, call) else None
                if call.span is not None:  # the relay ends the span when the stream ends
                    relay.span, call.span = call.span, None
                    record_first_token(relay.span, ttft)
                return StreamingResponse(
                    relay.run(first),
                    media_type="text/event-stream",
                    headers=_ours(route, version, replica),
                )
            content = await upstream.read()
        except BaseException:
            await upstream.aclose()
            raise
        await upstream.aclose()
        return self._answered(route, version, replica, call, ticket, start, upstream, content)

    def _answered(
        self,
        route: EndpointRoute,
        version: VersionRoute,
        replica: Replica,
        call: Call,
        ticket: Ticket | None,
        start: float,
        upstream: UpstreamResponse,
        content: bytes,
    ) -> Response:
        """Settle and record a whole (non-streamed) answer, and relay it."""
        duration = time.perf_counter() - start
        self.router.end(replica.url)
        code = upstream.status_code
        output, total = _usage(content) if code == 200 else (0, 0)
        if call.span is not None and code == 200:
            record_answer(call.span, content)
        if ticket is not None:
            self.limiter.settle(ticket, total or self._reservation(call))
        sample = self.telemetry.record(
            route.namespace,
            route.name,
            version.name,
            code=code,
            # the client's first token came with the whole answer
            ttft=duration,
            tpot=answered_tpot(upstream.headers.get("server-timing"), duration, output),
            duration=duration,
            output_tokens=output,
            operation=OPERATIONS.get(call.path, ""),
            input_tokens=total - output if total > output else 0,
        )
        self.evals.consider(route, version.name, call, sample, content if code == 200 else None)
        media = upstream.headers.get("content-type", "application/json")
        return Response(
            content, status_code=code, media_type=media, headers=_ours(route, version, replica)
        )

    # -- load scraping ------------------------------------------------------------------------

    async def _scrape_forever(self) -> None:
        while True:
            await asyncio.sleep(self.scrape_interval)
            try:
                await self.scrape_once()
            except Exception:  # never let the scraper die; it retries next interval
                log.exception("scraping replica metrics failed")

    async def scrape_once(self) -> None:
        """Read queue depth, running requests and KV-cache use from every scraped replica."""
        urls = {
            replica.url
            for route in self.table.routes().values()
            if isinstance(route, EndpointRoute)
            and (route.policy in SCRAPED_POLICIES or route.qos is not None)
            for version in route.versions
            for replica in version.replicas
            if not replica.upstream
        }
        if urls:
            await asyncio.gather(*(self._scrape(url) for url in urls))
        self.flow.pump()  # a replica may have room again

    async def _scrape(self, url: str) -> None:
        base = url[: -len("/v1")] if url.endswith("/v1") else url
        try:
            status, content = await self.client().get(base + "/metrics", self.scrape_interval)
        except (UpstreamError, TimeoutError):
            return
        if status != 200:
            return
        load = self.router.load(url)
        for line in content.splitlines():
            name, _, value = line.partition(b" ")
            attr = _METRIC_NAMES.get(name.split(b"{", 1)[0])
            if attr is not None:
                with contextlib.suppress(ValueError):
                    setattr(load, attr, float(value.split()[0]))


class _Failed(Exception):
    """A replica failed before answering (5xx, or a stream without a first chunk)."""

    def __init__(self, message: str, *, code: int, error_type: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.error_type = error_type or str(code)


def _ours(route: EndpointRoute, version: VersionRoute, replica: Replica) -> dict[str, str]:
    """The headers that say which endpoint, version and replica answered."""
    return {
        "x-modelplane-endpoint": route.name,
        "x-modelplane-version": version.name,
        "x-modelplane-replica": replica.name,
    }


@dataclass
class _Relay:
    """Relays a streamed answer, then settles the request's accounting once it ends."""

    gateway: Gateway
    route: EndpointRoute
    version: VersionRoute
    replica: Replica
    upstream: UpstreamResponse
    chunks: AsyncIterator[bytes]
    ticket: Ticket | None
    start: float
    ttft: float
    prompt_tokens: int = 0
    #: the GenAI ``gen_ai.operation.name`` of the call (``chat``...)
    operation: str = ""
    span: Span | None = None
    #: the call, when its answer is sampled for an evaluation (the stream is then kept, bounded)
    evaluated: Call | None = None

    async def run(self, first: bytes) -> AsyncIterator[bytes]:
        code = 200
        kept = _Kept() if self.evaluated is not None else None
        pieces = (
            first.count(b'"content":"') + first.count(b'"text":"') - first.count(b'"content":""')
        )
        watch = StreamWatch()
        watch.feed(first)
        failure: str | None = None
        try:
            if kept is not None:
                kept.add(first)
            yield first
            async for chunk in self.chunks:
                pieces += (
                    chunk.count(b'"content":"')
                    + chunk.count(b'"text":"')
                    - chunk.count(b'"content":""')
                )
                watch.feed(chunk)
                if kept is not None:
                    kept.add(chunk)
                yield chunk
            if kept is not None:  # a stream the client left early is not evaluated
                kept.complete = True
        except UpstreamError as exc:
            code = 502
            failure = "stream_interrupted"
            message = (
                f"replica {self.replica.name} of {self.route.key} failed after the answer started"
                f" ({type(exc).__name__}); the answer is incomplete"
            )
            yield openai_stream_error(message, "upstream_error", code="stream_interrupted")
        finally:
            # settle first: when the client went away, the await below may be cancelled at once
            self._settle(code, watch, pieces, kept)
            if self.span is not None:
                record_stream(self.span, first, watch.finish, watch.usage)
                end_request_span(self.span, code=code, error=failure)
            await self.upstream.aclose()

    def _settle(self, code: int, watch: StreamWatch, pieces: int, kept: _Kept | None) -> None:
        """Charge what the stream used: the last ``usage`` it carried, else an estimate."""
        gateway = self.gateway
        gateway.router.end(self.replica.url)
        output, total = watch.tokens()
        output = output or max(0, pieces)
        duration = time.perf_counter() - self.start
        if self.ticket is not None:
            gateway.limiter.settle(self.ticket, total or output + self.prompt_tokens)
        sample = gateway.telemetry.record(
            self.route.namespace,
            self.route.name,
            self.version.name,
            code=code,
            ttft=self.ttft,
            tpot=streamed_tpot(self.ttft, duration, output),
            duration=duration,
            output_tokens=output,
            operation=self.operation,
            input_tokens=total - output if total > output else 0,
            streamed=True,
        )
        if kept is None or self.evaluated is None or code != 200 or not kept.complete:
            return
        if kept.full:  # too long to keep: counted, as a full queue's are
            route = self.route
            gateway.telemetry.count_evaluation(
                route.namespace, route.name, self.version.name, "dropped"
            )
            return
        answer = b"".join(kept.chunks)
        gateway.evals.offer(
            self.route, self.version.name, self.evaluated, answer, sample, streamed=True
        )


#: the most bytes of a streamed answer kept for its evaluation; a longer one is not evaluated
_KEPT_BYTES = 1 << 20


@dataclass
class _Kept:
    """The chunks of a streamed answer sampled for an evaluation, up to ``_KEPT_BYTES``."""

    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    full: bool = False
    #: the stream reached its end (not cut short by the client leaving or an error)
    complete: bool = False

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > _KEPT_BYTES:
            self.full, self.chunks = True, []
        elif not self.full:
            self.chunks.append(chunk)


def _usage(content: bytes) -> tuple[int, int]:
    """(completion tokens, total tokens) of a JSON answer; zeros when it has no usage."""
    if b'"usage"' not in content:
        return (0, 0)
    try:
        usage = orjson.loads(content).get("usage") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return (0, 0)
    return token_counts(usage)


def _policy_denied(decision: Decision) -> GatewayError:
    """The OpenAI-shaped 403 of a runtime Policy's deny, naming the policies and their reasons."""
    named = zip(decision.policies, decision.reasons, strict=False)
    why = "; ".join(f"{p}: {r}" if r else p for p, r in named) or "a runtime Policy"
    return GatewayError(
        403, f"The call is forbidden by {why}.", type="permission_error", code="policy_denied"
    )
