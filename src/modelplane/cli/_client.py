"""A small typed client for the Modelplane REST API, as the CLI needs it.

Every method returns decoded JSON (plain dicts in the Kubernetes envelope) or raises an error of
:mod:`modelplane.api.errors`: a ``Status`` body from the server is turned back into its error class
with :func:`~modelplane.api.errors.from_status`, and transport failures become
:class:`~modelplane.api.errors.Unavailable` / :class:`~modelplane.api.errors.Timeout` with a sentence
saying what to do. Nothing here prints: ``Warning`` headers of the server's answers (kube-apiserver's
``299 - "text"``) go to the ``on_warning`` callback the caller gives, as their text.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

import httpx
import orjson

from modelplane.api import errors

JSON = dict[str, Any]

DEFAULT_SERVER = "http://127.0.0.1:8470"
#: the field manager ``modelplane apply`` applies as (server-side apply)
FIELD_MANAGER = "modelplane"
_APPLY_PATCH_TYPE = "application/apply-patch+yaml"
#: the resourceVersion an object had before a write (the server's answer to every write)
_PREVIOUS_VERSION_HEADER = "Modelplane-Previous-Resource-Version"

#: one warning of a ``Warning`` header: code, agent, then the quoted text
_WARNING = re.compile(r'\s*\d{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"')


class KindRoute(Protocol):
    """What the client needs to know of a kind to build its URLs (``modelplane.api.KindInfo``)."""

    @property
    def kind(self) -> str: ...

    @property
    def group(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def plural(self) -> str: ...

    @property
    def namespaced(self) -> bool: ...


@dataclass(frozen=True)
class Applied:
    """The answer to one server-side apply."""

    obj: JSON
    #: True when the apply created the object (201)
    created: bool
    #: the object's resourceVersion before the apply, when the server said (None: it did not)
    previous_version: str | None

    @property
    def changed(self) -> bool:
        """Whether the apply changed anything: created, or a new resourceVersion."""
        if self.created or self.previous_version is None:
            return True
        return self.previous_version != str(self.obj.get("metadata", {}).get("resourceVersion"))


def tls_context(ca_file: str) -> ssl.SSLContext:
    """Verification that trusts the certificates in ``ca_file`` (PEM), as kubectl's
    ``--certificate-authority``: a server certificate issued by one of them, or one of them
    itself, is accepted for the host names it lists.

    Each certificate in the file is a trust anchor even when it is not a self-signed root (as
    Python 3.13 does by default): ``up`` trusts the very certificate it serves this way.
    """
    try:
        context = ssl.create_default_context(cafile=ca_file)
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        return context
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise errors.BadRequest(
            f"cannot read the certificate authority file {ca_file}: {reason}; pass"
            " --certificate-authority (or MODELPLANE_CA_FILE) with a PEM file of the CA that"
            " issued the server's certificate"
        ) from None


def read_token_file(path: str) -> str:
    """The bearer token in ``path``: its first line that is neither blank nor a ``#`` comment.

    A line may be ``token,user[,...]`` as in a Kubernetes static token file (the file a server was
    started with works for its clients too); only the token is kept.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise errors.BadRequest(
            f"cannot read the token file {path}: {exc.strerror or exc}; pass --token-file with a"
            " readable file or --token"
        ) from None
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            return text.split(",", 1)[0].strip()
    raise errors.BadRequest(f"the token file {path} holds no token (one token per line)")


class Client:
    """Talks to one Modelplane server over HTTP.

    ``server`` is the base URL (``http://127.0.0.1:8470``); ``token``, when given, is sent as
    ``Authorization: Bearer``. ``on_warning`` is called with the text of each warning the server
    sends (the CLI prints ``Warning: <text>`` on stderr, as kubectl does). ``ca_file``: a PEM
    file of the certificate authorities an ``https://`` server's certificate is checked against
    (default: the system's). Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        on_warning: Callable[[str], None] | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.on_warning = on_warning
        headers = {"Accept": "application/json", "User-Agent": "modelplane-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        verify: ssl.SSLContext | bool = tls_context(ca_file) if ca_file else True
        self._http = httpx.Client(
            base_url=self.server, headers=headers, timeout=timeout, verify=verify
        )

    # -- plumbing ------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: JSON | None = None,
    ) -> Any:
        """Send one request and return its decoded JSON body (or text when it is not JSON)."""
        return _decode(self._send(method, path, params=params, body=body))

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: JSON | None = None,
        content_type: str = "application/json",
    ) -> httpx.Response:
        """Send one request; the response, or the error it stands for."""
        content = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else None
        try:
            response = self._http.request(
                method, path, params=params, content=content, headers=headers
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if self.on_warning is not None:
            for text in warnings_of(response.headers.get_list("warning")):
                self.on_warning(text)
        if response.status_code >= 400:
            raise self._http_error(response)
        return response

    def _transport_error(self, exc: httpx.HTTPError) -> errors.ModelplaneError:
        if isinstance(exc, httpx.ConnectError) and _certificate_problem(exc):
            return errors.Unavailable(
                f"the certificate of the Modelplane server at {self.server} is not trusted"
                f" ({_certificate_problem(exc)}); pass --certificate-authority (or set"
                " MODELPLANE_CA_FILE) with the CA that issued it"
            )
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return errors.Unavailable(
                f"cannot reach the Modelplane server at {self.server}: is `modelplane up` running?"
                " set --server or MODELPLANE_SERVER"
            )
        if isinstance(exc, httpx.TimeoutException):
            return errors.Timeout(
                f"the Modelplane server at {self.server} did not answer in time ({exc!s})"
            )
        return errors.Unavailable(
            f"lost the connection to the Modelplane server at {self.server}"
            f" ({type(exc).__name__}: {exc})"
        )

    def _http_error(self, response: httpx.Response) -> errors.ModelplaneError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("kind") == "Status":
            error = errors.from_status(body)
        else:
            text = response.text.strip()[:500] or response.reason_phrase
            error = errors.ModelplaneError(
                f"the server at {self.server} answered {response.status_code}: {text}"
            )
        if isinstance(error, errors.Unauthorized) and "--token" not in error.message:
            hint = (
                "the server refused the token; check --token, --token-file or MODELPLANE_TOKEN"
                if self.token
                else "the server requires a token; pass --token or --token-file, or set"
                " MODELPLANE_TOKEN"
            )
            error.message = f"{error.message} ({hint})"
        return error

    # -- URLs ----------------------------------------------------------------------------------

    @staticmethod
    def path(
        info: KindRoute,
        namespace: str | None,
        name: str | None = None,
        subresource: str | None = None,
    ) -> str:
        """The REST path of a collection or an object; ``namespace=None`` means all namespaces."""
        parts = ["/apis", info.group, info.version]
        if info.namespaced and namespace is not None:
            parts += ["namespaces", namespace]
        parts.append(info.plural)
        if name is not None:
            parts.append(name)
            if subresource:
                parts.append(subresource)
        return "/".join(parts)

    # -- objects -------------------------------------------------------------------------------

    def get(self, info: KindRoute, namespace: str, name: str) -> JSON:
        result: JSON = self.request("GET", self.path(info, namespace, name))
        return result

    def list_page(
        self,
        info: KindRoute,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> JSON:
        """One page of a list (``{"items": [...], "metadata": {"resourceVersion", "continue"}}``)."""
        params = _given(
            {
                "labelSelector": label_selector,
                "fieldSelector": field_selector,
                "limit": limit,
                "continue": continue_token,
            }
        )
        result: JSON = self.request("GET", self.path(info, namespace), params=params)
        return result

    def list_all(
        self,
        info: KindRoute,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        chunk_size: int | None = None,
    ) -> tuple[list[JSON], str]:
        """Every object of a list, fetched ``chunk_size`` at a time; and the list's version."""
        items: list[JSON] = []
        token: str | None = None
        version = ""
        while True:
            page = self.list_page(
                info,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=chunk_size,
                continue_token=token,
            )
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            # the first page's version is the snapshot every later page belongs to
            version = version or str(meta.get("resourceVersion") or "")
            token = meta.get("continue") or None
            if not token:
                return items, version

    def create(self, info: KindRoute, namespace: str, obj: JSON) -> JSON:
        result: JSON = self.request("POST", self.path(info, namespace), body=obj)
        return result

    def replace(self, info: KindRoute, namespace: str, name: str, obj: JSON) -> JSON:
        result: JSON = self.request("PUT", self.path(info, namespace, name), body=obj)
        return result

    def apply(
        self,
        info: KindRoute,
        namespace: str,
        name: str,
        obj: JSON,
        *,
        force: bool = False,
        dry_run: bool = False,
    ) -> Applied:
        """Server-side apply of ``obj`` as the field manager :data:`FIELD_MANAGER`: one request,
        which creates the object or merges ``obj`` into it. ``force`` takes over fields another
        manager set (else they are a Conflict naming them); ``dry_run`` stores nothing."""
        params: dict[str, str | int] = {"fieldManager": FIELD_MANAGER}
        if force:
            params["force"] = "true"
        if dry_run:
            params["dryRun"] = "All"
        # JSON is YAML, and the server reads a JSON body as JSON
        response = self._send(
            "PATCH",
            self.path(info, namespace, name),
            params=params,
            body=obj,
            content_type=_APPLY_PATCH_TYPE,
        )
        result = _decode(response)
        if not isinstance(result, dict):
            raise errors.ModelplaneError(
                f"the server at {self.server} answered an apply with no object: {str(result)[:200]}"
            )
        return Applied(
            obj=result,
            created=response.status_code == 201,
            previous_version=response.headers.get(_PREVIOUS_VERSION_HEADER),
        )

    def delete(self, info: KindRoute, namespace: str, name: str) -> JSON:
        result: JSON = self.request("DELETE", self.path(info, namespace, name))
        return result

    def watch(
        self,
        info: KindRoute,
        namespace: str | None,
        *,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        bookmarks: bool = True,
        timeout_seconds: int | None = None,
    ) -> Iterator[JSON]:
        """Stream watch events (``{"type": ..., "object": ...}``) until the server ends the stream
        (after ``timeout_seconds`` when given).

        An ``ERROR`` event is raised as its error (``Expired`` when ``resource_version`` is older
        than the server's history). Closing the generator closes the connection.
        """
        params = _given(
            {
                "watch": "true",
                "resourceVersion": resource_version,
                "labelSelector": label_selector,
                "fieldSelector": field_selector,
                "allowWatchBookmarks": "true" if bookmarks else None,
                # the server ends the stream then: a quiet stream is not mistaken for a dead one
                "timeoutSeconds": timeout_seconds,
            }
        )
        # a watch is idle for as long as nothing changes: no read timeout
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        try:
            with self._http.stream(
                "GET", self.path(info, namespace), params=params, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._http_error(response)
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    try:
                        event = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        raise errors.ModelplaneError(
                            f"the server at {self.server} sent a watch line that is not JSON:"
                            f" {line[:200]!r}"
                        ) from None
                    if event.get("type") == "ERROR":
                        raise errors.from_status(event.get("object") or {})
                    yield event
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None

    # -- agent bundles -------------------------------------------------------------------------

    def has_bundle(self, digest: str) -> bool:
        """Whether the server holds the agent bundle ``digest``."""
        try:
            response = self._http.head(f"/bundles/{digest}")
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise self._http_error(response)
        return True

    def put_bundle(self, digest: str, data: bytes) -> JSON:
        """Upload the agent bundle ``data`` under its ``digest`` (the server verifies it)."""
        try:
            response = self._http.put(
                f"/bundles/{digest}",
                content=data,
                headers={"Content-Type": "application/gzip"},
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._http_error(response)
        result: JSON = _decode(response)
        return result

    # -- server --------------------------------------------------------------------------------

    def version(self) -> JSON:
        result: JSON = self.request("GET", "/version")
        return result

    def ready(self) -> bool:
        """Whether ``/readyz`` answers 200 (False when the server is unreachable or not ready)."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False


def later_version(version: str, seen: object) -> str:
    """The later of two resourceVersions (decimal strings) to resume a watch from.

    A DELETED event's object may carry an older version than the event itself; resuming from it
    would repeat events.
    """
    text = str(seen or "")
    if not text.isdigit():
        return version
    return text if not version.isdigit() or int(text) > int(version) else version


def warnings_of(values: list[str]) -> list[str]:
    """The texts of ``Warning`` header values (``299 - "text"``, several per value allowed)."""
    texts: list[str] = []
    for value in values:
        for match in _WARNING.finditer(value):
            texts.append(re.sub(r"\\(.)", r"\1", match.group(1)))
    return texts


def _certificate_problem(exc: BaseException) -> str | None:
    """The certificate verification failure behind a connection error, in words; else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return str(seen.verify_message or seen.reason or seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text


def _given(params: dict[str, str | int | None]) -> dict[str, str | int]:
    """The query parameters that have a value (None, empty and 0 mean "not asked for")."""
    return {key: value for key, value in params.items() if value}
