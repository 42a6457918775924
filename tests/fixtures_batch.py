"""A small seeded model batch in the data layer's format, shared by the tests of the towers
and of text-only rows (benchmarks/common.make_batch is its demo-sized kin)."""

from __future__ import annotations

import torch

VOCAB, PAD, CLS, SEP, MASK = 60, 0, 2, 3, 4
SPECIAL = (PAD, 1, CLS, SEP, MASK)


def make_batch(n=4, t=12, seed=0, image_size=32, has_image: torch.Tensor | None = None) -> dict:
    """n reports of t token slots, row k holding (t, t-3, 5, t-1)[k % 4] real tokens
    ([CLS] ... [SEP], then padding); a 1-channel image per row, or only per True of
    `has_image` (the other rows are text-only reports); CheXpert-coded labels (1/0/-1)
    of the report and of the image side."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([(t, t - 3, 5, t - 1)[k % 4] for k in range(n)])
    ids = torch.randint(5, VOCAB, (n, t), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()  # [n, t]
    ids = ids * mask
    ids[:, 0] = CLS
    ids[torch.arange(n), lengths - 1] = SEP
    images = n if has_image is None else int(has_image.sum())
    batch = {
        "image": torch.randn(images, 1, image_size, image_size, generator=g),
        "input_ids": ids,
        "attention_mask": mask,
        "labels": torch.randint(-1, 2, (n, 14), generator=g).float(),
        "image_labels": torch.randint(-1, 2, (n, 14), generator=g).float(),
        "paired": torch.ones(n, dtype=torch.bool) if has_image is None else has_image.clone(),
    }
    if has_image is not None:
        batch["has_image"] = has_image.clone()
    return batch
