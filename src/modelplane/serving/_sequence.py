"""One sequence being generated, and the :class:`Decoder` that picks its next token and emits its
text: the per-sequence half of an engine, whatever schedules the forward passes.

An engine's scheduler (rounds or continuous batching) owns the batch, the KV caches and the model;
for each sequence and each step it asks :meth:`Decoder.choose` for a token from that sequence's
logits and hands it to :meth:`Decoder.advance`, which appends it, applies the stop strings and
``max_tokens``, and streams the text that became final to the client's queue.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from modelplane.serving._engine import (
    Delta,
    GenerationRequest,
    safe_prefix_length,
    truncate_at_stop,
)


@dataclass(eq=False)
class Sequence:
    """A request admitted to an engine: its prompt's token ids, what it generated so far, and the
    queue on the client's event loop where its deltas go."""

    request: GenerationRequest
    prompt_ids: list[int]
    loop: asyncio.AbstractEventLoop
    out: asyncio.Queue[Delta | BaseException]
    generated: list[int] = field(default_factory=list)
    #: characters of the decoded text already sent
    sent: int = 0
    done: bool = False
    #: its client went away: the scheduler drops it at the next step
    cancelled: bool = False
    #: the torch.Generator of a seeded request (None: the global one)
    generator: Any = None

    def emit(self, item: Delta | BaseException) -> None:
        """Send ``item`` to the client (thread-safe: the engine thread calls it)."""
        self.loop.call_soon_threadsafe(self.out.put_nowait, item)


class Decoder:
    """Token choice and text emission for the sequences of one model and tokenizer."""

    def __init__(self, torch: Any, tokenizer: Any, eos_ids: set[int], device: str) -> None:
        self._torch = torch
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.device = device

    def seeded(self, seq: Sequence) -> Sequence:
        """Give ``seq`` its own generator when its request names a seed; returns ``seq``."""
        if seq.request.seed is not None:
            seq.generator = self._torch.Generator(device=self.device)
            seq.generator.manual_seed(seq.request.seed)
        return seq

    def choose(self, seq: Sequence, logits: Any) -> int:
        """The next token of ``seq`` from its last-position ``logits`` (one row of the vocabulary):
        greedy at temperature 0, else sampled with temperature and top-p."""
        torch = self._torch
        request = seq.request
        if request.temperature <= 0:
            return int(torch.argmax(logits).item())
        probs = torch.softmax(logits.float() / request.temperature, dim=-1)
        if request.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            keep = sorted_probs.cumsum(-1) - sorted_probs < request.top_p
            sorted_probs = sorted_probs * keep
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=seq.generator).item())

    def advance(self, seq: Sequence, token: int) -> None:
        """Append ``token`` to ``seq`` and emit the text that became final; marks ``seq.done``
        when it ends (EOS, a stop string, ``max_tokens``, or its client went away)."""
        if seq.cancelled:
            seq.done = True
            return
        finish: str | None = None
        if token in self.eos_ids:
            finish = "stop"
        else:
            seq.generated.append(token)
        text = str(self.tokenizer.decode(seq.generated, skip_special_tokens=True))
        text, stopped = truncate_at_stop(text, seq.request.stop)
        if stopped:
            finish = "stop"
        elif finish is None and len(seq.generated) >= seq.request.max_tokens:
            finish = "length"
        if finish is None:
            # an incomplete UTF-8 sequence decodes to U+FFFD: wait for its next bytes
            end = safe_prefix_length(text.rstrip("\ufffd"), seq.request.stop)
            if end > seq.sent:
                seq.emit(Delta(text[seq.sent : end]))
                seq.sent = end
            return
        seq.done = True
        seq.emit(
            Delta(
                text[seq.sent :],
                finish_reason=finish,
                prompt_tokens=len(seq.prompt_ids),
                completion_tokens=len(seq.generated),
            )
        )
