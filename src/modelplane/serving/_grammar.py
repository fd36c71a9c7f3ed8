"""Constrained decoding: a JSON Schema compiled into a per-step mask over the tokenizer's vocabulary.

The grammar engine is llguidance (the Rust library behind Guidance, also used by vLLM and
SGLang), chosen over xgrammar, outlines-core and lm-format-enforcer because it installs as one
CPU wheel with no CUDA or build step, supports transformers 5 tokenizers through
``llguidance.hf``, compiles a JSON Schema lazily (no per-schema warm-up over the whole vocabulary,
so the first token of a constrained request is not delayed by seconds), and computes each step's
mask in tens of microseconds. What is written here is only the glue: one :class:`Grammar` per
model (its tokenizer converted once) and one :class:`Constraint` per sequence (a matcher that
masks the logits before a token is chosen and consumes the token chosen).

One piece is our own: applying the mask. ``llguidance.torch.apply_token_bitmask_inplace`` took
235 to 306 ms per step on our CPU; unpacking the 32-bit words with one shift and one
``masked_fill`` gives the same logits in about 2 ms (see docs/benchmarks.md).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from modelplane.serving._errors import EngineError


class Constraint:
    """The grammar state of one sequence: which tokens may come next."""

    def __init__(self, matcher: Any, vocab_size: int) -> None:
        import llguidance.torch as llt
        import torch

        self._matcher = matcher
        self._llt = llt
        self._torch = torch
        self._mask = llt.allocate_token_bitmask(1, vocab_size)
        self._shifts = torch.arange(32, dtype=torch.int32)

    def apply(self, logits: Any) -> Any:
        """``logits`` (one row) with the tokens the grammar forbids next set to -inf (a copy)."""
        self._llt.fill_next_token_bitmask(self._matcher, self._mask, 0)
        if self._shifts.device != logits.device:
            self._shifts = self._shifts.to(logits.device)
        words = self._mask[0].to(logits.device)
        allowed = ((words.unsqueeze(-1) >> self._shifts) & 1).bool().flatten()
        vocab = logits.shape[-1]
        if allowed.shape[0] < vocab:  # ids past the tokenizer's (a padded vocabulary) never fit
            allowed = self._torch.cat([allowed, allowed.new_zeros(vocab - allowed.shape[0])], dim=0)
        return logits.float().masked_fill(~allowed[:vocab], float("-inf"))

    def consume(self, token: int) -> None:
        """Advance the grammar by ``token``."""
        self._matcher.consume_token(token)

    @property
    def finished(self) -> bool:
        """The output is complete: the grammar admits no further token."""
        return bool(self._matcher.is_stopped())


class Grammar:
    """JSON Schema constraints for one tokenizer (its llguidance form built on first use)."""

    def __init__(self, tokenizer: Any) -> None:
        self._hf = tokenizer
        self._ll: Any = None
        self._lock = threading.Lock()

    def _tokenizer(self) -> Any:
        with self._lock:
            if self._ll is None:
                import llguidance.hf

                self._ll = llguidance.hf.from_tokenizer(self._hf)
            return self._ll

    def compile(self, schema: dict[str, Any], param: str) -> str:
        """The llguidance grammar of ``schema``; an EngineError naming ``param`` if it is not one
        llguidance can enforce."""
        import llguidance

        try:
            grammar = str(
                llguidance.LLMatcher.grammar_from_json_schema(
                    json.dumps(schema),
                    defaults={"whitespace_flexible": False, "item_separator": ", "},
                )
            )
        except (ValueError, TypeError) as exc:
            raise EngineError(f"{param}: not a usable JSON Schema: {exc}", param=param) from None
        error = str(llguidance.LLMatcher.validate_grammar(grammar, self._tokenizer()))
        if error and not error.startswith("WARNING"):
            raise EngineError(f"{param}: cannot be enforced: {error}", param=param)
        return grammar

    def constraint(self, grammar: str) -> Constraint:
        """A fresh matcher for ``grammar`` (from :meth:`compile`)."""
        import llguidance

        ll = self._tokenizer()
        return Constraint(llguidance.LLMatcher(ll, grammar), ll.vocab_size)
