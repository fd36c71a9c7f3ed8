"""Tiny LoRA adapters of SmolLM2 made with peft in the test, and peft's own answer as the reference."""

from __future__ import annotations

from pathlib import Path

PROMPT = "The capital of France is"
MAX_TOKENS = 8


def make_adapter(base: Path, out: Path, seed: int) -> Path:
    """A rank-4 LoRA on the attention's q and v projections, random (``init_lora_weights=False``,
    seeded) and scaled (alpha 32) so that greedy answers differ from the base model's; saved with
    ``save_pretrained`` into ``out``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    config = LoraConfig(
        r=4, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(model, config).save_pretrained(str(out))
    return out


def peft_answer(base: Path, adapter: Path, prompt: str = PROMPT, tokens: int = MAX_TOKENS) -> str:
    """peft's greedy continuation of ``prompt`` with ``adapter`` on the base model."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(model, str(adapter)).eval()
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = peft_model.generate(input_ids=ids, max_new_tokens=tokens, do_sample=False)
    return str(tokenizer.decode(out[0][ids.shape[1] :], skip_special_tokens=True))
