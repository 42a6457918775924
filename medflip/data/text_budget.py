"""Text-token reduction for training (CLIPA): which report tokens the text tower reads.

`mask.text_tokens` is the budget (config.py: 0 = off, a share in (0, 1) of each report's
tokens, or a whole count), `mask.text_policy` which tokens fill it. A row of n tokens
([CLS] first, [SEP] last, the tokenizer's template) keeps k of them (`kept_lengths`):
[CLS] and [SEP] always, plus k - 2 content tokens chosen by the policy:

    truncate  the first ones (training text puts the IMPRESSION first)
    random    a uniformly random subset (CLIPA's random masking)
    block     one random contiguous span (CLIPA's block masking)
    findings  content-aware: tokens of sentences with a positive or uncertain CheXpert
              finding first, then of sentences with only negated ones, then the rest, each
              in text order (`finding_priority`: the labeler of medflip.data.labels, per
              sentence). The soft targets rank abnormal findings highest, so a short budget
              keeps what distinguishes a report from the normal one.

Kept tokens are packed left in text order (BERT positions 0..k-1, as CLIPA packs them) and
the rest is padding, so the text tower's trimming and length buckets see k-token rows, and
MLM masks only kept tokens. Only the text changes: labels stay those of the whole report.
Randomness comes from torch's RNG (the default generator unless one is passed), the one
a checkpoint saves and restores, so a resumed run draws the same tokens.
"""

from __future__ import annotations

import functools
import math
import re

import numpy as np
import torch

from medflip.config import CHOICES
from medflip.data.labels import OBSERVATIONS, extract_labels

POLICIES = CHOICES["mask.text_policy"]  # truncate, random, block, findings
MIN_TOKENS = 3  # [CLS], one content token, [SEP]
PRIORITY_KEY = "text_priority"  # the batch key of `finding_priority` (policy findings only)


def kept_lengths(lengths: torch.Tensor, budget: float) -> torch.Tensor:
    """Tokens each row keeps: all for budget 0; min(n, budget) for a count; for a share s,
    ceil(s * n) but at least 3 (never more than n). lengths [B] long -> [B] long."""
    if budget <= 0:
        return lengths.clone()
    if budget < 1:
        want = torch.ceil(lengths.double() * budget).long().clamp_min(MIN_TOKENS)
    else:
        want = torch.full_like(lengths, int(budget))
    return torch.minimum(lengths, want)


def keep_mask(
    attention_mask: torch.Tensor,
    budget: float,
    policy: str,
    priority: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """[B, T] bool: the positions a row keeps. Rows are left-aligned (real tokens first),
    position 0 and the row's last real position are its [CLS] and [SEP] (always kept)."""
    if policy not in POLICIES:
        raise ValueError(f"mask.text_policy: {policy!r} is not one of {', '.join(POLICIES)}")
    device = attention_mask.device
    b, t = attention_mask.shape
    real = attention_mask.bool()
    n = real.sum(dim=1)  # [B]
    content_n = (kept_lengths(n, budget) - 2).clamp_min(0)  # [B] content tokens kept
    pos = torch.arange(t, device=device).expand(b, t)  # [B, T]
    special = (pos == 0) | (pos == (n - 1)[:, None])
    content = real & ~special  # [B, T]
    if policy == "block":
        spare = ((n - 2).clamp_min(0) - content_n).double()  # [B] possible start offsets - 1
        draw = torch.rand(b, device=device, generator=generator, dtype=torch.float64)
        start = 1 + torch.floor(draw * (spare + 1)).long()  # [B]
        inside = (pos >= start[:, None]) & (pos < (start + content_n)[:, None])
        return real & (special | inside)
    score = pos.double()  # truncate: earlier first
    if policy == "random":
        score = torch.rand(b, t, device=device, generator=generator, dtype=torch.float64)
    elif policy == "findings":
        if priority is None:
            raise ValueError(f"mask.text_policy findings needs the batch's {PRIORITY_KEY!r}")
        score = (2 - priority.to(device).long()).double() * t + pos  # higher rank first
    score = torch.where(content, score, torch.full_like(score, math.inf))
    ranked = score.sort(dim=1).values  # [B, T]
    threshold = ranked.gather(1, (content_n - 1).clamp_min(0)[:, None])  # [B, 1]
    chosen = content & (score <= threshold) & (content_n > 0)[:, None]
    return real & (special | chosen)


def pack(input_ids: torch.Tensor, keep: torch.Tensor, pad_id: int = 0):
    """Kept tokens left-packed in text order -> (ids [B, K], attention_mask [B, K]) with
    K = the most any row keeps. Padding ids are never read (attention masks them)."""
    b, t = input_ids.shape
    pos = torch.arange(t, device=input_ids.device).expand(b, t)
    order = torch.where(keep, pos, pos + t).argsort(dim=1)  # kept first, in text order
    k = keep.sum(dim=1)  # [B]
    width = max(int(k.max()), 1) if b else 1
    ids = input_ids.gather(1, order[:, :width])  # [B, K]
    mask = pos[:, :width] < k[:, None]
    return torch.where(mask, ids, torch.full_like(ids, pad_id)), mask.to(input_ids.dtype)


def reduce_batch(batch: dict, budget: float, policy: str, generator=None) -> dict:
    """The training batch with its texts reduced to the budget (a new dict; labels and
    images untouched). Budget 0 only drops the priority key."""
    out = {k: v for k, v in batch.items() if k != PRIORITY_KEY}
    if budget <= 0:
        return out
    ids, mask = batch["input_ids"], batch["attention_mask"]
    keep = keep_mask(mask, budget, policy, batch.get(PRIORITY_KEY), generator)
    out["input_ids"], out["attention_mask"] = pack(ids, keep)
    return out


# ---------------------------------------------------------------- the findings policy
_SENTENCE = re.compile(r"[^.;\n]+[.;\n]?")  # a sentence or clause with its terminator


@functools.lru_cache(maxsize=65536)  # reports repeat sentences: label each once
def sentence_rank(sentence: str) -> int:
    """2: a positive or uncertain CheXpert finding; 1: only negated ones; 0: none.
    No Finding is left out: it is the absence of the others, not a finding."""
    values = [v for o, v in extract_labels(sentence).items() if o != OBSERVATIONS[0]]
    if any(v in (1.0, -1.0) for v in values):
        return 2
    return 1 if any(v == 0.0 for v in values) else 0


def sentence_ranks(text: str) -> tuple[list[int], list[int]]:
    """(start offset, rank) of each sentence of `text`, in order."""
    spans = list(_SENTENCE.finditer(text))
    return [m.start() for m in spans], [sentence_rank(m.group()) for m in spans]


def finding_priority(texts, tokenizer, max_len: int, input_ids: np.ndarray) -> np.ndarray:
    """uint8 [N, T]: each token's sentence rank (`sentence_rank`; 0 for specials and
    padding), aligned with `input_ids` [N, T] (the dataset's tokens, checked)."""
    enc = tokenizer(
        list(texts), padding="max_length", truncation=True, max_length=max_len,
        return_offsets_mapping=True, return_tensors="np",
    )  # fmt: skip
    if not np.array_equal(enc["input_ids"], input_ids):
        raise ValueError("finding_priority: the tokenizer's ids differ from the dataset's")
    out = np.zeros(input_ids.shape, np.uint8)
    for row, (text, offsets) in enumerate(zip(texts, enc["offset_mapping"], strict=True)):
        starts, ranks = sentence_ranks(text)
        if not starts:
            continue
        sentence = np.searchsorted(starts, offsets[:, 0], side="right") - 1  # [T]
        real = offsets[:, 1] > offsets[:, 0]  # specials and padding have (0, 0)
        out[row] = np.where(real, np.asarray(ranks, np.uint8)[sentence.clip(0)], 0)
    return out
