"""The Kubernetes object shape shared by every kind: metadata, conditions, the resource envelope."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import AliasGenerator, BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

#: RFC 1123 DNS subdomain, as Kubernetes requires of most object names.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
#: RFC 1123 DNS label, as Kubernetes requires of namespace names.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


class Schema(BaseModel):
    """Base of our own schemas: camelCase on the wire, unknown fields refused (typos are errors)."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(alias=to_camel),
        populate_by_name=True,
        extra="forbid",
        validate_default=False,
    )


class OpenSchema(Schema):
    """Base of schemas we do not own (Kubernetes DRA): unknown fields are kept as they are."""

    model_config = ConfigDict(extra="allow")


def _check_rfc1123(
    value: str, what: str, pattern: re.Pattern[str], longest: int, chars: str, form: str
) -> str:
    if len(value) > longest or not pattern.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must be lowercase letters, digits{chars}, start and end with a"
            f" letter or digit, at most {longest} characters (an RFC 1123 {form})"
        )
    return value


def check_dns_subdomain(value: str, what: str = "name") -> str:
    return _check_rfc1123(value, what, _DNS_SUBDOMAIN, 253, ", '-' and '.'", "subdomain")


def check_dns_label(value: str, what: str = "namespace") -> str:
    return _check_rfc1123(value, what, _DNS_LABEL, 63, " and '-'", "label")


def check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if prefix:
            check_dns_subdomain(prefix, "label prefix")
        if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
            raise ValueError(
                f"label key {key!r}: the name part must be at most 63 characters of letters,"
                " digits, '-', '_' and '.', starting and ending with a letter or digit"
            )
        if not isinstance(value, str):
            raise ValueError(f"label {key!r}: the value must be a string (quote it in YAML)")
        if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            raise ValueError(
                f"label {key!r}: value {value!r} must be at most 63 characters of letters, digits,"
                " '-', '_' and '.', starting and ending with a letter or digit"
            )
    return labels


class ObjectMeta(OpenSchema):
    """``metadata`` of every object. Fields the server owns are ignored on create."""

    name: str = Field(
        description="Unique within the namespace (or the cluster for cluster-scoped kinds)."
    )
    namespace: str | None = Field(
        default=None, description="The tenant the object belongs to; defaults to `default`."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Key/value pairs for selection."
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Free-form key/value notes."
    )
    finalizers: list[str] = Field(
        default_factory=list,
        description="Names of controllers that must clean up before the object is removed.",
    )
    uid: str | None = Field(default=None, description="Set by the server on create.")
    generation: int | None = Field(
        default=None, description="Bumped by the server on each spec change."
    )
    resource_version: str | None = Field(
        default=None, description="Opaque version for optimistic concurrency and watch."
    )
    creation_timestamp: str | None = Field(default=None, description="Set by the server on create.")
    deletion_timestamp: str | None = Field(
        default=None, description="Set by the server when deletion waits on finalizers."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_dns_subdomain(v)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str | None) -> str | None:
        return None if v is None else check_dns_label(v)

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        return check_labels(v)


class Condition(Schema):
    """One aspect of an object's observed state, as in Kubernetes ``metav1.Condition``."""

    type: str = Field(description="What the condition is about, e.g. `Ready`.")
    status: str = Field(description="`True`, `False` or `Unknown`.")
    reason: str = Field(default="", description="CamelCase machine-readable cause.")
    message: str = Field(default="", description="What a person should know or do.")
    last_transition_time: str | None = Field(default=None)
    observed_generation: int | None = Field(default=None)


class Status(OpenSchema):
    """``status`` of every kind: conditions plus the generation they describe."""

    observed_generation: int | None = Field(default=None)
    conditions: list[Condition] = Field(default_factory=list)


#: where an object says whether it is ready: its ``Ready`` condition (kubectl's READY column)
READY_PATH = "status.conditions[type=Ready].status"
#: the ``modelplane get`` column of it, for the kinds that have a Ready condition
READY_COLUMN = ("READY", READY_PATH)


class Resource(Schema):
    """The envelope of every object: ``apiVersion``, ``kind``, ``metadata``, ``spec``, ``status``.

    Subclasses set ``spec``/``status`` types and the class variables that place them in the API.
    """

    api_version: str = Field(description="Group and version, e.g. `modelplane.dev/v1alpha1`.")
    kind: str
    metadata: ObjectMeta

    # placement in the API; set by each kind
    GROUP: ClassVar[str] = "modelplane.dev"
    VERSION: ClassVar[str] = "v1alpha1"
    PLURAL: ClassVar[str] = ""
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()
    NAMESPACED: ClassVar[bool] = True
    #: other apiVersions accepted on input (normalised to ``GROUP/VERSION``)
    ALSO_ACCEPTED: ClassVar[tuple[str, ...]] = ()
    #: extra columns of ``modelplane get``: (header, dotted path into the object)
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: only administrators may write objects of this kind (operator-owned configuration)
    ADMIN_ONLY: ClassVar[bool] = False

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
