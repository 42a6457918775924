"""The rows the contrastive and SVD terms see: this rank's batch, or every rank's.

A batch may hold rows without an image (`batch["has_image"]` False: a report whose image
files are absent); the image tower encodes only the N_i rows with one, so the model's
image outputs have N_i rows while its text outputs have N. Here the image outputs are
scattered back to one row per batch row (zeros where there is no image, masked out by
`has_image`), so every rank contributes the same number of rows to the gather-with-gradient
(`medflip.device.distributed.gather_rows` needs equal shares) and each rank's rows stay aligned.
"""

from __future__ import annotations

import torch

from medflip.device import distributed

GRAD_KEYS = ("image_emb", "text_emb", "image_tokens", "text_tokens", "text_token_mask")
IMAGE_KEYS = ("image_emb", "image_tokens")  # N_i rows from the model: one per image


def _mask(batch: dict, key: str, n: int, device) -> torch.Tensor:
    value = batch.get(key)
    if value is None:
        return torch.ones(n, dtype=torch.bool, device=device)
    return value.to(device).bool()


def _image_rows(x: torch.Tensor, has_image: torch.Tensor) -> torch.Tensor:
    """[N_i, ...] -> [N, ...] with the image rows at `has_image`, zeros elsewhere (with grad)."""
    if x.shape[0] == has_image.shape[0]:
        return x
    full = x.new_zeros((has_image.shape[0], *x.shape[1:]))
    return full.index_copy(0, has_image.nonzero().squeeze(1), x)


def global_batch(outputs: dict, batch: dict) -> dict:
    """Per batch row: embeddings and tokens (with gradient), `paired` and `has_image` [N]
    bool, `image_labels` / `labels` -- gathered over ranks at world size > 1.

    Text token tensors differ in length across ranks: padded to the longest (padding masked
    out, so it adds nothing to sigma_1). Labels and masks are gathered without gradient.
    """
    rows = {k: outputs[k] for k in GRAD_KEYS if k in outputs}
    n, device = rows["text_emb"].shape[0], rows["text_emb"].device
    rows["paired"] = _mask(batch, "paired", n, device)
    rows["has_image"] = _mask(batch, "has_image", n, device)
    for key in IMAGE_KEYS:
        if key in rows:
            rows[key] = _image_rows(rows[key], rows["has_image"])
    for key in ("image_labels", "labels"):
        if batch.get(key) is not None:
            rows[key] = batch[key]
    if distributed.world_size() == 1:
        return rows
    for key in ("text_tokens", "text_token_mask"):
        if key in rows:
            longest = distributed.max_over_ranks(rows[key].shape[1], device)
            rows[key] = distributed.pad_dim1(rows[key], longest)
    return {k: distributed.gather_rows(v, grad=k in GRAD_KEYS) for k, v in rows.items()}


def pairs(rows: dict) -> dict:
    """The rows that are pairs (an image with its own study's text): identity-target terms."""
    keep = rows["paired"] & rows["has_image"]
    rest = {k: v for k, v in rows.items() if k not in ("paired", "has_image")}
    if bool(keep.all()):
        return rest
    return {k: v[keep] for k, v in rest.items()}


def label_matched(rows: dict) -> dict:
    """Every image row against every text row (MedCLIP's decoupling): image_emb and
    image_labels [N_i, ...] of the rows with an image, text_emb and labels [N_t, ...] of all."""
    has = rows["has_image"]
    out = {k: rows[k] for k in ("text_emb", "labels") if k in rows}
    for key in ("image_emb", "image_labels"):
        if key in rows:
            out[key] = rows[key] if bool(has.all()) else rows[key][has]
    return out
