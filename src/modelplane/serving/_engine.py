"""What the worker's HTTP layer asks of a model: generate a stream of text deltas, embed texts.

Two engines implement :class:`Engine`: :class:`~modelplane.serving._transformers.TransformersEngine`
(real weights, torch) and :class:`~modelplane.serving.simulated.SimulatedEngine` (a latency model).
The HTTP layer (:mod:`modelplane.serving._app`) owns the OpenAI shapes, streaming and metrics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class GenerationRequest:
    """One completion to generate: a rendered prompt and the sampling parameters."""

    prompt: str
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    #: a JSON Schema the output must satisfy (constrained decoding); None: free text
    json_schema: dict[str, Any] | None = None
    #: record each token's log-probability and this many alternatives (0..20); None: no logprobs
    logprobs: int | None = None
    #: higher is scheduled first (the gateway's ``x-modelplane-priority-value``); continuous
    #: batching preempts lower-priority sequences for it
    priority: int = 0
    #: the LoRA adapter to generate with (a registered adapter's name); None: the base model
    adapter: str | None = None


@dataclass(frozen=True, slots=True)
class SamplingDefaults:
    """What a request that names no temperature or top_p gets: the model's own defaults."""

    temperature: float = 1.0
    top_p: float = 1.0


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token: its text, log-probability and the most likely alternatives at its
    position (``(text, logprob)`` pairs, most likely first), under the model's own distribution
    (before temperature, top-p and any grammar mask)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Delta:
    """Newly generated text; the last delta of a stream carries ``finish_reason`` and usage.
    ``logprobs`` are those of the tokens generated since the previous delta (when asked for)."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    logprobs: tuple[TokenLogprob, ...] = ()


#: what an engine that decodes with :class:`~modelplane.serving._sequence.Decoder` can do beyond
#: plain sampling: request fields the worker refuses (400, naming them) for an engine without them
DECODER_FEATURES = frozenset({"response_format", "tools", "logprobs"})


class Engine(Protocol):
    """A model that generates text for :class:`GenerationRequest` s, possibly batching them."""

    @property
    def sampling_defaults(self) -> SamplingDefaults:
        """Temperature and top_p for requests that give none (the model's generation config)."""
        ...

    @property
    def features(self) -> frozenset[str]:
        """The optional request features it implements (a subset of :data:`DECODER_FEATURES`)."""
        ...

    def render_chat(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> str:
        """The prompt for a chat (and the tools it may call), by the model's chat template."""
        ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """Deltas of text as they are generated; closing the iterator cancels the request."""
        ...

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """One vector per text, and the tokens read; EngineError when the model cannot embed."""
        ...

    @property
    def queue_depth(self) -> int:
        """Requests waiting to start."""
        ...

    @property
    def running(self) -> int:
        """Requests being generated now."""
        ...

    @property
    def kv_cache_usage(self) -> float:
        """Fraction (0..1) of the KV-cache capacity in use (or a proxy for it)."""
        ...

    def close(self) -> None: ...


def truncate_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` cut before the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def safe_prefix_length(text: str, stops: list[str]) -> int:
    """How much of ``text`` may be sent: hold back what could be the start of a stop string."""
    hold = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                hold = max(hold, n)
                break
    return len(text) - hold
