"""The object routes: create, get, list (and watch), replace, merge-patch, delete, and ``/status``.

URLs (``{group}/{version}`` of the kind, ``{plural}`` its resource name)::

    /apis/{group}/{version}/namespaces/{namespace}/{plural}            GET list/watch, POST
    /apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}     GET, PUT, PATCH, DELETE
    /apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}/status  GET, PUT, PATCH
    /apis/{group}/{version}/{plural}                    GET list/watch across namespaces
                                                        (and POST, for cluster-scoped kinds)
    /apis/{group}/{version}/{plural}/{name}[/status]    cluster-scoped kinds

Every write is validated with :func:`modelplane.api.validate` before it reaches the store; the
namespace and name of a body must match the URL (a missing one is taken from it, as are a missing
``apiVersion`` and ``kind``); unknown ``metadata`` keys follow ``?fieldValidation=`` (see
:mod:`modelplane.server._fields`). PATCH is an RFC 7386 merge patch applied to the stored object, and
the result is validated; it is written under optimistic concurrency and retried when another
writer got in between, unless the patch itself names a ``metadata.resourceVersion`` (then a stale
one is a 409). Writes to ``/status`` change only ``status``; writes to the object ignore
``status``.

Every write takes ``?dryRun=All``: it is authorized, validated and checked for conflicts as a
write is, and answers with the object it would store, but stores nothing. A create, replace or
patch answers with the header ``Modelplane-Previous-Resource-Version`` (the object's
resourceVersion before the write, empty for a create), so a client learns from the one response
whether anything changed: a write that changes nothing keeps the resourceVersion, and
``modelplane apply`` prints ``unchanged``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import Response

from modelplane.api import (
    KindInfo,
    check_dns_label,
    check_dns_subdomain,
    principal_of,
    shown,
    validate,
)
from modelplane.api.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Expired,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
)
from modelplane.server._apply import apply, track_update
from modelplane.server._authz import (
    authorize_read,
    authorize_write,
    namespace_filter,
    presenter,
    visible,
)
from modelplane.server._bodies import (
    APPLY_PATCH_TYPE,
    JSON_PATCH_TYPE,
    OBJECT_TYPES,
    PATCH_TYPES,
    STRATEGIC_MERGE_PATCH_TYPE,
    media_type,
    read_object,
    read_optional_object,
)
from modelplane.server._context import ServerContext, context
from modelplane.server._fields import add_warnings, drop_unknown_metadata
from modelplane.server._jsonpatch import apply_json_patch, decode_json_patch
from modelplane.server._query import (
    FieldValidation,
    ListOptions,
    dry_run,
    field_manager,
    field_validation,
    flag,
    list_options,
    text,
)
from modelplane.server._responses import JSONResponse, dump_json
from modelplane.server._table import (
    IncludeObject,
    include_object,
    table,
    wants_table,
    watch_presenter,
)
from modelplane.server._watch import WatchRequest, wait_for_version, watch_response
from modelplane.store import JSON, Store, merge_patch, parse_field_selector

#: how often a merge patch is retried when other writers keep changing the object under it
_PATCH_ATTEMPTS = 5

_T = TypeVar("_T")

#: the object's resourceVersion before the write (empty: it did not exist)
PREVIOUS_VERSION_HEADER = "Modelplane-Previous-Resource-Version"


def _valid(check: Callable[[str], str], value: str) -> bool:
    """Whether ``value`` passes one of the API's metadata name rules."""
    try:
        check(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Target:
    """What a URL names: a kind, a namespace (``""`` cluster-scoped, None all) and maybe a name."""

    info: KindInfo
    namespace: str | None
    name: str | None = None

    @property
    def store_namespace(self) -> str:
        """The namespace argument of single-object store calls."""
        return self.namespace or ""

    def describe(self) -> str:
        where = f" in namespace {self.namespace!r}" if self.namespace else ""
        return f"{self.info.kind} {self.name!r}{where}"


def _target(request: Request, *, item: bool) -> Target:
    params = request.path_params
    ctx = context(request)
    info = ctx.catalog.resource(params["group"], params["version"], params["plural"])
    namespace: str | None = params.get("namespace")
    base = f"/apis/{info.group}/{info.version}"
    if namespace is not None:
        if not info.namespaced:
            raise NotFound(
                f"{info.kind} is cluster-scoped: its objects are at {base}/{info.plural}, not in a"
                " namespace"
            )
        if not _valid(check_dns_label, namespace):
            raise BadRequest(
                f"the namespace {shown(namespace)} in the URL is not a valid namespace name:"
                " lowercase letters, digits and '-', starting and ending with a letter or digit,"
                " at most 63 characters"
            )
    elif not info.namespaced:
        namespace = ""
    elif item:
        raise NotFound(
            f"{info.kind} is namespaced: its objects are at"
            f" {base}/namespaces/{{namespace}}/{info.plural}/{params['name']}"
        )
    name: str | None = params.get("name")
    if name is not None and not _valid(check_dns_subdomain, name):
        raise BadRequest(
            f"the name {shown(name)} in the URL is not a valid object name: lowercase letters,"
            " digits, '-' and '.', starting and ending with a letter or digit, at most 253"
            " characters"
        )
    return Target(info, namespace, name)


# -- the routes ---------------------------------------------------------------------------------


class Collection(HTTPEndpoint):
    """``.../{plural}``: list or watch (GET), create (POST)."""

    async def get(self, request: Request) -> Response:
        target = _target(request, item=False)
        ctx = context(request)
        options = list_options(request.query_params)
        as_table = _table_request(request)
        present = presenter(request, target.info)
        verb = "watch" if options.watch else "list"
        admits = None
        if target.namespace is None:
            admits = namespace_filter(request, target.info, verb)
        else:
            authorize_read(request, target.info, verb, target.namespace)
        if options.watch:
            if as_table is not None:
                present = watch_presenter(target.info, as_table, present)
            return await _watch(ctx, target, options, present, admits)
        if options.resource_version:
            await _list_version(ctx.store, options)
        body = await run_in_threadpool(
            _list_json,
            ctx.store,
            target,
            label_selector=options.label_selector,
            field_selector=options.field_selector,
            limit=options.limit or None,
            continue_token=options.continue_token,
            present=present,
            as_table=as_table,
            admits=admits,
        )
        return JSONResponse(body)

    async def post(self, request: Request) -> Response:
        target = _target(request, item=False)
        if target.namespace is None:
            base = f"/apis/{target.info.group}/{target.info.version}"
            raise MethodNotAllowed(
                f"{target.info.kind} objects are created in a namespace: POST"
                f" {base}/namespaces/{{namespace}}/{target.info.plural}"
            )
        authorize_write(request, target.info, "create")
        mode = field_validation(request.query_params)
        manager = _manager(request)
        obj = _claim(await read_object(request, OBJECT_TYPES), target)
        dropped = drop_unknown_metadata(obj, mode)
        store = context(request).store
        create = _dry_create(store) if dry_run(request.query_params) else store.create
        admit = _admitter(request, "create")
        created = await run_in_threadpool(
            lambda: create(_tracked(None, admit(_validated(obj, target)), manager))
        )
        shown = visible(request, target.info, created)
        response = JSONResponse(shown, status_code=201, headers={PREVIOUS_VERSION_HEADER: ""})
        return add_warnings(response, dropped, created)


class Item(HTTPEndpoint):
    """``.../{plural}/{name}``: get, replace (PUT), merge-patch (PATCH), delete."""

    async def get(self, request: Request) -> Response:
        return await _get(request)

    async def put(self, request: Request) -> Response:
        target = _target(request, item=True)
        authorize_write(request, target.info, "update", target.name)
        mode = field_validation(request.query_params)
        manager = _manager(request)
        obj = _claim(await read_object(request, OBJECT_TYPES), target)
        dropped = drop_unknown_metadata(obj, mode)
        store = context(request).store
        write = _Write(store.update, request, _admitter(request, "update"))
        updated = await run_in_threadpool(
            _read_modify_write, store, target, obj, write, _replacement, manager
        )
        return add_warnings(write.response(request, target, updated), dropped, updated)

    async def patch(self, request: Request) -> Response:
        target = _target(request, item=True)
        media = media_type(request)
        if media == APPLY_PATCH_TYPE:
            return await _server_side_apply(request, target)
        authorize_write(request, target.info, "patch", target.name)
        mode = field_validation(request.query_params)
        manager = _manager(request)
        store = context(request).store
        write = _Write(store.update, request, _admitter(request, "patch"))
        if media == JSON_PATCH_TYPE:
            operations = decode_json_patch(await request.body())
            result = await run_in_threadpool(
                _read_modify_write,
                store,
                target,
                {},
                write,
                lambda current, _: _patched(current, operations, mode),
                manager,
            )
            return add_warnings(write.response(request, target, result), [], result)
        if media == STRATEGIC_MERGE_PATCH_TYPE:
            raise UnsupportedMediaType(
                f"strategic merge patch is not supported for {target.info.kind} (as for custom"
                " resources in Kubernetes); send a merge patch (application/merge-patch+json,"
                " kubectl patch --type=merge), a JSON patch, or apply server-side"
            )
        patch = await read_object(request, PATCH_TYPES)
        dropped = drop_unknown_metadata(patch, mode)
        result = await run_in_threadpool(
            _read_modify_write, store, target, patch, write, _whole, manager
        )
        return add_warnings(write.response(request, target, result), dropped, result)

    async def delete(self, request: Request) -> Response:
        target = _target(request, item=True)
        authorize_write(request, target.info, "delete", target.name)
        options = await read_optional_object(request)
        version = _delete_precondition(request.query_params, options)
        store = context(request).store
        delete = _dry_delete(store) if dry_run(request.query_params) else store.delete
        admission = context(request).admission
        admit = _admitter(request, "delete")

        def admitted_delete() -> JSON:
            # the object is read only when a Policy covers its namespace: it is what is judged
            if admission is not None and admission.applies(target.store_namespace):
                admit(store.get(target.info.kind, target.store_namespace, str(target.name)))
            return delete(
                target.info.kind,
                target.store_namespace,
                str(target.name),
                resource_version=version,
            )

        deleted = await run_in_threadpool(admitted_delete)
        return JSONResponse(visible(request, target.info, deleted))


class StatusItem(HTTPEndpoint):
    """``.../{plural}/{name}/status``: the status subresource (GET, PUT, PATCH)."""

    async def get(self, request: Request) -> Response:
        return await _get(request)

    async def put(self, request: Request) -> Response:
        target = _target(request, item=True)
        authorize_write(request, target.info, "update status of", target.name, status=True)
        body = _claim(await read_object(request, OBJECT_TYPES), target)
        store = context(request).store
        write = _Write(store.update_status, request, _admitter(request, "update", status=True))
        result = await run_in_threadpool(
            _read_modify_write, store, target, body, write, _status_of_whole
        )
        return write.response(request, target, result)

    async def patch(self, request: Request) -> Response:
        target = _target(request, item=True)
        authorize_write(request, target.info, "patch status of", target.name, status=True)
        patch = await read_object(request, PATCH_TYPES)
        store = context(request).store
        write = _Write(store.update_status, request, _admitter(request, "patch", status=True))
        result = await run_in_threadpool(
            _read_modify_write, store, target, patch, write, _status_of_merged
        )
        return write.response(request, target, result)


# -- helpers ------------------------------------------------------------------------------------


def _admitter(
    request: Request, verb: str, *, status: bool = False, operation: str | None = None
) -> Callable[[JSON], JSON]:
    """The admission check of one write (see :mod:`modelplane.policy`): returns the object it
    allows, raises Forbidden naming the policies that deny. Cedar's ``context`` carries the
    ``operation`` (the verb, or ``apply``) and the ``subresource`` (``status`` or ``""``)."""
    admission = context(request).admission
    principal = principal_of(request.scope)
    facts = {"operation": operation or verb, "subresource": "status" if status else ""}

    def admit(obj: JSON) -> JSON:
        if admission is not None:
            admission.admit(principal, verb, obj, facts)
        return obj

    return admit


class _Write:
    """The store write of a replace or patch, or (``?dryRun=All``) none; remembers the version
    the write was made over (the precondition :func:`_read_modify_write` sets). The object is
    admitted (``admit``) as it is about to be written: after merging, validation and tracking."""

    def __init__(
        self, write: Callable[[JSON], JSON], request: Request, admit: Callable[[JSON], JSON]
    ) -> None:
        self._write = write
        self._admit = admit
        self._dry = dry_run(request.query_params)
        self.previous = ""

    def __call__(self, obj: JSON) -> JSON:
        self.previous = str(obj.get("metadata", {}).get("resourceVersion") or "")
        self._admit(obj)
        return obj if self._dry else self._write(obj)

    def response(self, request: Request, target: Target, result: JSON) -> Response:
        headers = {PREVIOUS_VERSION_HEADER: self.previous}
        return JSONResponse(visible(request, target.info, result), headers=headers)


def _dry_create(store: Store) -> Callable[[JSON], JSON]:
    """A create that stores nothing: the object as it would be created, or AlreadyExists."""

    def create(obj: JSON) -> JSON:
        metadata = obj["metadata"]
        namespace, name = str(metadata.get("namespace") or ""), str(metadata["name"])
        try:
            store.get(str(obj["kind"]), namespace, name)
        except NotFound:
            return obj
        where = f" in namespace {namespace!r}" if namespace else ""
        raise AlreadyExists(
            f"{obj['kind']} {name!r}{where} already exists: update it instead, or delete it first"
        )

    return create


def _dry_delete(store: Store) -> Callable[..., JSON]:
    """A delete that deletes nothing: the object (NotFound, or Conflict on a stale version)."""

    def delete(kind: str, namespace: str, name: str, *, resource_version: str | None) -> JSON:
        obj = store.get(kind, namespace, name)
        current = str(obj["metadata"].get("resourceVersion") or "")
        if resource_version is not None and resource_version != current:
            raise Conflict(
                f"{kind} {name!r} is at resourceVersion {current}, not {resource_version}: it"
                " changed since it was read; read it again"
            )
        return obj

    return delete


async def _watch(
    ctx: ServerContext,
    target: Target,
    options: ListOptions,
    present: Callable[[JSON], JSON] | None,
    admits: Callable[[str], bool] | None = None,
) -> Response:
    """A watch; ``sendInitialEvents`` (or its absence with no version) decides whether it starts
    with the existing objects, as in kube-apiserver. ``admits``: which namespaces' objects the
    caller sees (None: all)."""
    version = options.resource_version or None
    initial = (
        version is None if options.send_initial_events is None else options.send_initial_events
    )
    if initial and version is not None:
        await wait_for_version(ctx.store, version)  # the objects are at least that new
    elif not initial and version is None:
        version = await run_in_threadpool(ctx.store.current_resource_version)
    watch = WatchRequest(
        info=target.info,
        namespace=target.namespace or None,
        resource_version=None if initial else version,
        label_selector=options.label_selector,
        field_selector=options.field_selector,
        bookmarks=options.bookmarks,
        timeout=options.timeout or None,
    )
    return await watch_response(
        ctx.store,
        watch,
        ctx.watch_streams,
        bookmark_interval=ctx.bookmark_interval,
        field_filter=_field_filter(options.field_selector, admits),
        present=present,
    )


async def _list_version(store: Store, options: ListOptions) -> None:
    """A list at ``resourceVersion=N``: the store must have reached N (kube-apiserver waits 3 s,
    then answers 504); ``Exact`` lists only the current version (no history is kept to list)."""
    version = options.resource_version or 0
    await wait_for_version(store, version)
    if options.resource_version_match == "Exact":
        current = await run_in_threadpool(store.current_resource_version)
        if current != version:
            raise Expired(
                f"resourceVersion {version} is not the current version ({current}) and lists at"
                " older versions are not kept; list without resourceVersionMatch=Exact"
            )


async def _get(request: Request) -> Response:
    target = _target(request, item=True)
    authorize_read(request, target.info, "get", target.store_namespace, target.name)
    store = context(request).store
    obj = await run_in_threadpool(
        store.get, target.info.kind, target.store_namespace, str(target.name)
    )
    shown = visible(request, target.info, obj)
    as_table = _table_request(request)
    if as_table is not None:
        metadata = {"resourceVersion": str(obj["metadata"].get("resourceVersion", ""))}
        return JSONResponse(table(target.info, [shown], include=as_table, metadata=metadata))
    return JSONResponse(shown)


def _table_request(request: Request) -> IncludeObject | None:
    """What each row of a Table carries, when the client asked for a Table; None when not."""
    if not wants_table(request.headers.get("accept", "")):
        return None
    return include_object(request.query_params)


def _list_json(
    store: Store,
    target: Target,
    *,
    label_selector: str | None,
    field_selector: str | None,
    limit: int | None,
    continue_token: str | None,
    present: Callable[[JSON], JSON] | None = None,
    as_table: IncludeObject | None = None,
    admits: Callable[[str], bool] | None = None,
) -> bytes:
    """One page of a list, rendered (in the worker thread: a big list is costly to serialise);
    ``admits``: which namespaces' objects the caller sees (None: all)."""
    page = store.list(
        target.info.kind,
        target.namespace or None,
        label_selector=label_selector,
        field_selector=field_selector,
        limit=limit,
        continue_token=continue_token,
    )
    metadata = {"resourceVersion": str(page.resource_version)}
    if page.continue_token:
        metadata["continue"] = page.continue_token
    items = page.items
    if admits is not None:
        items = [o for o in items if admits(str(o["metadata"].get("namespace") or ""))]
    items = items if present is None else [present(o) for o in items]
    if as_table is not None:
        return dump_json(table(target.info, items, include=as_table, metadata=metadata))
    return dump_json(
        {
            "apiVersion": target.info.api_version,
            "kind": f"{target.info.kind}List",
            "metadata": metadata,
            "items": items,
        }
    )


def _claim(obj: JSON, target: Target) -> JSON:
    """Check that ``obj`` is the object the URL names, filling what the URL implies."""
    info = target.info
    obj.setdefault("apiVersion", info.api_version)
    kind = obj.setdefault("kind", info.kind)
    if kind != info.kind:
        raise BadRequest(
            f"the body is a {kind!r} but this URL serves {info.kind}; send it to the {kind}"
            " resource's URL, or fix `kind`"
        )
    metadata = obj.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        return obj  # validation names the problem
    namespace = metadata.get("namespace")
    if info.namespaced:
        if namespace is None:
            metadata["namespace"] = target.namespace
        elif namespace != target.namespace:
            raise BadRequest(
                f"metadata.namespace {namespace!r} does not match the namespace"
                f" {target.namespace!r} in the URL; fix one of them"
            )
    elif namespace not in (None, ""):
        raise BadRequest(
            f"{info.kind} is cluster-scoped, but the body sets metadata.namespace {namespace!r};"
            " remove it"
        )
    if target.name is not None:
        name = metadata.get("name")
        if name is None:
            metadata["name"] = target.name
        elif name != target.name:
            raise BadRequest(
                f"metadata.name {name!r} does not match the name {target.name!r} in the URL;"
                " renaming is not possible (create a new object and delete the old one)"
            )
    return obj


def _validated(obj: JSON, target: Target) -> JSON:
    return validate(obj, default_namespace=target.namespace or "default")


def _whole(current: JSON, body: JSON) -> JSON:
    """PATCH on the object: the merged object (status changes are ignored by the store), without
    unknown metadata keys stored before they were refused."""
    merged = dict(merge_patch(current, body))
    drop_unknown_metadata(merged, "Ignore")
    return merged


def _replacement(current: JSON, body: JSON) -> JSON:
    """PUT on the object: the body as it is."""
    return body


def _patched(current: JSON, operations: list[JSON], mode: FieldValidation) -> JSON:
    """JSON patch on the object: the patched object, unknown metadata handled as ``mode`` says."""
    result = apply_json_patch(current, operations)
    drop_unknown_metadata(result, mode)
    return result


def _manager(request: Request) -> str:
    return field_manager(request.query_params, request.headers.get("user-agent", ""))


def _tracked(current: JSON | None, obj: JSON, manager: str) -> JSON:
    """``obj`` with the managedFields of ``manager`` having written it over ``current``."""
    obj.setdefault("metadata", {})["managedFields"] = track_update(current, obj, manager)
    return obj


async def _server_side_apply(request: Request, target: Target) -> Response:
    """PATCH with ``application/apply-patch+yaml``: see :mod:`modelplane.server._apply`."""
    authorize_write(request, target.info, "apply", target.name)
    mode = field_validation(request.query_params)
    query = request.query_params
    manager = field_manager(query, request.headers.get("user-agent", ""), required=True)
    force = bool(flag(query, "force"))
    applied = _claim(await read_object(request, (APPLY_PATCH_TYPE,)), target)
    dropped = drop_unknown_metadata(applied, mode)
    store = context(request).store
    dry = dry_run(query)
    admit = _admitter(request, "patch", operation="apply")
    result, previous = await run_in_threadpool(
        _apply_write, store, target, applied, manager, force, dry, admit
    )
    response = JSONResponse(
        visible(request, target.info, result),
        status_code=201 if previous is None else 200,
        headers={PREVIOUS_VERSION_HEADER: previous or ""},
    )
    return add_warnings(response, dropped, result)


def _apply_write(
    store: Store,
    target: Target,
    applied: JSON,
    manager: str,
    force: bool,
    dry: bool = False,
    admit: Callable[[JSON], JSON] = lambda obj: obj,
) -> tuple[JSON, str | None]:
    """Apply ``applied`` to the stored object (or create it); the result, and the
    resourceVersion it was applied over (None: it was created). Retried when another writer got
    in between, unless ``applied`` pins a version. ``dry``: the result is not stored."""
    pinned = _requested_version(applied)

    def attempt() -> tuple[JSON, str | None]:
        try:
            current: JSON | None = store.get(
                target.info.kind, target.store_namespace, str(target.name)
            )
        except NotFound:
            if pinned:
                raise
            current = None
        merged = apply(current, applied, manager, force=force)
        _check_identity(merged, target)
        obj = _validated(merged, target)
        obj.setdefault("metadata", {})["managedFields"] = merged["metadata"]["managedFields"]
        admit(obj)
        if current is None:
            return (obj if dry else _raced(pinned, lambda: store.create(obj))), None
        previous = str(current["metadata"]["resourceVersion"])
        if dry and pinned and pinned != previous:
            raise Conflict(
                f"{target.describe()} is at resourceVersion {previous}, not {pinned}: it"
                " changed since it was read; read it again"
            )
        obj["metadata"]["resourceVersion"] = previous if dry else pinned or previous
        return (obj if dry else _raced(pinned, lambda: store.update(obj))), previous

    return _until_settled(target, attempt, "while it was applied", "apply again")


class _Raced(Exception):
    """Another writer got in between this read and write: read again and retry."""


def _raced(pinned: str | None, write: Callable[[], _T]) -> _T:
    """``write``, with a lost race (a stale resourceVersion, or a create another won) as
    :class:`_Raced`; unless the body pins a resourceVersion: then that version is the
    precondition and a stale one is the caller's 409."""
    try:
        return write()
    except AlreadyExists:
        raise _Raced from None
    except Conflict:
        if pinned:
            raise
        raise _Raced from None


def _until_settled(target: Target, attempt: Callable[[], _T], doing: str, fix: str) -> _T:
    """``attempt`` again while other writers get in between (see :func:`_raced`)."""
    for _ in range(_PATCH_ATTEMPTS):
        try:
            return attempt()
        except _Raced:
            continue
    raise Conflict(f"{target.describe()} kept changing {doing} ({_PATCH_ATTEMPTS} attempts); {fix}")


def _status_of_merged(current: JSON, body: JSON) -> JSON:
    """PATCH on /status: the stored object with the merged status."""
    merged = merge_patch(current, body)
    return _with_status(current, merged.get("status") if isinstance(merged, dict) else None)


def _status_of_whole(current: JSON, body: JSON) -> JSON:
    """PUT on /status: the stored object with the body's status."""
    return _with_status(current, body.get("status"))


def _with_status(current: JSON, status: Any) -> JSON:
    result = {k: v for k, v in current.items() if k != "status"}
    if status is not None:
        result["status"] = status
    return result


def _requested_version(body: JSON) -> str | None:
    metadata = body.get("metadata")
    version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
    return version if isinstance(version, str) and version else None


def _read_modify_write(
    store: Store,
    target: Target,
    body: JSON,
    write: Callable[[JSON], JSON],
    combine: Callable[[JSON, JSON], JSON],
    manager: str | None = None,
) -> JSON:
    """Read, combine with ``body``, validate, write; retried on conflict unless the body pins a
    resourceVersion (then that version is the precondition and a stale one is a 409).
    ``manager`` (writes of the object, not of its status) takes the fields it changed."""
    pinned = _requested_version(body)

    def attempt() -> JSON:
        current = store.get(target.info.kind, target.store_namespace, str(target.name))
        result = combine(current, body)
        _check_identity(result, target)
        obj = _validated(result, target)
        if manager is not None:
            obj = _tracked(current, obj, manager)
        metadata = obj.setdefault("metadata", {})
        metadata["resourceVersion"] = pinned or current["metadata"]["resourceVersion"]
        return _raced(pinned, lambda: write(obj))

    return _until_settled(target, attempt, "while the patch was applied", "try again")


def _check_identity(obj: JSON, target: Target) -> None:
    """A patch may not turn the object into another one."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        raise BadRequest("the patch removes metadata; patch fields inside it instead")
    for field, wanted, actual in (
        ("kind", target.info.kind, obj.get("kind")),
        ("metadata.name", target.name, metadata.get("name")),
        ("metadata.namespace", target.namespace or None, metadata.get("namespace") or None),
    ):
        if actual != wanted:
            raise BadRequest(
                f"the patch changes {field} from {wanted!r} to {actual!r}; it cannot change"
            )


def _delete_precondition(query: QueryParams, options: JSON | None) -> str | None:
    """``?resourceVersion=`` or a DeleteOptions body's ``preconditions.resourceVersion``."""
    version = text(query, "resourceVersion")
    if options is not None:
        preconditions = options.get("preconditions")
        if preconditions is not None and not isinstance(preconditions, dict):
            raise BadRequest("DeleteOptions.preconditions must be an object")
        pinned = (preconditions or {}).get("resourceVersion")
        if pinned is not None:
            if not isinstance(pinned, str):
                raise BadRequest("DeleteOptions.preconditions.resourceVersion must be a string")
            if version is not None and version != pinned:
                raise BadRequest(
                    f"the resourceVersion in the URL ({version}) and in the body ({pinned})"
                    " differ; send one"
                )
            version = pinned
    return version


def _field_filter(
    selector: str | None, admits: Callable[[str], bool] | None = None
) -> Callable[[JSON], bool]:
    """Match watch events against a field selector, parsed as the store parses list selectors
    (the store's watch takes none), and against the namespaces the caller sees."""
    fields = parse_field_selector(selector)

    def matches(obj: JSON) -> bool:
        metadata = obj.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "")
        if admits is not None and not admits(namespace):
            return False
        return fields.matches(namespace, str(metadata.get("name") or ""))

    return matches
