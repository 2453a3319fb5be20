"""Label-conditional soft prompts Q_l on a frozen causal LM (DawGen §3.2; FewGen): what the
transformers backend loads for a soft-prompt `AdapterRequest`, and what synthesis/fewgen tunes.

Two placements, one tensor of trainable values per label:
- `prompt`: n vectors prepended to the input embeddings (Lester et al. 2021), values [L, n, d];
- `prefix`: n key/value vectors in every layer (Li & Liang 2021; the paper's choice), values
  [L, layers, 2, kv_heads, n, head_dim], fed to the model as its cache of n past positions.

Both start from the task's natural-language generation prompt: its token embeddings (`prompt`) or the
keys/values the frozen LM computes for it (`prefix`), so the untrained Q_l generates exactly what the
natural prompt does and n is the prompt's token count (the paper's prefix length, D L281).

`forward` takes the values as an argument (default: the module's own), so the bi-level step can score
a batch under a virtually updated Q' = Q - lr * grad without copying the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple, Sequence

from fewforge.errors import ConfigError

if TYPE_CHECKING:
    import torch

Placement = Literal["prompt", "prefix"]


def target_log_probs(logits: "torch.Tensor", targets: "torch.Tensor") -> "torch.Tensor":
    """log-probabilities of `targets` [..., T] under next-token `logits` [..., T, V] (already aligned:
    position t of the logits predicts targets[t]); padded targets may hold any valid id."""
    import torch

    return torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


class Scored(NamedTuple):
    logits: "torch.Tensor"  # [B, T, V]: the next-token logits at each input position
    hidden: "torch.Tensor"  # [B, T, d]: the last layer's hidden states at each input position


def _torch_module():
    from torch import nn

    return nn.Module


class LabelPrompts(_torch_module()):  # type: ignore[misc]
    """One trainable soft prompt per label in front of a frozen causal LM."""

    def __init__(self, lm: "torch.nn.Module", values: "torch.Tensor", placement: Placement = "prefix"):
        """`values`: the prompts' trainable tensor (see the module docstring for its shape); use
        `from_natural_prompts` to start one and `load` to read a saved one."""
        import torch

        super().__init__()
        if placement not in ("prompt", "prefix"):
            raise ConfigError(f"unknown soft prompt placement {placement!r}", hint="use prompt or prefix")
        self.lm = lm
        self.placement: Placement = placement
        for p in lm.parameters():
            p.requires_grad_(False)
        self.values = torch.nn.Parameter(values.detach().clone().float())

    @classmethod
    def from_natural_prompts(
        cls, lm: "torch.nn.Module", init_ids: Sequence[Sequence[int]], placement: Placement = "prefix"
    ) -> "LabelPrompts":
        """`init_ids`: per label, the token ids of its natural-language prompt; the prompts are
        left-padded (repeating their first token) to the longest one's length, so all Q_l share n."""
        import torch

        if not init_ids or any(len(ids) == 0 for ids in init_ids):
            raise ConfigError("every label needs a non-empty natural-language prompt to start its soft prompt from")
        n = max(len(ids) for ids in init_ids)
        ids = torch.tensor([[row[0]] * (n - len(row)) + list(row) for row in init_ids])
        prompts = cls(lm, torch.zeros(0), placement)  # validates the placement before any forward
        with torch.no_grad():
            values = prompts._embed(ids) if placement == "prompt" else prompts._prefix_of(ids)
        prompts.values = torch.nn.Parameter(values.detach().clone().float())
        return prompts

    def save(self, path: Path) -> Path:
        """One safetensors file: the values, with the placement in its metadata (atomic write)."""
        from safetensors.torch import save as to_bytes

        from fewforge.files import atomic_write

        data = to_bytes({"values": self.values.detach().contiguous()}, metadata={"placement": self.placement})
        return atomic_write(path, lambda tmp: tmp.write_bytes(data))

    @classmethod
    def load(cls, lm: "torch.nn.Module", path: Path) -> "LabelPrompts":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                placement, values = (f.metadata() or {}).get("placement", ""), f.get_tensor("values")
        except (OSError, ValueError, KeyError, SafetensorError) as exc:  # missing, not safetensors, no values
            raise ConfigError(f"cannot read soft prompts from {path}: {exc}", hint="tune them again") from None
        prompts = cls(lm, values, placement)  # type: ignore[arg-type]
        if prompts._shape_without_n(prompts.values) != prompts._shape_without_n(prompts._one_token()):
            raise ConfigError(
                f"the soft prompts in {path} (shape {tuple(values.shape)}) do not fit this generator",
                hint="they were tuned for another model: tune them again for this one",
            )
        return prompts

    def _one_token(self) -> "torch.Tensor":
        import torch

        with torch.no_grad():
            ids = torch.zeros((1, 1), dtype=torch.long)
            return self._embed(ids) if self.placement == "prompt" else self._prefix_of(ids)

    def _shape_without_n(self, values: "torch.Tensor") -> tuple[int, ...]:
        """The shape but the label count and n (dims 0 and the token axis)."""
        token_axis = 1 if self.placement == "prompt" else values.dim() - 2
        return tuple(d for i, d in enumerate(values.shape) if i not in (0, token_axis))

    @property
    def n_labels(self) -> int:
        return self.values.shape[0]

    @property
    def n_tokens(self) -> int:
        return self.values.shape[1] if self.placement == "prompt" else self.values.shape[-2]

    def _embed(self, ids: "torch.Tensor") -> "torch.Tensor":
        return self.lm.get_input_embeddings()(ids)

    def _prefix_of(self, ids: "torch.Tensor") -> "torch.Tensor":
        """[L, layers, 2, kv_heads, n, head_dim]: the frozen LM's keys/values for each label's prompt."""
        import torch

        cache = self.lm(input_ids=ids, use_cache=True).cache
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        return torch.stack([torch.stack(kv, dim=1) for kv in layers], dim=1)

    def forward(
        self,
        input_ids: "torch.Tensor",
        attention_mask: "torch.Tensor",
        label_index: "torch.Tensor",
        values: "torch.Tensor | None" = None,
    ) -> Scored:
        """Score right-padded rows [B, T] under the prompts of `label_index` [B]; outputs align with
        `input_ids` (position t predicts token t+1), so a row's first token is context, never a target."""
        import torch

        values = self.values if values is None else values
        chosen = values.index_select(0, label_index)
        n = self.n_tokens
        ones = attention_mask.new_ones(attention_mask.shape[0], n)
        mask = torch.cat([ones, attention_mask], dim=1)
        if self.placement == "prompt":
            embeds = torch.cat([self._place(chosen), self._embed(input_ids)], dim=1)
            out = self.lm(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True, use_cache=False)
            return Scored(out.logits[:, n:], out.hidden_states[-1][:, n:])
        from transformers import DynamicCache

        chosen = self._place(chosen)  # [B, layers, 2, kv_heads, n, head_dim]
        cache = DynamicCache(ddp_cache_data=[(chosen[:, i, 0], chosen[:, i, 1]) for i in range(chosen.shape[1])])
        positions = torch.arange(n, n + input_ids.shape[1]).unsqueeze(0).expand(input_ids.shape[0], -1)
        out = self.lm(
            input_ids=input_ids,
            attention_mask=mask,
            cache=cache,
            position_ids=positions,
            output_hidden_states=True,
            use_cache=True,
        )
        return Scored(out.logits, out.hidden_states[-1])

    def _place(self, values: "torch.Tensor") -> "torch.Tensor":
        """On the LM's device, in its dtype (the trainable copy stays float32)."""
        weight = self.lm.get_input_embeddings().weight
        return values.to(device=weight.device, dtype=weight.dtype)

    def score_all_labels(
        self,
        input_ids: "torch.Tensor",
        attention_mask: "torch.Tensor",
        values: "torch.Tensor | None" = None,
        raw: bool = False,
        token_states: bool = False,
    ) -> tuple["torch.Tensor", "torch.Tensor"]:
        """(label_logp [L, B, T-1], hidden [L, B, T-1, d]): every row's own next tokens scored under every
        label's prompt, one batched forward of L*B rows (what eq. 5 needs). `raw`: the tokens' raw logits
        instead of their log-probabilities (FewGen's code form of eq. 5). `token_states`: hidden[t] is the
        state at target token t+1 itself (after reading it), not the state that predicts it."""
        import torch

        b = input_ids.shape[0]
        labels = torch.arange(self.n_labels).repeat_interleave(b)
        out = self.forward(input_ids.repeat(self.n_labels, 1), attention_mask.repeat(self.n_labels, 1), labels, values)
        targets = input_ids.repeat(self.n_labels, 1)[:, 1:]
        if raw:
            logp = out.logits[:, :-1].float().gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        else:
            logp = target_log_probs(out.logits[:, :-1], targets)
        hidden = out.hidden[:, 1:] if token_states else out.hidden[:, :-1]
        return logp.view(self.n_labels, b, -1), hidden.reshape(self.n_labels, b, *hidden.shape[1:])

    def generation_inputs(
        self, label: int, input_ids: "torch.Tensor", attention_mask: "torch.Tensor"
    ) -> dict[str, "torch.Tensor | object"]:
        """Keyword arguments for `lm.generate` that continue left-padded contexts [B, T] under label
        `label`'s prompt. The prompt's n positions come first and the mask keeps them visible, so the
        positions generate derives from the mask are the ones tuning used. Outputs hold the n + T input
        positions before the new tokens (prefix: n placeholder ids; prompt: none — slice by the
        returned `input_length`)."""
        import torch

        b, n = input_ids.shape[0], self.n_tokens
        values = self._place(self.values.detach()[label])
        mask = torch.cat([attention_mask.new_ones(b, n), attention_mask], dim=1)
        if self.placement == "prompt":
            embeds = torch.cat([values.unsqueeze(0).expand(b, -1, -1), self._embed(input_ids)], dim=1)
            return {"inputs_embeds": embeds, "attention_mask": mask, "input_length": 0}
        from transformers import DynamicCache

        layers = [
            (values[i, 0].unsqueeze(0).expand(b, -1, -1, -1), values[i, 1].unsqueeze(0).expand(b, -1, -1, -1))
            for i in range(values.shape[0])
        ]
        # generate skips the input positions its cache already holds: n placeholders stand for the prefix
        placeholders = input_ids[:, :1].expand(b, n)
        return {
            "input_ids": torch.cat([placeholders, input_ids], dim=1),
            "attention_mask": mask,
            "cache": DynamicCache(ddp_cache_data=[(k.contiguous(), v.contiguous()) for k, v in layers]),
            "input_length": n + input_ids.shape[1],
        }
