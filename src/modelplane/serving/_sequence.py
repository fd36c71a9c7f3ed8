"""One sequence being generated, and the :class:`Decoder` that picks its next token and emits its
text: the per-sequence half of an engine, whatever schedules the forward passes.

An engine's scheduler (rounds or continuous batching) owns the batch, the KV caches and the model;
for each sequence and each step it asks :meth:`Decoder.choose` for a token from that sequence's
logits and hands it to :meth:`Decoder.advance`, which appends it, applies the stop strings and
``max_tokens``, and streams the text that became final to the client's queue.

The per-sequence features live here too, so every scheduler has them: a request with a JSON
Schema gets a :class:`~modelplane.serving._grammar.Constraint` (built on its first step) that
masks its logits before the choice and consumes the token chosen, ending the sequence when the
grammar is complete; a request with ``logprobs`` records each chosen token's log-probability and
its most likely alternatives, sent with the delta that carries the token.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from modelplane.serving._engine import (
    Delta,
    GenerationRequest,
    TokenLogprob,
    safe_prefix_length,
    truncate_at_stop,
)
from modelplane.serving._grammar import Constraint, Grammar

#: compiled grammars kept per decoder
_GRAMMAR_CACHE = 64


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
    #: the grammar state of a request with a JSON Schema (built on its first step)
    constraint: Constraint | None = None
    #: log-probabilities of the tokens generated (when the request asks), and how many were sent
    logprobs: list[TokenLogprob] = field(default_factory=list)
    logprobs_sent: int = 0
    #: the last chosen token's log-probability, until :meth:`Decoder.advance` keeps or drops it
    chosen_logprob: TokenLogprob | None = None

    def emit(self, item: Delta | BaseException) -> None:
        """Send ``item`` to the client (thread-safe: the engine thread calls it). A client whose
        event loop has closed reads nothing more: the sequence counts as cancelled (and leaves
        its batch at the next step) instead of failing the batch it shares with others."""
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)
        except RuntimeError:  # the loop is closed
            self.cancelled = True


class Decoder:
    """Token choice and text emission for the sequences of one model and tokenizer."""

    def __init__(self, torch: Any, tokenizer: Any, eos_ids: set[int], device: str) -> None:
        self._torch = torch
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.device = device
        self.grammar = Grammar(tokenizer)
        #: compiled grammars by schema text: a client sends the same schema again and again
        self._grammars: dict[str, str] = {}

    def check(self, request: GenerationRequest) -> None:
        """Compile ``request``'s JSON Schema now, on the caller's thread: an EngineError naming
        ``response_format`` when it cannot be enforced (rather than a failed batch later)."""
        self._compiled(request)

    def _compiled(self, request: GenerationRequest) -> str | None:
        if request.json_schema is None:
            return None
        key = json.dumps(request.json_schema, sort_keys=True)
        grammar = self._grammars.get(key)
        if grammar is None:
            grammar = self.grammar.compile(request.json_schema, "response_format")
            if len(self._grammars) >= _GRAMMAR_CACHE:
                self._grammars.pop(next(iter(self._grammars)))
            self._grammars[key] = grammar
        return grammar

    def seeded(self, seq: Sequence) -> Sequence:
        """Give ``seq`` its own generator when its request names a seed; returns ``seq``."""
        if seq.request.seed is not None:
            seq.generator = self._torch.Generator(device=self.device)
            seq.generator.manual_seed(seq.request.seed)
        return seq

    def choose(self, seq: Sequence, logits: Any) -> int:
        """The next token of ``seq`` from its last-position ``logits`` (one row of the vocabulary):
        greedy at temperature 0, else sampled with temperature and top-p; only tokens its grammar
        allows, when it has one; its log-probability recorded, when asked for."""
        if seq.done:  # a finished row of a batch still decoding: its token is never used
            return int(self._torch.argmax(logits).item())
        if seq.request.json_schema is not None:
            if seq.constraint is None:
                grammar = self._compiled(seq.request)
                assert grammar is not None
                seq.constraint = self.grammar.constraint(grammar)
            masked = seq.constraint.apply(logits)
        else:
            masked = logits
        token = self._sample(seq, masked)
        if seq.request.logprobs is not None:
            seq.chosen_logprob = self._logprob(logits, token, seq.request.logprobs)
        return token

    def _logprob(self, logits: Any, token: int, top: int) -> TokenLogprob:
        logprobs = self._torch.log_softmax(logits.float(), dim=-1)
        alternatives: tuple[tuple[str, float], ...] = ()
        if top:
            values, ids = self._torch.topk(logprobs, top)
            alternatives = tuple(
                (self._text(int(i)), float(v))
                for v, i in zip(values.tolist(), ids.tolist(), strict=True)
            )
        return TokenLogprob(self._text(token), float(logprobs[token].item()), alternatives)

    def _text(self, token: int) -> str:
        return str(self.tokenizer.decode([token]))

    def _sample(self, seq: Sequence, logits: Any) -> int:
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
            if seq.chosen_logprob is not None:
                seq.logprobs.append(seq.chosen_logprob)
            if seq.constraint is not None:
                seq.constraint.consume(token)
                if seq.constraint.finished:
                    finish = "stop"
        seq.chosen_logprob = None
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
                seq.emit(Delta(text[seq.sent : end], logprobs=_unsent_logprobs(seq)))
                seq.sent = end
            return
        seq.done = True
        seq.emit(
            Delta(
                text[seq.sent :],
                finish_reason=finish,
                prompt_tokens=len(seq.prompt_ids),
                completion_tokens=len(seq.generated),
                logprobs=_unsent_logprobs(seq),
            )
        )


def _unsent_logprobs(seq: Sequence) -> tuple[TokenLogprob, ...]:
    """The log-probabilities of ``seq``'s tokens not yet sent, marked sent."""
    unsent = tuple(seq.logprobs[seq.logprobs_sent :])
    seq.logprobs_sent = len(seq.logprobs)
    return unsent
