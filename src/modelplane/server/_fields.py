"""Unknown ``metadata`` fields in a write, handled as kube-apiserver's ``fieldValidation`` does.

``metadata`` is the one part of an object whose schema is open (real Kubernetes objects carry
fields we do not model, so the schema keeps extras), which let a client store any key there. A
write now keeps only the fields of Kubernetes' ``ObjectMeta``; any other key is

* ``Warn`` (the default): dropped, with a ``Warning: 299 - "unknown field \\"metadata.foo\\""``
  header per key on the response, as kube-apiserver sends;
* ``Strict``: refused, 400 naming every unknown field, nothing stored;
* ``Ignore``: dropped silently.

Fields elsewhere in an object are closed by the schemas themselves (an unknown ``spec`` key is a
422 naming it), whatever ``fieldValidation`` says.

A write that stores a field nothing enforces yet (:func:`modelplane.api.not_enforced`) is
answered with a ``Warning`` header per such field too (``299 - "spec.slo is not enforced yet:
..."``), as kube-apiserver warns of deprecated fields; the write itself succeeds.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.responses import Response

from modelplane.api import ObjectMeta, not_enforced
from modelplane.api.errors import BadRequest
from modelplane.server._query import FieldValidation
from modelplane.store import JSON

#: Kubernetes ObjectMeta fields we accept but do not model (kept as sent)
_KUBERNETES_ONLY = frozenset(
    {"generateName", "selfLink", "deletionGracePeriodSeconds", "ownerReferences", "managedFields"}
)
KNOWN_METADATA = frozenset(
    {str(f.alias or name) for name, f in ObjectMeta.model_fields.items()} | _KUBERNETES_ONLY
)


def unknown_metadata(obj: JSON) -> list[str]:
    """The field paths (``metadata.foo``) of the keys of ``obj['metadata']`` ObjectMeta lacks."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return []
    return [f"metadata.{key}" for key in metadata if key not in KNOWN_METADATA]


def drop_unknown_metadata(obj: JSON, mode: FieldValidation) -> list[str]:
    """Remove the unknown ``metadata`` keys of ``obj`` (in place) and return them; under
    ``Strict`` refuse the write instead."""
    unknown = unknown_metadata(obj)
    if not unknown:
        return []
    if mode == "Strict":
        listed = ", ".join(f'unknown field "{path}"' for path in unknown)
        raise BadRequest(
            f"strict decoding error: {listed}; remove the field (metadata keeps only Kubernetes'"
            " ObjectMeta fields), or send fieldValidation=Warn to drop it"
        )
    metadata = obj["metadata"]
    for path in unknown:
        del metadata[path.removeprefix("metadata.")]
    return [] if mode == "Ignore" else unknown


def add_warnings(response: Response, fields: Iterable[str], stored: JSON | None = None) -> Response:
    """One ``Warning`` header per dropped field, in kube-apiserver's words, then one per field of
    the ``stored`` object that is not enforced yet."""
    for path in fields:
        response.headers.append("Warning", f'299 - "unknown field \\"{_quoted(path)}\\""')
    for text in not_enforced(stored) if stored is not None else ():
        response.headers.append("Warning", f'299 - "{_quoted(text)}"')
    return response


def _quoted(text: str) -> str:
    """``text`` safe inside a quoted header value: printable ASCII, quotes and backslashes
    escaped, anything else as ``\\uXXXX`` (a key may hold a line break or any character)."""
    out: list[str] = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif " " <= char <= "~":
            out.append(char)
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out)
