"""engine.fit on 2 gloo ranks in one machine (torch.multiprocessing), as Ray Train runs it."""

from __future__ import annotations

import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank, world, init, out, overrides, nan_rank, nan_step):
    from medflip import variants
    from medflip.config import apply_overrides
    from medflip.training import engine

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    cfg = apply_overrides(variants.get("tiny"), overrides)

    def before_step(step, batch):
        if rank == nan_rank and step == nan_step:
            return {**batch, "image": batch["image"] * float("nan")}
        return batch

    reports = []
    hooks = engine.Hooks(
        prepare_model=torch.nn.parallel.DistributedDataParallel,
        rank=rank,
        world_size=world,
        before_step=before_step,
    )
    final = engine.fit(cfg, report=lambda m, _: reports.append(dict(m)), hooks=hooks)
    torch.save({"final": final, "reports": reports}, f"{out}.{rank}")
    dist.destroy_process_group()


def fit_2_ranks(overrides: dict, nan_rank: int = -1, nan_step: int = -1) -> list[dict]:
    """[rank 0's, rank 1's] {"final": metrics, "reports": [metrics, ...]}."""
    with tempfile.TemporaryDirectory() as tmp:
        init, out = f"file://{os.path.join(tmp, 'rdv')}", os.path.join(tmp, "res")
        args = (2, init, out, overrides, nan_rank, nan_step)
        mp.spawn(_worker, args, nprocs=2, join=True)
        return [torch.load(f"{out}.{r}", weights_only=False) for r in range(2)]
