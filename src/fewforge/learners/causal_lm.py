"""What training a language model on (prompt → target) token rows needs, written once for the causal-lm
and seq2seq learners (text_to_text.py), the DAFTT teacher (synthesis/daftt/training.py) and FewGen's
tuned examples: padding, the target-only causal loss, LoRA's target modules and config, the EOS id."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from fewforge.errors import ConfigError

if TYPE_CHECKING:
    import torch

# Attention projection names across architectures (Llama/SmolLM2 q_proj..., BART out_proj, T5 q/k/v/o):
# LoRA adapts the ones a model has.
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "q", "k", "v", "o")


def pad(rows: Sequence[Sequence[int]], value: int, left: bool = False) -> list[list[int]]:
    """Rows of ids padded with `value` to the longest (on the left for generation's prompts)."""
    width = max(len(r) for r in rows)
    return [[value] * (width - len(r)) + list(r) if left else list(r) + [value] * (width - len(r)) for r in rows]


def attention_modules(model: Any) -> list[str] | None:
    """The attention projection names present in `model` (None: PEFT's default for its architecture)."""
    import torch

    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    found = [n for n in ATTENTION if n in names]
    return found or None


def lora_config(
    model: Any, r: int, alpha: int, dropout: float, targets: Sequence[str] | None, seq2seq: bool = False
) -> Any:
    """PEFT's LoRA config for `model`: the given target modules, else its attention projections."""
    from peft import LoraConfig, TaskType

    return LoraConfig(
        task_type=TaskType.SEQ_2_SEQ_LM if seq2seq else TaskType.CAUSAL_LM,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(targets) if targets else attention_modules(model),
    )


def target_loss(
    lm: Any, rows: Sequence[Sequence[int]], target_starts: Sequence[int], pad_id: int, smoothing: float = 0.0
) -> "torch.Tensor":
    """Mean cross-entropy of each row's target tokens (from `target_starts[i]` on) given what precedes
    them. The LM head runs on those positions only, which saves most of its cost on long prompts. `lm` is a
    transformers causal LM (LoRA layers may be injected into it)."""
    import torch

    device = next(lm.parameters()).device
    ids = torch.tensor(pad(rows, pad_id), device=device)
    mask = torch.tensor(pad([[1] * len(r) for r in rows], 0), device=device)
    row_idx: list[int] = []
    pos_idx: list[int] = []
    gold: list[int] = []
    for b, (row, start) in enumerate(zip(rows, target_starts)):
        row_idx += [b] * (len(row) - start)
        pos_idx += range(start - 1, len(row) - 1)  # position t predicts token t + 1
        gold += row[start:]
    body = getattr(lm, lm.base_model_prefix)
    hidden = body(input_ids=ids, attention_mask=mask).last_hidden_state
    picked = hidden[torch.tensor(row_idx, device=device), torch.tensor(pos_idx, device=device)]
    logits = lm.get_output_embeddings()(picked).float()
    return torch.nn.functional.cross_entropy(logits, torch.tensor(gold, device=device), label_smoothing=smoothing)


def eos_id(model: Any, tokenizer: Any) -> int:
    """The token that ends an output: the model's generation config's first EOS, else the tokenizer's."""
    eos = model.generation_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        raise ConfigError(
            "the model has no end-of-sequence token to end an output with",
            hint="use a model whose tokenizer or generation config defines eos_token_id",
        )
    return int(eos)
