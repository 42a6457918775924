"""Control datasets that show where learning comes from."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

TEXT_KEYS = ("input_ids", "attention_mask", "labels", "text_priority")  # those an item has


class ShuffledReports(Dataset):
    """Item i = the image of item i with the report of item perm[i] (a fixed derangement).

    Every image keeps a report from the same corpus, so the text statistics are unchanged,
    but the image-report pairing is destroyed: a model trained on it must stay near chance.
    """

    def __init__(self, base: Dataset, seed: int):
        self.base = base
        n = len(base)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
        self.perm = torch.roll(perm, 1)[torch.argsort(perm)] if n > 1 else perm  # no fixed points

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.base[i])
        other = self.base[int(self.perm[i])]
        for key in TEXT_KEYS:
            if key in other:
                item[key] = other[key]
        return item
