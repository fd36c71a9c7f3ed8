"""Continuous batching for the transformers engine: sequences join and leave the running batch
between decode steps, each with its own KV rows, and a new prompt reuses a cached prefix.

:class:`ContinuousEngine` is :class:`~modelplane.serving._transformers.TransformersEngine` (the
same model loading, ``generate``, ``embed`` and chat rendering) with another scheduler in its
engine thread. Each loop of that thread:

1. drops the sequences whose clients went away (they leave the batch at this step);
2. preempts for priority: while a waiting sequence has a higher ``priority`` than a running one
   and the batch is full, the lowest-priority running sequence (the latest joined among equals)
   leaves the batch with its KV rows (padding cut) and waits; preempted sequences rejoin, highest
   priority first, when a row is free and nothing of higher priority waits, with the same KV and
   next token, so a greedy answer is unchanged, only later;
3. prefills waiting sequences, highest priority first (then in arrival order), at most ``prefill_chunk`` prompt tokens per loop, each sequence on
   its own (batch of one, no padding), so a long prompt is cut into chunks between which the
   running sequences keep decoding; a finished prefill picks the sequence's first token and the
   sequence joins the batch;
4. runs one decode step for the whole batch: one forward pass, then per sequence
   :meth:`Decoder.choose` and :meth:`Decoder.advance` (stop strings, ``max_tokens``, streaming);
   finished sequences leave.

The batch's KV cache is one tensor per layer, rows left-padded to the longest sequence (padding is
masked out, positions count each row's own tokens, as in the round engine, so greedy output is the
same). Joining pads the shorter side on the left; leaving selects rows and cuts the columns that
only padding still holds. Copies happen only on join and leave, not per step.

Prefix reuse: after its prefill, a prompt's KV is kept in :class:`_PrefixStore` (least recently
used first out, ``prefix_cache_tokens`` in all); a new prompt that starts with a stored one (or
shares a leading run of tokens with it, e.g. the chat template's system prompt) starts from a copy
of those KV rows and prefills only the rest; ``reused_prefix_tokens`` counts the tokens skipped.

LoRA adapters: base and adapter requests share the running batch; every forward pass names each
row's adapter (peft's mixed-adapter batches), so an adapter costs no batch of its own. Only base
prompts are stored and reused as prefixes (an adapter changes the KV).

Why not transformers' own continuous batching (``generate_batch``,
``ContinuousBatchingManager``, paged attention)? It runs on the CPU here (transformers 5.25 gave
the right text for two SmolLM2 prompts), but it picks tokens itself inside its forward step
(argmax or multinomial for the whole batch, one ``do_sample`` for every request, logits processors
that see only each request's last token), with no per-request hook: we could not call
:meth:`Decoder.choose` / :meth:`Decoder.advance` per sequence per step, so stop strings, seeds,
constrained decoding and logprobs would be lost. The scheduler here is written for that reason.
"""

from __future__ import annotations

import collections
import queue
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelplane.serving._engine import GenerationRequest
from modelplane.serving._errors import EngineError
from modelplane.serving._sequence import Sequence
from modelplane.serving._transformers import _STOP, TransformersEngine

#: per layer, (keys, values) of shape [batch, kv heads, tokens, head dim]
_KV = list[tuple[Any, Any]]


@dataclass(frozen=True, slots=True)
class BatchEvent:
    """Something the scheduler did to a request, at decode step ``step`` (the engine's counter):
    ``join`` (its first token was chosen), ``finish`` (it ended), ``cancel`` (its client left),
    ``preempt`` (it left the batch for a higher priority) or ``resume`` (it came back)."""

    step: int
    kind: str
    request: GenerationRequest


@dataclass(eq=False, slots=True)
class _Prefill:
    """A waiting sequence, and how far its prefill went."""

    seq: Sequence
    #: its DynamicCache so far, None before its first chunk
    cache: Any = None
    #: prompt tokens in ``cache`` (reused or run)
    done: int = 0

    @property
    def finished(self) -> bool:
        return self.done == len(self.seq.prompt_ids)


@dataclass(eq=False, slots=True)
class _Slot:
    """A row of the running batch: its sequence, the tokens its KV holds, the token to feed next."""

    seq: Sequence
    #: tokens in its KV rows, padding not counted: also the position of its next token
    length: int
    #: chosen at the last step, fed to the model at the next one
    next_token: int


class _PrefixStore:
    """Prompts' KV (batch of one) by token ids, least recently used evicted past ``capacity``."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.tokens = 0
        self._entries: collections.OrderedDict[tuple[int, ...], _KV] = collections.OrderedDict()

    def longest(self, ids: list[int]) -> tuple[int, _KV | None]:
        """The most leading tokens of ``ids`` (never all of them: the last one must be run to get
        logits) whose KV is stored, and that KV (still holding more tokens; slice it)."""
        best, best_kv, best_key = 0, None, None
        for key, kv in self._entries.items():
            n = _common_prefix(key, ids, len(ids) - 1)
            if n > best:
                best, best_kv, best_key = n, kv, key
        if best_key is not None:
            self._entries.move_to_end(best_key)
        return best, best_kv

    def add(self, ids: list[int], kv: _KV) -> None:
        key = tuple(ids)
        if len(key) > self.capacity or key in self._entries:
            return
        for old in [k for k in self._entries if key[: len(k)] == k]:
            self._drop(old)  # the new prompt covers it
        self._entries[key] = kv
        self.tokens += len(key)
        while self.tokens > self.capacity:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: tuple[int, ...]) -> None:
        del self._entries[key]
        self.tokens -= len(key)


def _common_prefix(a: tuple[int, ...], b: list[int], limit: int) -> int:
    n = 0
    for x, y in zip(a, b[:limit], strict=False):
        if x != y:
            break
        n += 1
    return n


class ContinuousEngine(TransformersEngine):
    """A causal LM served with continuous batching and prefix reuse (see the module docstring).

    Counters for tests, metrics and benchmarks: ``steps`` (decode steps run), ``prefill_chunks``,
    ``prefilled_tokens``, ``reused_prefix_tokens``, ``joined``, ``preemptions``; ``events`` holds the last 1024
    :class:`BatchEvent` s.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        prefill_chunk: int = 128,
        prefix_cache_tokens: int = 4096,
        **options: Any,
    ) -> None:
        """``options`` are :class:`TransformersEngine` 's (``device``, ``max_batch``,
        ``kv_capacity_tokens``); ``prefill_chunk``: prompt tokens prefilled per loop at most;
        ``prefix_cache_tokens``: prompt tokens whose KV is kept for reuse."""
        # set before the base class starts the engine thread, which runs our _loop
        self.prefill_chunk = max(1, prefill_chunk)
        self.steps = 0
        self.prefill_chunks = 0
        self.prefilled_tokens = 0
        self.reused_prefix_tokens = 0
        self.joined = 0
        self.events: collections.deque[BatchEvent] = collections.deque(maxlen=1024)
        self._waiting: collections.deque[_Prefill] = collections.deque()
        self._slots: list[_Slot] = []
        #: sequences preempted for a higher priority, each with its own KV (batch of one)
        self._preempted: list[tuple[_Slot, Any]] = []
        self.preemptions = 0
        self._cache: Any = None  # the batch's DynamicCache
        self._mask: Any = None
        self._prefixes = _PrefixStore(prefix_cache_tokens)
        super().__init__(model_dir, **options)

    @property
    def queue_depth(self) -> int:
        return self._pending.qsize() + sum(1 for p in list(self._waiting) if p.cache is None)

    # -- the engine thread ------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            idle = not self._slots and not self._waiting and not self._preempted
            if not self._take_pending(block=idle):
                self._fail_all(EngineError("the engine is shutting down", status=503))
                return
            try:
                with self._torch.inference_mode():
                    self._step()
            except Exception as exc:
                self._fail_all(EngineError(f"generation failed: {exc}", status=500))
            self._publish()

    def _take_pending(self, *, block: bool) -> bool:
        """Move newly arrived sequences to the waiting line; False once the engine is closed."""
        item: Sequence | object
        if block:
            item = self._pending.get()
        else:
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                return True
        while True:
            if item is _STOP:
                return False
            if isinstance(item, Sequence):
                self._waiting.append(_Prefill(item))
            try:
                item = self._pending.get_nowait()
            except queue.Empty:
                return True

    def _step(self) -> None:
        self._drop_cancelled()
        self._preempt()
        self._resume()
        self._prefill()
        if self._slots:
            self._decode()

    def _drop_cancelled(self) -> None:
        for p in [p for p in self._waiting if p.seq.cancelled]:
            self._waiting.remove(p)
            self._event("cancel", p.seq)
        for slot, cache in [(s, c) for s, c in self._preempted if s.seq.cancelled]:
            self._preempted.remove((slot, cache))
            slot.seq.done = True
            self._event("cancel", slot.seq)
        gone = [s for s in self._slots if s.seq.cancelled]
        for slot in gone:
            slot.seq.done = True
            self._event("cancel", slot.seq)
        if gone:
            self._keep([s for s in self._slots if not s.seq.cancelled])

    def _preempt(self) -> None:
        """Make room in a full batch for the highest-priority waiting sequence by taking out
        the lowest-priority running one, its KV rows kept (see the module docstring)."""
        while self._waiting and len(self._slots) >= self.max_batch:
            wanted = self._next_waiting().seq.request.priority
            victim = min(reversed(self._slots), key=lambda s: s.seq.request.priority, default=None)
            if victim is None or victim.seq.request.priority >= wanted:
                return
            row = self._slots.index(victim)
            cut = self._mask.shape[1] - victim.length
            cache = _row_cache(self._cache, row, cut)
            self._keep([s for s in self._slots if s is not victim])
            self._preempted.append((victim, cache))
            self.preemptions += 1
            self._event("preempt", victim.seq)

    def _resume(self) -> None:
        """Bring preempted sequences back, highest priority first, into free rows, unless a
        waiting sequence of higher priority is owed the row."""
        while self._preempted and len(self._slots) < self.max_batch:
            best = max(self._preempted, key=lambda e: e[0].seq.request.priority)
            slot, cache = best
            waiting = self._next_waiting().seq.request.priority if self._waiting else None
            if waiting is not None and waiting > slot.seq.request.priority:
                return
            self._preempted.remove(best)
            self._join(slot, cache)
            self._event("resume", slot.seq)

    def _next_waiting(self) -> _Prefill:
        """The waiting sequence to prefill next: highest priority, then first come."""
        return max(self._waiting, key=lambda p: p.seq.request.priority)

    def _prefill(self) -> None:
        """Spend up to ``prefill_chunk`` prompt tokens on the waiting sequences, highest priority
        first then in arrival order, as far as free rows allow; a sequence whose prompt is all
        in its KV joins the batch."""
        budget = self.prefill_chunk
        while budget > 0 and self._waiting and len(self._slots) < self.max_batch:
            head = self._next_waiting()
            if head.cache is None and not self._fits(head.seq):
                return
            budget -= self._prefill_chunk(head, budget)
            if head.finished:
                self._waiting.remove(head)

    def _fits(self, seq: Sequence) -> bool:
        held = sum(s.length for s in self._slots)
        need = len(seq.prompt_ids) + seq.request.max_tokens
        return not self._slots or held + need <= self.kv_capacity_tokens

    def _prefill_chunk(self, p: _Prefill, budget: int) -> int:
        """Run the next chunk of ``p``'s prompt (at most ``budget`` tokens); the tokens run."""
        from transformers import DynamicCache

        torch, ids = self._torch, p.seq.prompt_ids
        adapter = p.seq.request.adapter
        # cached prefixes are the base model's KV: an adapter's prompt is computed whole
        if p.cache is None and adapter is None:
            reused, stored = self._prefixes.longest(ids)
            if stored is not None:  # a copy: the stored rows stay as they are
                p.cache = DynamicCache(
                    ddp_cache_data=[(k[:, :, :reused], v[:, :, :reused]) for k, v in stored]
                )
                p.done = reused
                self.reused_prefix_tokens += reused
        end = min(len(ids), p.done + budget)
        p.cache, logits = self._forward(
            [adapter],
            input_ids=torch.tensor([ids[p.done : end]], device=self.device),
            attention_mask=torch.ones((1, end), dtype=torch.long, device=self.device),
            position_ids=torch.arange(p.done, end, device=self.device).unsqueeze(0),
            cache=p.cache,
            logits_to_keep=1,
        )
        ran, p.done = end - p.done, end
        self.prefill_chunks += 1
        self.prefilled_tokens += ran
        if end == len(ids):
            if adapter is None:
                self._prefixes.add(ids, _layers(p.cache))
            self._start(p.seq, p.cache, logits[0])
        return ran

    def _start(self, seq: Sequence, cache: Any, logits: Any) -> None:
        """Choose ``seq``'s first token from its prompt's last logits; if it goes on, it joins."""
        token = self.decoder.choose(seq, logits)
        self._event("join", seq)
        self._advance(seq, token)
        self.joined += 1
        if seq.done:
            return
        self._join(_Slot(seq, len(seq.prompt_ids), token), cache)

    def _decode(self) -> None:
        torch, slots = self._torch, self._slots
        self.steps += 1
        self._mask = torch.cat([self._mask, torch.ones_like(self._mask[:, :1])], dim=-1)
        self._cache, logits = self._forward(
            [s.seq.request.adapter for s in slots],
            input_ids=torch.tensor([[s.next_token] for s in slots], device=self.device),
            attention_mask=self._mask,
            position_ids=torch.tensor([[s.length] for s in slots], device=self.device),
            cache=self._cache,
        )
        chosen = [self.decoder.choose(slot.seq, logits[row]) for row, slot in enumerate(slots)]
        for slot, token in zip(slots, chosen, strict=True):
            slot.length += 1
            self._advance(slot.seq, token)
            slot.next_token = token
        if any(s.seq.done for s in slots):
            self._keep([s for s in slots if not s.seq.done])

    def _advance(self, seq: Sequence, token: int) -> None:
        """:meth:`Decoder.advance`, recording whether ``seq`` finished or was found cancelled."""
        # read before: once the last delta is out, the client's generator sets ``cancelled``
        cancelled = seq.cancelled
        self.decoder.advance(seq, token)
        if seq.done:
            self._event("cancel" if cancelled else "finish", seq)

    # -- the batch's KV rows ----------------------------------------------------------------------

    def _join(self, slot: _Slot, cache: Any) -> None:
        """Add ``slot`` (``cache``: its KV of ``slot.length`` tokens, batch of one) as the batch's
        last row."""
        torch = self._torch
        if not self._slots:
            self._slots, self._cache = [slot], cache
            self._mask = torch.ones((1, slot.length), dtype=torch.long, device=self.device)
            return
        width = max(self._mask.shape[1], slot.length)
        old_pad, new_pad = width - self._mask.shape[1], width - slot.length
        for layer, new in zip(_checked(self._cache), _checked(cache), strict=True):
            layer.keys = torch.cat([_left_pad(layer.keys, old_pad), _left_pad(new.keys, new_pad)])
            layer.values = torch.cat(
                [_left_pad(layer.values, old_pad), _left_pad(new.values, new_pad)]
            )
        row = torch.cat([torch.zeros(new_pad), torch.ones(slot.length)]).to(self._mask)
        old = torch.nn.functional.pad(self._mask, (old_pad, 0))
        self._mask = torch.cat([old, row.unsqueeze(0)])
        self._slots = [*self._slots, slot]

    def _keep(self, slots: list[_Slot]) -> None:
        """Keep only ``slots`` (rows of the batch, in order), cutting the padding no row needs."""
        if not slots:
            self._slots, self._cache, self._mask = [], None, None
            return
        rows = self._torch.tensor([self._slots.index(s) for s in slots], device=self.device)
        cut = self._mask.shape[1] - max(s.length for s in slots)
        for layer in _checked(self._cache):
            layer.keys, layer.values = layer.keys[rows, :, cut:], layer.values[rows, :, cut:]
        self._mask = self._mask[rows, cut:]
        self._slots = slots

    # -- bookkeeping ------------------------------------------------------------------------------

    def _event(self, kind: str, seq: Sequence) -> None:
        self.events.append(BatchEvent(self.steps, kind, seq.request))

    def _publish(self) -> None:
        """What the gauges read from other threads: running sequences and KV tokens they hold."""
        prefilling = [p for p in self._waiting if p.cache is not None]
        paused = [s for s, _ in self._preempted]
        self._running = (
            [s.seq for s in self._slots] + [p.seq for p in prefilling] + [s.seq for s in paused]
        )
        self._kv_tokens = (
            sum(s.length for s in self._slots)
            + sum(p.done for p in prefilling)
            + sum(s.length for s in paused)
        )

    def _fail_all(self, error: EngineError) -> None:
        live: Iterable[Sequence] = (
            [s.seq for s in self._slots]
            + [p.seq for p in self._waiting]
            + [s.seq for s, _ in self._preempted]
        )
        for seq in live:
            if not seq.done:
                seq.done = True
                seq.emit(error)
        self._slots, self._cache, self._mask = [], None, None
        self._waiting.clear()
        self._preempted.clear()
        self._publish()


def _checked(cache: Any) -> list[Any]:
    """The layers of a DynamicCache, whose rows and columns we may cut and pad."""
    layers: list[Any] = cache.layers
    if any(getattr(layer, "is_sliding", False) for layer in layers):
        raise EngineError("continuous batching needs a model without sliding-window attention")
    return layers


def _row_cache(cache: Any, row: int, cut: int) -> Any:
    """A DynamicCache of one row of the batch's ``cache``, without its ``cut`` padding columns."""
    from transformers import DynamicCache

    return DynamicCache(
        ddp_cache_data=[
            (
                layer.keys[row : row + 1, :, cut:].clone(),
                layer.values[row : row + 1, :, cut:].clone(),
            )
            for layer in _checked(cache)
        ]
    )


def _layers(cache: Any) -> _KV:
    return [(layer.keys, layer.values) for layer in _checked(cache)]


def _left_pad(t: Any, n: int) -> Any:
    import torch

    return torch.nn.functional.pad(t, (0, 0, n, 0)) if n else t
