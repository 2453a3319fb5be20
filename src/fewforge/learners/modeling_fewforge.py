"""The encoder learner's classifier as a transformers model: any pretrained encoder, pooled (mean over
tokens, the first token's pooler output, or the last real token), dropout, one linear head.

This file is self-contained (torch + transformers only): fewforge copies it beside every saved encoder
model, whose config.json names it in `auto_map`, so

    pipeline("text-classification", model=DIR, trust_remote_code=True)
    AutoModelForSequenceClassification.from_pretrained(DIR, trust_remote_code=True)

load the trained head with the label names as `id2label`. No built-in transformers class pools this
way (BertForSequenceClassification reads the [CLS] pooler only), so the config's `model_type` is this
file's own: without `trust_remote_code`, transformers refuses to load the folder instead of silently
building a fresh, untrained head. fewforge itself imports this module and never runs code from a folder.
"""

from __future__ import annotations

from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoModelForTextEncoding, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class FewforgePooledConfig(PretrainedConfig):
    model_type = "fewforge-pooled"

    def __init__(
        self,
        encoder: dict[str, Any] | None = None,
        encoder_class: str = "",
        pooling: str = "mean",
        classifier_dropout: float = 0.1,
        normalize: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.normalize = normalize  # L2-normalize the pooled vector before the head
        self.encoder = dict(encoder or {})  # the pretrained encoder's own config, as a dict
        self.encoder_class = encoder_class  # its transformers class ("BertModel", "T5EncoderModel")
        self.pooling = pooling
        self.classifier_dropout = classifier_dropout

    def encoder_config(self) -> PretrainedConfig:
        values = dict(self.encoder)
        return AutoConfig.for_model(values.pop("model_type"), **values)


class FewforgePooledForSequenceClassification(PreTrainedModel):
    config_class = FewforgePooledConfig
    base_model_prefix = "encoder"

    def __init__(self, config: FewforgePooledConfig) -> None:
        super().__init__(config)
        encoder_config = config.encoder_config()
        named = getattr(transformers, config.encoder_class, None) if config.encoder_class else None
        if named is not None:  # the class the encoder was trained as (T5EncoderModel: a T5's encoder alone)
            self.encoder = named._from_config(encoder_config)
        else:  # an encoder-decoder model is read through its encoder alone
            auto = AutoModelForTextEncoding if getattr(encoder_config, "is_encoder_decoder", False) else AutoModel
            self.encoder = auto.from_config(encoder_config)
        self.pooling = config.pooling
        self.normalize = getattr(config, "normalize", False)
        self.dropout = torch.nn.Dropout(config.classifier_dropout)
        self.head = torch.nn.Linear(encoder_config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:  # every weight comes from the checkpoint
        pass

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.encoder.get_input_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **inputs: Any,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = {k: v for k, v in inputs.items() if k == "token_type_ids" and v is not None}
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **inputs)
        if self.pooling == "last":  # right padding: the last real token of each row
            last = attention_mask.sum(1) - 1
            pooled = out.last_hidden_state[torch.arange(len(last), device=last.device), last]
        elif self.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        else:
            pooler = getattr(out, "pooler_output", None)
            pooled = pooler if pooler is not None else out.last_hidden_state[:, 0]
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        logits = self.head(self.dropout(pooled))
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
