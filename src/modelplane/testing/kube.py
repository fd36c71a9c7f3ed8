"""A fake Kubernetes API server: the REST surface an operator talks to, in memory, over loopback.

There is no kube-apiserver on the machines this project is tested on, so the operator
(``modelplane operator``) is tested against this stand-in. It speaks the wire protocol of
kube-apiserver for any resource path — ``/api/v1/namespaces/{ns}/{plural}[/{name}[/status]]`` and
``/apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}[/status]]`` (and the all-namespaces
lists) — with what a controller relies on:

* ``metadata.uid``, ``resourceVersion`` (one counter), ``generation`` (bumped when ``spec``
  changes), ``creationTimestamp``;
* list with ``labelSelector`` (``k=v`` terms) and the list's ``resourceVersion``; ``watch=true``
  from a ``resourceVersion`` as a stream of ``{"type", "object"}`` lines until ``timeoutSeconds``;
* create (409 ``AlreadyExists``), get (404 ``NotFound``), replace (409 ``Conflict`` on a stale
  ``resourceVersion``; the main resource keeps ``status``, ``/status`` keeps the rest; a write
  that changes nothing is no event), JSON merge patch, server-side apply approximated (create, or
  merge the applied fields; no field ownership), delete — with owners' garbage collection done at once (objects whose
  ``ownerReferences`` name a deleted uid are deleted too);
* errors as ``Status`` objects.

It validates nothing and knows no kinds: a test plays the cluster (it sets a Deployment's
``status.readyReplicas`` as a kubelet would). Admission webhooks are not called.

Example::

    from modelplane.testing.kube import FakeKubeAPI

    with FakeKubeAPI() as kube:
        ...  # point a kubeconfig's server at kube.url
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Obj = dict[str, Any]
#: (api prefix such as "v1" or "apps/v1", plural)
Resource = tuple[str, str]
Key = tuple[str, str, str, str]


class FakeKubeAPI:
    """kube-apiserver's REST protocol in memory on ``127.0.0.1``; ``url`` is its base."""

    def __init__(self) -> None:
        self.objects: dict[Key, Obj] = {}
        self.events: list[tuple[int, Key, str, Obj]] = []
        self._rv = itertools.count(1)
        self.revision = 0
        self.changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeKubeAPI:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            with self.changed:
                self.revision = -1  # ends every watch
                self.changed.notify_all()
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeKubeAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a test (the cluster) reads and writes directly --------------------------------

    def get(self, resource: Resource, namespace: str, name: str) -> Obj | None:
        with self.changed:
            found = self.objects.get((*resource, namespace, name))
            return copy.deepcopy(found) if found is not None else None

    def list(self, resource: Resource, namespace: str | None = None) -> list[Obj]:
        with self.changed:
            return [
                copy.deepcopy(o)
                for (prefix, plural, ns, _), o in sorted(self.objects.items())
                if (prefix, plural) == resource and namespace in (None, ns)
            ]

    def set_status(self, resource: Resource, namespace: str, name: str, status: Obj) -> None:
        with self.changed:
            obj = self.objects[(*resource, namespace, name)]
            obj["status"] = copy.deepcopy(status)
            self._commit((*resource, namespace, name), "MODIFIED", obj)

    # -- the store ----------------------------------------------------------------------------

    def _commit(self, key: Key, kind: str, obj: Obj) -> None:
        rv = next(self._rv)
        self.revision = rv
        obj["metadata"]["resourceVersion"] = str(rv)
        self.events.append((rv, key, kind, copy.deepcopy(obj)))
        self.changed.notify_all()

    def create(self, key: Key, body: Obj) -> Obj:
        with self.changed:
            if key in self.objects:
                raise _Error(409, "AlreadyExists", f'{key[1]} "{key[3]}" already exists')
            meta = body.setdefault("metadata", {})
            meta.update(
                name=key[3],
                uid=str(uuid.uuid4()),
                generation=1,
                creationTimestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            if key[2]:
                meta["namespace"] = key[2]
            self.objects[key] = body
            self._commit(key, "ADDED", body)
            return copy.deepcopy(body)

    def replace(self, key: Key, body: Obj, *, status: bool) -> Obj:
        with self.changed:
            old = self._existing(key)
            sent = (body.get("metadata") or {}).get("resourceVersion")
            if sent and sent != old["metadata"]["resourceVersion"]:
                raise _Error(409, "Conflict", f'the object "{key[3]}" has been modified')
            new = copy.deepcopy(old)
            if status:
                new["status"] = body.get("status")
            else:
                kept = {f: old["metadata"][f] for f in ("uid", "creationTimestamp", "generation")}
                new = {**body, "status": old.get("status")}
                new["metadata"] = {**body.get("metadata", {}), **kept}
                if new.get("spec") != old.get("spec"):
                    new["metadata"]["generation"] = old["metadata"]["generation"] + 1
            if key[2]:
                new["metadata"].setdefault("namespace", key[2])
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if new == old:  # as kube-apiserver: a write that changes nothing is no event
                return copy.deepcopy(old)
            self.objects[key] = new
            self._commit(key, "MODIFIED", new)
            return copy.deepcopy(new)

    def patch(self, key: Key, patch: Obj, *, status: bool) -> Obj:
        with self.changed:  # an RLock: replace() takes it again
            old = copy.deepcopy(self._existing(key))
            merged = _merge(old, {"status": patch.get("status")} if status else patch)
            merged["metadata"].pop("resourceVersion", None)
            return self.replace(key, merged, status=status)

    def delete(self, key: Key) -> Obj:
        with self.changed:
            obj = self._existing(key)
            del self.objects[key]
            self._commit(key, "DELETED", obj)
            uid = obj["metadata"]["uid"]
            owned = [
                k
                for k, o in self.objects.items()
                if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])
            ]
            for k in owned:
                if k in self.objects:
                    self.delete(k)
            return copy.deepcopy(obj)

    def _existing(self, key: Key) -> Obj:
        found = self.objects.get(key)
        if found is None:
            raise _Error(404, "NotFound", f'{key[1]} "{key[3]}" not found')
        return found


class _Error(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge(out.get(k), v)
    return out


def _selected(obj: Obj, selector: str) -> bool:
    labels = obj["metadata"].get("labels") or {}
    for term in filter(None, selector.split(",")):
        k, _, v = term.partition("=")
        if labels.get(k.strip()) != v.strip().lstrip("="):
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKubeAPI
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # the tests' output stays clean
        pass

    def _route(self) -> tuple[Resource, str, str, bool, dict[str, list[str]]]:
        """(resource, namespace, name, status subresource, query) of the request's path."""
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        if parts[:1] == ["api"]:
            prefix, rest = parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            prefix, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        else:
            raise _Error(404, "NotFound", f"the server could not find {url.path}")
        namespace = ""
        if rest[:1] == ["namespaces"] and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3 or (len(rest) == 3 and rest[2] != "status"):
            raise _Error(404, "NotFound", f"the server could not find {url.path}")
        name = rest[1] if len(rest) > 1 else ""
        return (prefix, rest[0]), namespace, name, len(rest) == 3, parse_qs(url.query)

    def _body(self) -> Obj:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if not isinstance(body, dict):
            raise _Error(400, "BadRequest", "the body must be a JSON object")
        return body

    def _send(self, code: int, obj: Obj) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        try:
            resource, ns, name, status, query = self._route()
            key = (*resource, ns, name)
            fake = self.fake
            if method == "GET" and not name:
                if query.get("watch", ["false"])[0] in ("true", "1"):
                    return self._watch(resource, ns, query)
                return self._list(resource, ns, query)
            if method == "GET":
                found = fake.get(resource, ns, name)
                if found is None:
                    raise _Error(404, "NotFound", f'{resource[1]} "{name}" not found')
                return self._send(200, found)
            if method == "POST":
                body = self._body()
                key = (*resource, ns, str(body.get("metadata", {}).get("name", "")))
                return self._send(201, fake.create(key, body))
            if method == "PUT":
                return self._send(200, fake.replace(key, self._body(), status=status))
            if method == "PATCH":
                return self._patch(key, status)
            if method == "DELETE":
                return self._send(200, fake.delete(key))
            raise _Error(405, "MethodNotAllowed", f"{method} is not supported")
        except _Error as exc:
            self._send(exc.code, _status(exc))

    def _patch(self, key: Key, status: bool) -> None:
        """A JSON merge patch, or a server-side apply (``application/apply-patch+yaml``, JSON
        being YAML), which this fake approximates: create when absent, else a merge patch."""
        body = self._body()
        applying = self.headers.get("Content-Type", "").startswith("application/apply-patch")
        if applying and self.fake.get(key[:2], key[2], key[3]) is None:
            body.setdefault("metadata", {})["name"] = key[3]
            return self._send(201, self.fake.create(key, body))
        self._send(200, self.fake.patch(key, body, status=status))

    def _list(self, resource: Resource, ns: str, query: dict[str, list[str]]) -> None:
        selector = query.get("labelSelector", [""])[0]
        with self.fake.changed:
            items = [o for o in self.fake.list(resource, ns or None) if _selected(o, selector)]
            revision = self.fake.revision
        self._send(
            200, {"kind": "List", "metadata": {"resourceVersion": str(revision)}, "items": items}
        )

    def _watch(self, resource: Resource, ns: str, query: dict[str, list[str]]) -> None:
        since = int(query.get("resourceVersion", ["0"])[0] or 0)
        timeout = float(query.get("timeoutSeconds", ["30"])[0])
        selector = query.get("labelSelector", [""])[0]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        fake = self.fake
        try:
            while not deadline.is_set():
                with fake.changed:
                    if fake.revision < 0:
                        return
                    due = [
                        (rv, kind, obj)
                        for rv, (prefix, plural, o_ns, _), kind, obj in fake.events
                        if rv > since and (prefix, plural) == resource and ns in ("", o_ns)
                    ]
                    if not due:
                        fake.changed.wait(0.5)
                        continue
                for rv, kind, obj in due:
                    since = rv
                    if _selected(obj, selector):
                        line = json.dumps({"type": kind, "object": obj}) + "\n"
                        self.wfile.write(line.encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            timer.cancel()
            self.close_connection = True

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


def _status(exc: _Error) -> Obj:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": exc.message,
        "reason": exc.reason,
        "code": exc.code,
    }
