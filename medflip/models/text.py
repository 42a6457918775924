"""Text tower: a transformers BERT (from a small config or a local checkpoint) + MLM head.

Pooling is the masked mean of the last hidden states over non-pad tokens (what sentence
encoders such as MiniLM are trained with; it needs no pooler layer, which stays out).
Batches are trimmed to their last non-pad column before the encoder: padding to
`data.max_text_len` would otherwise cost up to T_max / T_real more than needed. On CPU the
batch is further split by length into a few sub-batches, each trimmed to its own longest
row (`text_buckets`): report lengths vary ~7-96 tokens (demo corpus: median 32, batch
maximum ~75), so one trimmed batch is still over half padding. Attention masks padding
out, so each row's outputs are the same function of its tokens either way.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import AutoModel, BertConfig, BertModel
from transformers.models.bert.modeling_bert import BertOnlyMLMHead

from medflip.config import TEXT_SIZES, Config
from medflip.models.image import cpu_sdpa
from medflip.models.text_buckets import BUCKETS, length_buckets, row_lengths


class TextOutput(NamedTuple):
    pooled: torch.Tensor  # [N, H] masked mean over non-pad tokens
    tokens: torch.Tensor  # [N, T', H] last hidden states, T' = longest row in the batch
    # (at padding: BERT's output on [PAD], or zeros past a length bucket's longest row;
    # users mask it: text_token_mask, MLM labels -100)
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
        self.buckets = BUCKETS  # benchmarks set 1 to time the unbucketed forward
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
        lengths = row_lengths(attention_mask)  # host list: the one sync of the text forward
        length = max(max(lengths, default=1), 1)
        input_ids, attention_mask = input_ids[:, :length], attention_mask[:, :length]
        groups = length_buckets(lengths, self.max_buckets(input_ids.device))
        with cpu_sdpa(input_ids.device):
            if len(groups) == 1:
                hidden = self.encode(input_ids, attention_mask)  # [N, T', H]
            else:
                hidden = self.encode_buckets(input_ids, attention_mask, groups, lengths)
        weights = attention_mask.to(hidden.dtype)[:, :, None]  # [N, T', 1]
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)  # [N, H]
        return TextOutput(pooled, hidden, attention_mask, input_ids)

    def max_buckets(self, device: torch.device) -> int:
        """Sub-batches per text forward: `buckets` on CPU; 1 elsewhere, where padding costs
        little next to the extra kernel launches (not measured on a GPU yet)."""
        return self.buckets if device.type == "cpu" else 1

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def encode_buckets(self, input_ids, attention_mask, groups, lengths) -> torch.Tensor:
        """Encoder per length bucket, each trimmed to its longest row; rows back in batch
        order, padded with zeros to the batch's T'. -> [N, T', H]"""
        length = input_ids.shape[1]
        parts, order = [], []
        for rows in groups:
            width = max(max(lengths[i] for i in rows), 1)
            index = torch.tensor(rows, device=input_ids.device)
            h = self.encode(input_ids[index, :width], attention_mask[index, :width])
            parts.append(F.pad(h, (0, 0, 0, length - width)))  # [n_b, T', H]
            order.extend(rows)
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order)] = torch.arange(len(order))
        return torch.cat(parts)[inverse.to(input_ids.device)]

    def mlm_logits(self, hidden: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Vocabulary logits at the masked positions only: ([M, V], [M] labels).

        Scoring just the M ~ 15 % masked tokens instead of all N*T saves ~85 % of the head.
        """
        selected = labels != -100  # [N, T']
        return self.mlm_head(hidden[selected]), labels[selected]
