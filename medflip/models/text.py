"""Text tower: a transformers BERT (from a small config or a local checkpoint) + MLM head.

Pooling is the masked mean of the last hidden states over non-pad tokens (what sentence
encoders such as MiniLM are trained with; it needs no pooler layer, which stays out).
Batches are trimmed to their last non-pad column before the encoder: padding to
`data.max_text_len` would otherwise cost up to T_max / T_real more than needed.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
from transformers import AutoModel, BertConfig, BertModel
from transformers.models.bert.modeling_bert import BertOnlyMLMHead

from medflip.config import TEXT_SIZES, Config
from medflip.models.image import cpu_sdpa


class TextOutput(NamedTuple):
    pooled: torch.Tensor  # [N, H] masked mean over non-pad tokens
    tokens: torch.Tensor  # [N, T', H] last hidden states, T' = longest row in the batch
    attention_mask: torch.Tensor  # [N, T'] the trimmed mask (1 = real token)
    input_ids: torch.Tensor  # [N, T'] the trimmed ids that were encoded


def scratch_config(size: str, vocab_size: int, max_len: int, pad_token_id: int) -> BertConfig:
    """BertConfig for `scratch-<size>` (sizes in medflip.config.TEXT_SIZES)."""
    hidden, layers, heads, intermediate = TEXT_SIZES[size]
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max(max_len, 8),
        pad_token_id=pad_token_id,
        # No dropout, like CLIP's text tower: minutes-long runs underfit, and dropout would
        # make the contrastive branch and evaluation see different functions.
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def build_bert(cfg: Config, vocab_size: int, pad_token_id: int) -> nn.Module:
    """BERT encoder from `model.text`: `scratch-<size>` or a local pretrained directory."""
    name = cfg.model.text
    if name.startswith("scratch-"):
        config = scratch_config(
            name.removeprefix("scratch-"), vocab_size, cfg.data.max_text_len, pad_token_id
        )
        config._attn_implementation = "sdpa"
        return BertModel(config, add_pooling_layer=False)
    try:
        model = AutoModel.from_pretrained(name, local_files_only=True, attn_implementation="sdpa")
    except (ValueError, ImportError):  # architectures without an SDPA path
        model = AutoModel.from_pretrained(name, local_files_only=True)
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # masked-mean pooling instead; unused weights would stall DDP
    if vocab_size > model.config.vocab_size:
        raise ValueError(
            f"model.text: {name!r} has {model.config.vocab_size} embeddings but the tokenizer "
            f"has {vocab_size} ids; use that checkpoint's tokenizer (data.tokenizer)"
        )
    if model.config.max_position_embeddings < cfg.data.max_text_len:
        raise ValueError(
            f"data.max_text_len: {cfg.data.max_text_len} exceeds {name!r}'s "
            f"{model.config.max_position_embeddings} positions"
        )
    return model


class TextTower(nn.Module):
    """BERT encoder with an optional tied MLM head (BertForMaskedLM's: transform + decoder)."""

    def __init__(self, cfg: Config, vocab_size: int, pad_token_id: int, mlm: bool = True):
        super().__init__()
        self.bert = build_bert(cfg, vocab_size, pad_token_id)
        self.width = self.bert.config.hidden_size
        self.mlm_head = None
        if mlm:
            self.add_mlm_head()

    def add_mlm_head(self) -> None:
        self.mlm_head = BertOnlyMLMHead(self.bert.config)
        self.mlm_head.apply(self.bert._init_weights)
        # Tie like BertForMaskedLM: decoder weight = input embeddings, decoder bias = head bias.
        decoder = self.mlm_head.predictions.decoder
        decoder.weight = self.bert.get_input_embeddings().weight
        decoder.bias = self.mlm_head.predictions.bias

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TextOutput:
        """[N, T] ids and mask -> TextOutput (trimmed to the longest row)."""
        used = attention_mask.any(dim=0).nonzero()  # columns with any real token
        length = int(used.max()) + 1 if used.numel() else 1
        input_ids, attention_mask = input_ids[:, :length], attention_mask[:, :length]
        with cpu_sdpa(input_ids.device):
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state
        weights = attention_mask.to(hidden.dtype)[:, :, None]  # [N, T', 1]
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)  # [N, H]
        return TextOutput(pooled, hidden, attention_mask, input_ids)

    def mlm_logits(self, hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Vocabulary logits at the masked positions only: ([M, V], [M] labels).

        Scoring just the M ~ 15 % masked tokens instead of all N*T saves ~85 % of the head.
        """
        selected = labels != -100  # [N, T']
        return self.mlm_head(hidden[selected]), labels[selected]
