"""Deterministic, resumable, rank-sharded batch order for pretraining.

The engine owns the order of the data (not a DistributedSampler) so that a run gives the
same batches on 1 or N workers and resumes mid-epoch exactly: epoch e visits a permutation
seeded by (seed, e); global batch b is perm[b*B:(b+1)*B] and rank r takes every
world_size-th item of it.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


def batches_per_epoch(num_items: int, global_batch: int) -> int:
    """Full global batches in one epoch (the last partial batch is dropped)."""
    return num_items // global_batch


class ShardedBatchSampler(Sampler[list[int]]):
    """Yields this rank's share of each global batch of epoch `epoch`, from `start_batch` on."""

    def __init__(
        self,
        num_items: int,
        global_batch: int,
        seed: int,
        epoch: int,
        start_batch: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if global_batch % world_size:
            raise ValueError(
                f"optim.batch_size ({global_batch}) must be divisible by the number of "
                f"workers ({world_size})"
            )
        if batches_per_epoch(num_items, global_batch) < 1:
            raise ValueError(
                f"the training set has {num_items} pairs, fewer than one batch of {global_batch}"
            )
        self.num_items, self.global_batch = num_items, global_batch
        self.seed, self.epoch, self.start_batch = seed, epoch, start_batch
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return max(0, batches_per_epoch(self.num_items, self.global_batch) - self.start_batch)

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        perm = torch.randperm(self.num_items, generator=gen)  # [num_items]
        for b in range(self.start_batch, batches_per_epoch(self.num_items, self.global_batch)):
            chunk = perm[b * self.global_batch : (b + 1) * self.global_batch]
            yield chunk[self.rank :: self.world_size].tolist()
