"""Query parameters of the object routes, checked as kube-apiserver checks ``ListOptions``.

Every parameter a list or watch takes is checked on both, so ``timeoutSeconds=-1`` on a plain list
is a 400 naming the parameter as it is on a watch (kube-apiserver decodes and validates the same
options for both). The rules that tie parameters together are Kubernetes' own:

* ``sendInitialEvents`` is for watches only, and needs ``resourceVersionMatch=NotOlderThan``;
* ``resourceVersionMatch`` is not allowed with ``continue``; on a list it is ``NotOlderThan`` or
  ``Exact`` and needs a ``resourceVersion``; on a watch only ``NotOlderThan``, together with
  ``sendInitialEvents``.

``fieldValidation`` (``Ignore``, ``Warn``, ``Strict``) is read by the writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from starlette.datastructures import QueryParams

from modelplane.api import query_count as count
from modelplane.api import shown
from modelplane.api.errors import BadRequest

FieldValidation = Literal["Ignore", "Warn", "Strict"]
FIELD_VALIDATIONS: tuple[FieldValidation, ...] = ("Ignore", "Warn", "Strict")
RESOURCE_VERSION_MATCHES = ("NotOlderThan", "Exact")


def flag(query: QueryParams, key: str) -> bool | None:
    """A boolean parameter; None when absent."""
    raw = query.get(key)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value in ("false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise BadRequest(f"query parameter {key}={shown(raw)} must be true or false")


def text(query: QueryParams, key: str) -> str | None:
    """A free-text parameter; None when absent or empty."""
    value = query.get(key)
    if not value:
        return None
    if "\x00" in value:
        raise BadRequest(f"query parameter {key} contains a NUL character")
    return value


def field_validation(query: QueryParams) -> FieldValidation:
    """``?fieldValidation=``: what a write does with fields the schema does not know."""
    value = query.get("fieldValidation")
    if value is None or value == "":
        return "Warn"
    for known in FIELD_VALIDATIONS:
        if value == known:
            return known
    raise BadRequest(
        f"query parameter fieldValidation={shown(value)} must be one of"
        f" {', '.join(FIELD_VALIDATIONS)}"
    )


@dataclass(frozen=True)
class ListOptions:
    """What a GET on a collection asked for, checked."""

    watch: bool
    label_selector: str | None
    field_selector: str | None
    limit: int | None
    continue_token: str | None
    #: None: absent (``0`` is kept: it means "any version" for lists and watches)
    resource_version: int | None
    resource_version_match: str | None
    bookmarks: bool
    send_initial_events: bool | None
    timeout: int | None


def list_options(query: QueryParams) -> ListOptions:
    """Parse and cross-check the parameters of a list or watch."""
    watch = bool(flag(query, "watch"))
    options = ListOptions(
        watch=watch,
        label_selector=text(query, "labelSelector"),
        field_selector=text(query, "fieldSelector"),
        limit=count(query, "limit"),
        continue_token=text(query, "continue"),
        resource_version=count(query, "resourceVersion"),
        resource_version_match=text(query, "resourceVersionMatch"),
        bookmarks=bool(flag(query, "allowWatchBookmarks")),
        send_initial_events=flag(query, "sendInitialEvents"),
        timeout=count(query, "timeoutSeconds"),
    )
    _check_together(options)
    return options


def _check_together(o: ListOptions) -> None:
    """Kubernetes' rules tying the list and watch parameters together."""
    match = o.resource_version_match
    if o.send_initial_events is not None and not o.watch:
        raise BadRequest(
            "query parameter sendInitialEvents is allowed only with watch=true; a list returns"
            " the objects already"
        )
    if o.send_initial_events is not None and match != "NotOlderThan":
        raise BadRequest(
            "query parameter sendInitialEvents needs resourceVersionMatch=NotOlderThan"
        )
    if match is None:
        return
    allowed = ("NotOlderThan",) if o.watch else RESOURCE_VERSION_MATCHES
    if match not in allowed:
        raise BadRequest(
            f"query parameter resourceVersionMatch={shown(match)} must be"
            f" {' or '.join(allowed)}{' on a watch' if o.watch else ''}"
        )
    if o.watch and o.send_initial_events is None:
        raise BadRequest(
            "query parameter resourceVersionMatch is allowed on a watch only with sendInitialEvents"
        )
    if o.continue_token is not None:
        raise BadRequest(
            "query parameter resourceVersionMatch is not allowed with continue; the continue"
            " token already pins the version"
        )
    if not o.watch and o.resource_version is None:
        raise BadRequest(
            "query parameter resourceVersionMatch is allowed only with a resourceVersion"
        )
    if match == "Exact" and o.resource_version == 0:
        raise BadRequest("resourceVersionMatch=Exact is not allowed with resourceVersion=0")


#: kube-apiserver's limit on a field manager's name
MAX_FIELD_MANAGER = 128


def field_manager(query: QueryParams, user_agent: str, *, required: bool = False) -> str:
    """``?fieldManager=``; else, unless ``required`` (server-side apply), the User-Agent up to its
    first ``/`` (``kubectl/v1.32`` -> ``kubectl``), as kube-apiserver names an unnamed writer."""
    name = text(query, "fieldManager")
    if name is None:
        if required:
            raise BadRequest(
                "server-side apply needs a field manager: add ?fieldManager=NAME (kubectl sends"
                " one with --server-side; pick a name that says who applies, e.g. your tool's)"
            )
        name = user_agent.split("/", 1)[0].strip() or "unknown"
    if len(name) > MAX_FIELD_MANAGER or not name.isprintable():
        raise BadRequest(
            f"fieldManager={shown(name)} must be printable text of at most {MAX_FIELD_MANAGER}"
            " characters"
        )
    return name


def dry_run(query: QueryParams) -> bool:
    """``?dryRun=All``: the write is checked (authorization, validation, conflicts) and its result
    returned, but nothing is stored. ``All`` is the one value kube-apiserver knows; any other is
    refused rather than ignored, so a dry run is never mistaken for a write or the reverse."""
    values = query.getlist("dryRun")
    if not values or values == [""]:
        return False
    if values != ["All"]:
        shown_values = ", ".join(shown(v) for v in values)
        raise BadRequest(
            f"query parameter dryRun={shown_values} is not supported: send dryRun=All for a dry"
            " run, or leave it out to write"
        )
    return True
