"""``Model``: a named model whose versions are artifacts pinned by digest (or an upstream API)."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from modelplane.api._meta import READY_COLUMN, OpenSchema, Resource, Schema, Status
from modelplane.api._secret import check_secret_key
from modelplane.api._types import Digest, FieldProblems, Name, Problems, duplicates
from modelplane.api._unenforced import LICENSE, ONNX, REMOTE_SOURCE, note

ModelTask = Literal["chat", "completion", "embedding"]
ModelFormat = Literal["safetensors", "gguf", "onnx", "upstream", "pytorch", "peft"]
#: the formats a version may have when it is an adapter (``adapterOf``) of another version
ADAPTER_FORMATS = ("peft", "safetensors")

_HTTP_URL = re.compile(r"^https?://[^\s/]+")
_SIGNATURE = re.compile(r"^sha256:[0-9a-f]{64}$")


class SecretKeyRef(Schema):
    """One key of a Secret in the same namespace as the object that refers to it."""

    name: Name = Field(description="The Secret's name (in the referring object's namespace).")
    key: str = Field(description="The key within the Secret's data.")

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        why = check_secret_key(value)
        if why:
            raise ValueError(why)
        return value


class ModelVersion(Schema):
    """One version of a model: where its artifact is and what it must hash to."""

    @model_validator(mode="before")
    @classmethod
    def _removed_fields(cls, data: Any) -> Any:
        if isinstance(data, dict) and "apiKeySecret" in data:
            # the old field named a file on the server, which any client could point anywhere
            raise FieldProblems(
                [
                    (
                        ("apiKeySecret",),
                        "apiKeySecret (a file path on the server) was removed: put the key in a"
                        " Secret in this namespace (modelplane create secret generic NAME"
                        " --from-literal=api-key=KEY) and set apiKeySecretRef: {name: NAME,"
                        " key: api-key}",
                    )
                ]
            )
        return data

    name: Name = Field(description="Version name, unique within the model, e.g. `v1`.")
    source: str = Field(
        min_length=1,
        description=(
            "Where the artifact is: a local path (read only inside the operator's --model-root"
            " folders, where a relative path is looked up; an artifact imported with `modelplane"
            " models import` is found by digest instead), a `file://` URI, a remote URI"
            " (`s3://`, `hf://`, `https://`...), or for format `upstream` the base URL of an"
            f" OpenAI-compatible API (`https://api.example.com/v1`). {note(REMOTE_SOURCE)}"
        ),
    )
    format: ModelFormat = Field(
        description=(
            "Artifact format: safetensors, gguf, onnx, pytorch (pickled; needs allowPickle) or"
            f" upstream (served by a remote OpenAI-compatible API). {note(ONNX)}"
        )
    )
    digest: Digest | None = Field(
        default=None,
        description=(
            "`sha256:<64 hex>` of the artifact; the artifact is refused if it does not match."
            " Required unless the format is upstream."
        ),
    )
    signature: Digest | None = Field(
        default=None,
        description=(
            "`sha256:<64 hex>` of the artifact's model-signing signature (`modelplane models sign`),"
            " imported with it (`modelplane models import` prints it). The Model controller and"
            " the node agent verify it with the operator's key (`modelplane up"
            " --model-signing-key`) before any load; without a trusted key the version is refused."
        ),
    )
    license: str | None = Field(
        default=None,
        description=f"SPDX license identifier of the weights, e.g. `apache-2.0`. {note(LICENSE)}",
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "For upstream models: the Secret (in the Model's namespace) and key holding the API"
            " key, sent as `Authorization: Bearer <key>`. Create it with `modelplane create"
            " secret generic NAME --from-literal=api-key=...`."
        ),
    )
    upstream_model: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "For upstream models: the model name sent to the upstream provider (e.g."
            " `gpt-4o-mini`); defaults to the Model's name."
        ),
    )
    adapter_of: Name | None = Field(
        default=None,
        description=(
            "This version is a LoRA adapter of the named version of the same Model (which is not"
            " itself an adapter): a folder saved by peft's save_pretrained (adapter_config.json"
            " and adapter_model.safetensors), format peft or safetensors. Replicas of the base"
            " version load it at run time; requests name it as `<endpoint>:<version>` or by the"
            " version's own name."
        ),
    )
    allow_pickle: bool = Field(
        default=False,
        description=(
            "Allow the pytorch format, whose pickled files can run code when loaded."
            " Only for artifacts from a source you trust."
        ),
    )

    @field_validator("signature", mode="before")
    @classmethod
    def _signature(cls, value: Any) -> Any:
        if isinstance(value, str) and not _SIGNATURE.match(value):
            raise ValueError(
                f"{value[:80]!r} is not a signature digest: write 'sha256:' and the 64 hex"
                " characters `modelplane models import` prints for the signature file beside the"
                " artifact (PATH.sig, written by `modelplane models sign`)"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> Self:
        problems = Problems()
        if self.format == "upstream":
            problems.extend(_upstream_source_problems(self.source))
        elif self.api_key_secret_ref is not None:
            problems.add(
                ("apiKeySecretRef",),
                f"apiKeySecretRef is only used by format upstream, not {self.format}; remove it",
            )
        if self.upstream_model is not None and self.format != "upstream":
            problems.add(
                ("upstreamModel",),
                f"upstreamModel is only used by format upstream, not {self.format}; remove it",
            )
        if self.format != "upstream" and self.digest is None:
            problems.add(
                ("digest",),
                f"a {self.format} artifact needs its digest: 'sha256:' and the 64 hex characters"
                " printed by `sha256sum FILE`",
            )
        if self.format == "peft" and self.adapter_of is None:
            problems.add(
                ("adapterOf",),
                "a peft artifact is an adapter: set adapterOf to the version it adapts",
            )
        if self.adapter_of is not None and self.format not in ADAPTER_FORMATS:
            problems.add(
                ("format",),
                f"an adapter (adapterOf) is a peft folder: set format to peft, not {self.format}",
            )
        if self.format == "pytorch" and not self.allow_pickle:
            problems.add(
                ("format",),
                "format pytorch loads pickled Python objects, which can run arbitrary code;"
                " convert the weights to safetensors, or set allowPickle: true if you trust the"
                " source",
            )
        problems.raise_any()
        return self


def _upstream_source_problems(source: str) -> list[tuple[tuple[str | int, ...], str]]:
    if not _HTTP_URL.match(source):
        return [
            (
                ("source",),
                "format upstream needs the http(s) base URL of an OpenAI-compatible API, such as"
                f" 'https://api.openai.com/v1' (got {source[:80]!r})",
            )
        ]
    try:
        parts = urlsplit(source)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return [(("source",), "the URL is not valid (check the host and port)")]
    if parts.username is not None or parts.password is not None:
        # never echo the URL: it holds a credential
        return [
            (
                ("source",),
                "the URL holds credentials (user:password@); remove them, put the API key in a"
                " Secret and set apiKeySecretRef",
            )
        ]
    return []


class ModelSpec(Schema):
    """What the model is and which versions exist."""

    task: ModelTask = Field(
        default="chat", description="What the model does: chat, completion or embedding."
    )
    versions: list[ModelVersion] = Field(
        min_length=1,
        description="Versions, oldest first; the last one is the default target of traffic.",
    )

    @field_validator("versions")
    @classmethod
    def _unique_versions(cls, versions: list[ModelVersion]) -> list[ModelVersion]:
        problems = Problems()
        for i, name, first in duplicates(v.name for v in versions):
            problems.add((i, "name"), f"duplicate version name {name!r} (also versions[{first}])")
        by_name = {v.name: v for v in versions}
        if versions and versions[-1].adapter_of is not None:
            problems.add(
                (len(versions) - 1, "adapterOf"),
                "the last version is the default target of traffic and cannot be an adapter;"
                " list adapters before it",
            )
        for i, v in enumerate(versions):
            if v.adapter_of is None:
                continue
            base = by_name.get(v.adapter_of)
            if base is None:
                problems.add(
                    (i, "adapterOf"),
                    f"adapterOf names version {v.adapter_of!r}, which this Model does not have"
                    f" (it has {', '.join(by_name)})",
                )
            elif base.adapter_of is not None:
                problems.add(
                    (i, "adapterOf"),
                    f"version {base.name!r} is itself an adapter (of {base.adapter_of!r}); name"
                    " the version it adapts instead",
                )
            elif base.format == "upstream":
                problems.add(
                    (i, "adapterOf"),
                    f"version {base.name!r} is served by an upstream API, which cannot load"
                    " adapters; name a version with weights",
                )
        problems.raise_any()
        return versions


class ModelVersionStatus(OpenSchema):
    """Observed state of one version: was its artifact fetched and verified?"""

    name: str = Field(description="The version.")
    ready: bool = Field(default=False, description="The artifact is present and verified.")
    digest: str | None = Field(default=None, description="The digest that was verified.")
    message: str = Field(default="", description="Why the version is not ready, if it is not.")


class ModelStatus(Status):
    """Observed state of the model's versions."""

    versions: list[ModelVersionStatus] = Field(
        default_factory=list, description="One entry per version."
    )


class Model(Resource):
    """A named model with versions; each version is an artifact with a digest, or an upstream API."""

    spec: ModelSpec = Field(description="Task and versions.")
    status: ModelStatus | None = Field(default=None, description="Observed state.")

    PLURAL: ClassVar[str] = "models"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("mdl",)
    COLUMNS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("TASK", "spec.task"),
        ("LATEST", "spec.versions[-1].name"),
        READY_COLUMN,
    )
