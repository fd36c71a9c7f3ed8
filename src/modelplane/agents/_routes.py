"""``/agents/{namespace}/{agent}/instances[...]``: the REST surface of agent instances.

Errors leave as Kubernetes ``Status`` objects (the server's handlers render every
:class:`~modelplane.api.errors.ModelplaneError`). Writes are durable before the answer; work is
picked up by the runtime that owns the instance's shard.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from modelplane.agents._journal import Database
from modelplane.agents.runtime import Instances
from modelplane.api.errors import BadRequest
from modelplane.store import Store


def agents_url(store_url: str) -> str:
    """Where the runtime's tables live for a store: ``agents.db`` beside a SQLite store, or the
    same PostgreSQL database."""
    if store_url.startswith("sqlite:"):
        base, _, _query = store_url.partition("?")
        head, _, _ = base.rpartition("/")
        return f"{head}/agents.db"
    return store_url


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not JSON ({exc}); send a JSON object") from None
    if not isinstance(value, dict):
        raise BadRequest("the request body must be a JSON object")
    return value


def _actor(request: Request) -> str:
    user = request.scope.get("user")
    name = getattr(user, "display_name", None) or getattr(user, "username", None)
    return str(name) if name else request.headers.get("x-modelplane-user", "anonymous")


def routes(store: Store) -> list[BaseRoute]:
    """The instance routes for the agents of ``store``."""
    state: dict[str, Instances] = {}

    def instances() -> Instances:
        if "i" not in state:
            state["i"] = Instances(Database(agents_url(store.url)))
        return state["i"]

    def agent_version(namespace: str, agent: str) -> str:
        obj = store.get("Agent", namespace, agent)
        return str(obj["metadata"].get("generation", 1))

    async def collection(request: Request) -> Response:
        ns, agent = request.path_params["namespace"], request.path_params["agent"]
        if request.method == "POST":
            body = await _body(request)
            version = await run_in_threadpool(agent_version, ns, agent)
            info = await run_in_threadpool(
                instances().create,
                ns,
                agent,
                body.get("id"),
                body.get("input"),
                version=version,
                actor=_actor(request),
            )
            return _json(info, 201)
        q = request.query_params
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            raise BadRequest("limit must be an integer") from None
        items, token = await run_in_threadpool(
            instances().list,
            ns,
            agent,
            status=q.get("status"),
            limit=limit,
            continue_token=q.get("continue"),
        )
        return _json({"items": items, "continue": token})

    async def one(request: Request) -> Response:
        p = request.path_params
        info = await run_in_threadpool(instances().get, p["namespace"], p["agent"], p["id"])
        return _json(info)

    async def action(request: Request) -> Response:
        p = request.path_params
        key = (p["namespace"], p["agent"], p["id"])
        what = p["action"]
        actor = _actor(request)
        body = await _body(request) if request.method == "POST" else {}
        i = instances()
        if what == "messages" and request.method == "POST":
            await run_in_threadpool(i.send, *key, body.get("payload"), actor=actor)
        elif what == "input" and request.method == "POST":
            await run_in_threadpool(i.give_input, *key, body.get("value"), actor=actor)
        elif what == "cancel" and request.method == "POST":
            await run_in_threadpool(i.cancel, *key, actor=actor)
        elif what == "journal" and request.method == "GET":
            after = int(request.query_params.get("after", "0"))
            return _json({"items": await run_in_threadpool(i.journal, *key, after=after)})
        elif what == "audit" and request.method == "GET":
            return _json({"items": await run_in_threadpool(i.audit, *key)})
        else:
            raise BadRequest(
                f"{request.method} .../{what} is not an instance action; use POST messages, input"
                " or cancel, or GET journal or audit"
            )
        return _json({"accepted": True}, 202)

    return [
        Mount(
            "/agents",
            routes=[
                Route("/{namespace}/{agent}/instances", collection, methods=["GET", "POST"]),
                Route("/{namespace}/{agent}/instances/{id}", one, methods=["GET"]),
                Route(
                    "/{namespace}/{agent}/instances/{id}/{action}", action, methods=["GET", "POST"]
                ),
            ],
        )
    ]
