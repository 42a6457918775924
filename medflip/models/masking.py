"""Image keep-indices and text MLM masking: the one place "ratio" is defined.

A ratio is always the share *hidden*: `mask.image_ratio = 0.75` drops 75 % of the patches
(FLIP / MAE), `mask.text_ratio = 0.15` masks 15 % of the maskable tokens (BERT). Randomness
comes from torch's RNG on the tensors' device (the default generator unless one is passed),
so saving and restoring RNG state reproduces the masks exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medflip.config import Config


def num_kept(num_patches: int, ratio: float) -> int:
    """Patches kept at `ratio`: round(L * (1 - ratio)), at least 1."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask.image_ratio: {ratio!r} is outside [0, 1)")
    return max(1, min(num_patches, round(num_patches * (1.0 - ratio))))


def random_keep_indices(
    n: int,
    num_patches: int,
    ratio: float,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample uniformly random patch subset (argsort of uniform noise, MAE style).

    Returns (keep [N, K], masked [N, L-K]) long indices into the L patches. Both are sorted
    ascending so visible tokens keep raster order (cheap, and makes outputs easy to inspect).
    """
    k = num_kept(num_patches, ratio)
    noise = torch.rand(n, num_patches, device=device, generator=generator)  # [N, L]
    order = noise.argsort(dim=1)
    keep = order[:, :k].sort(dim=1).values  # [N, K]
    masked = order[:, k:].sort(dim=1).values  # [N, L-K]
    return keep, masked


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    ratio: float,
    mask_token_id: int,
    special_ids: Sequence[int],
    vocab_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masked-language-model corruption (eq. 8's x_{\\i}).

    Each non-special, non-pad token is selected with probability `ratio`; selected tokens
    become [MASK] (80 %), a random token (10 %) or stay (10 %). A row with any maskable token
    gets at least one selected when ratio > 0, so every row contributes to the MLM loss.
    Returns (masked_ids [N, T], mlm_labels [N, T]): labels are the original id where
    selected and -100 elsewhere (cross-entropy's ignore index).
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"mask.text_ratio: {ratio!r} is outside [0, 1]")
    device = input_ids.device
    special = torch.as_tensor(list(special_ids), dtype=input_ids.dtype, device=device)
    maskable = attention_mask.bool() & ~torch.isin(input_ids, special)  # [N, T]
    labels = torch.full_like(input_ids, -100)
    if ratio == 0.0:
        return input_ids.clone(), labels

    draw = torch.rand(input_ids.shape, device=device, generator=generator)  # [N, T]
    selected = (draw < ratio) & maskable
    # Rows left empty by chance: force their maskable token with the smallest draw.
    empty = maskable.any(dim=1) & ~selected.any(dim=1)  # [N]
    forced = torch.where(maskable, draw, torch.full_like(draw, 2.0)).argmin(dim=1)  # [N]
    selected[empty, forced[empty]] = True

    labels = torch.where(selected, input_ids, labels)
    how = torch.rand(input_ids.shape, device=device, generator=generator)  # 80/10/10 split
    random_ids = torch.randint(
        vocab_size, input_ids.shape, device=device, generator=generator, dtype=input_ids.dtype
    )
    masked_ids = torch.where(selected & (how < 0.8), mask_token_id, input_ids)
    masked_ids = torch.where(selected & (how >= 0.8) & (how < 0.9), random_ids, masked_ids)
    return masked_ids, labels


def objectives(cfg: Config) -> tuple[bool, bool]:
    """(MIM, MLM): the extra objectives `mask.variant` trains -- the one place that decides.

    `image` adds MAE reconstruction of the dropped patches, `text` adds MLM, `both` both,
    `none` neither; an objective whose weight is 0 is off (the model builds no head for it).
    """
    variant = cfg.mask.variant
    mim = variant in ("image", "both") and cfg.loss.mim_weight > 0
    mlm = variant in ("text", "both") and cfg.loss.mlm_weight > 0
    return mim, mlm


def ratios_for(cfg: Config, unmasked: bool = False) -> tuple[float, float]:
    """(image_ratio, text_ratio) for a training step, as the README defines the variants.

    `mask.image_ratio` is FLIP patch dropping and applies in every variant; the text is
    masked (at `mask.text_ratio`) only when the variant trains MLM (`objectives`).
    `unmasked=True` is FLIP's unmasked tuning: nothing masked, so MIM and MLM rest too.
    """
    if unmasked:
        return 0.0, 0.0
    _, mlm = objectives(cfg)
    return cfg.mask.image_ratio, cfg.mask.text_ratio if mlm else 0.0


def budgets_for(cfg: Config, full_size: bool = False) -> tuple[float, int]:
    """(text_tokens, image_size) a training step reads: `mask.text_tokens` (0 = whole
    reports) and `data.train_image_size` (0 = as loaded, data.image_size); both off in
    the full-size tuning phase (`full_size=True`), which reads what evaluation reads."""
    if full_size:
        return 0.0, 0
    return cfg.mask.text_tokens, cfg.data.train_image_size
