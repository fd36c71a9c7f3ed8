"""The real engine: a transformers causal LM on torch, with dynamic batching of decode steps.

One engine thread owns the model. Requests wait in a queue; each round the thread takes every
waiting request (up to ``max_batch``), left-pads their prompts into one batch, runs the prefill as
one forward pass, then decodes all of them together, one forward pass per token for the whole
batch, streaming each sequence's text as it grows. A sequence that finishes (EOS, a stop string,
``max_tokens``, or its client went away) stops emitting at once; the batch ends when all finished.
Requests arriving during a round wait for the next one (batching at round boundaries, not
continuous batching: the KV caches of a running batch are not merged with new ones).

The KV-cache gauge is a proxy: tokens held by the running batch (prompt + generated, padding
included) over ``kv_capacity_tokens``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from modelplane.serving._engine import (
    DECODER_FEATURES,
    Delta,
    GenerationRequest,
    SamplingDefaults,
)
from modelplane.serving._errors import EngineError
from modelplane.serving._sequence import Decoder, Sequence
from modelplane.serving._tools import plain_messages, template_messages

_STOP = object()


class TransformersEngine:
    """A causal LM loaded from a safetensors folder onto ``device`` (see the module docstring)."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        max_batch: int = 8,
        kv_capacity_tokens: int = 32768,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._torch = torch
        self.device = device
        self.max_batch = max_batch
        self.kv_capacity_tokens = kv_capacity_tokens
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(model_dir))
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        loader: Any = AutoModelForCausalLM
        self.model: Any = loader.from_pretrained(str(model_dir), dtype=dtype).to(device).eval()
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self._sampling_defaults = _generation_defaults(self.model.generation_config)
        eos = self.model.generation_config.eos_token_id
        eos_ids = eos if isinstance(eos, list) else [eos]
        if self.tokenizer.eos_token_id is not None:
            eos_ids.append(self.tokenizer.eos_token_id)
        self.eos_ids = {int(i) for i in eos_ids if i is not None}
        self.decoder = Decoder(torch, self.tokenizer, self.eos_ids, device)
        self.pad_id = int(
            self.tokenizer.pad_token_id
            if self.tokenizer.pad_token_id is not None
            else min(self.eos_ids, default=0)
        )
        self._pending: queue.Queue[Sequence | object] = queue.Queue()
        self._running: list[Sequence] = []
        self._kv_tokens = 0
        self._model_lock = threading.Lock()
        #: whether ``self.model`` is a peft model holding LoRA adapters (then every forward pass
        #: names each row's adapter, ``__base__`` for none)
        self._peft = False
        self.batches = 0
        self.batched_sequences = 0
        self._thread = threading.Thread(target=self._loop, name="engine", daemon=True)
        self._thread.start()

    # -- Engine -----------------------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        return self._pending.qsize()

    @property
    def running(self) -> int:
        return sum(1 for s in self._running if not s.done)

    @property
    def kv_cache_usage(self) -> float:
        return min(1.0, self._kv_tokens / self.kv_capacity_tokens)

    @property
    def sampling_defaults(self) -> SamplingDefaults:
        return self._sampling_defaults

    @property
    def features(self) -> frozenset[str]:
        return DECODER_FEATURES

    def render_chat(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
    ) -> str:
        template = getattr(self.tokenizer, "chat_template", None)
        takes_tools = isinstance(template, str) and "tools" in template
        if tools and takes_tools:
            messages, extra = template_messages(messages), {"tools": tools}
        else:
            messages, extra = plain_messages(messages, tools or []), {}
        if not template:
            return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"
        try:
            return str(
                self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True, **extra
                )
            )
        except Exception as exc:  # a template may reject a role order, say so
            raise EngineError(f"the model's chat template rejected the messages: {exc}") from None

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        if request.json_schema is not None:
            # compiled off the event loop: a tokenizer's first use converts its vocabulary
            await asyncio.to_thread(self.decoder.check, request)
        ids = list(self.tokenizer(request.prompt, add_special_tokens=False)["input_ids"])
        if not ids:
            raise EngineError("the prompt is empty", param="messages")
        if len(ids) + request.max_tokens > self.context_length:
            raise EngineError(
                f"the prompt ({len(ids)} tokens) plus max_tokens ({request.max_tokens}) exceeds"
                f" the model's context length of {self.context_length} tokens; shorten the"
                " prompt or lower max_tokens",
                param="max_tokens",
            )
        seq = self.decoder.seeded(
            Sequence(request, ids, asyncio.get_running_loop(), asyncio.Queue())
        )
        self._pending.put(seq)
        try:
            while True:
                item = await seq.out.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if item.finish_reason is not None:
                    return
        finally:
            seq.cancelled = True

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        return await asyncio.to_thread(self._embed, texts)

    def close(self) -> None:
        self._pending.put(_STOP)
        self._thread.join(5.0)

    # -- the engine thread ------------------------------------------------------------------------

    def load_adapter(self, name: str, folder: Path) -> None:
        """Load the LoRA adapter saved by peft in ``folder`` as ``name`` (between forward passes:
        running sequences go on)."""
        from peft import PeftModel

        with self._model_lock:
            if self._peft:
                self.model.load_adapter(str(folder), adapter_name=name)
            else:
                model = PeftModel.from_pretrained(self.model, str(folder), adapter_name=name)
                self.model, self._peft = model.eval(), True

    def unload_adapter(self, name: str) -> None:
        """Unload adapter ``name``; after the last one the plain model is back."""
        with self._model_lock:
            if not self._peft or name not in self.model.peft_config:
                return
            if len(self.model.peft_config) == 1:
                # peft cannot delete its last adapter and still run: take its layers out instead
                self.model, self._peft = self.model.unload().eval(), False
            else:
                self.model.delete_adapter(name)

    def _rows(self, adapters: list[str | None] | None, rows: int) -> dict[str, Any]:
        """The forward pass's per-row adapters (peft's mixed-adapter batches), when any is held."""
        if not self._peft:
            return {}
        names = adapters if adapters is not None else [None] * rows
        return {"adapter_names": [a or "__base__" for a in names]}

    def _embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        torch = self._torch
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
        with self._model_lock, torch.inference_mode():
            out = self.model(
                input_ids=enc["input_ids"].to(self.device),
                attention_mask=enc["attention_mask"].to(self.device),
                output_hidden_states=True,
                **self._rows(None, len(texts)),
            )
        mask = enc["attention_mask"].to(self.device).unsqueeze(-1).float()
        hidden = out.hidden_states[-1].float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.cpu().tolist(), int(enc["attention_mask"].sum())

    def _loop(self) -> None:
        while True:
            first = self._pending.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            seqs = [s for s in batch if isinstance(s, Sequence) and not s.cancelled]
            if seqs:
                try:
                    self._run_batch(seqs)
                except Exception as exc:
                    for seq in seqs:
                        if not seq.done:
                            seq.done = True
                            seq.emit(EngineError(f"generation failed: {exc}", status=500))
                finally:
                    self._running = []
                    self._kv_tokens = 0
            if stop:
                return

    def _run_batch(self, seqs: list[Sequence]) -> None:
        torch = self._torch
        self._running = seqs
        self.batches += 1
        self.batched_sequences += len(seqs)
        width = max(len(s.prompt_ids) for s in seqs)
        rows = [[self.pad_id] * (width - len(s.prompt_ids)) + s.prompt_ids for s in seqs]
        masks = [[0] * (width - len(s.prompt_ids)) + [1] * len(s.prompt_ids) for s in seqs]
        input_ids = torch.tensor(rows, device=self.device)
        mask = torch.tensor(masks, device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        longest = max(s.request.max_tokens for s in seqs)
        adapters = [s.request.adapter for s in seqs]
        with torch.inference_mode():
            cache, logits = self._forward(
                adapters,
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=positions,
                logits_to_keep=1,
            )
            for step in range(longest):
                self._kv_tokens = len(seqs) * (width + step)
                chosen = [self.decoder.choose(seq, logits[row]) for row, seq in enumerate(seqs)]
                for row, seq in enumerate(seqs):
                    if not seq.done:
                        self.decoder.advance(seq, chosen[row])
                if all(s.done for s in seqs):
                    return
                next_ids = torch.tensor(chosen, device=self.device).unsqueeze(-1)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
                positions = positions[:, -1:] + 1
                cache, logits = self._forward(
                    adapters,
                    input_ids=next_ids,
                    attention_mask=mask,
                    position_ids=positions,
                    cache=cache,
                )

    def _forward(self, adapters: list[str | None], **inputs: Any) -> tuple[Any, Any]:
        """One forward pass, one batch at a time (the model is shared): (KV cache, last logits).
        ``adapters``: each row's LoRA adapter (None: the base model)."""
        with self._model_lock:
            rows = self._rows(adapters, len(adapters))
            out = self.model(use_cache=True, **inputs, **rows)
        return out.cache, out.logits[:, -1, :]


def _generation_defaults(config: Any) -> SamplingDefaults:
    """The sampling a model's ``generation_config`` asks for, as transformers' ``generate`` reads
    it: without ``do_sample`` the model decodes greedily (temperature 0)."""
    if not getattr(config, "do_sample", False):
        return SamplingDefaults(temperature=0.0, top_p=1.0)
    temperature = getattr(config, "temperature", None)
    top_p = getattr(config, "top_p", None)
    return SamplingDefaults(
        temperature=float(temperature) if isinstance(temperature, int | float) else 1.0,
        top_p=float(top_p) if isinstance(top_p, int | float) and 0 < top_p <= 1 else 1.0,
    )
