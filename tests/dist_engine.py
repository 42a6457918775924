"""engine.fit on 2 gloo ranks in one machine (torch.multiprocessing), as Ray Train runs it."""

from __future__ import annotations

import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank, world, init, out, runs):
    from medflip import variants
    from medflip.config import apply_overrides
    from medflip.training import engine

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    results = {}
    for name, (overrides, nan_rank, nan_step) in runs.items():
        cfg = apply_overrides(variants.get("tiny"), overrides)

        def before_step(step, batch, nan_rank=nan_rank, nan_step=nan_step):
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
        final = engine.fit(cfg, report=lambda m, _, r=reports: r.append(dict(m)), hooks=hooks)
        results[name] = {"final": final, "reports": reports}
    torch.save(results, f"{out}.{rank}")
    dist.destroy_process_group()


def fit_2_ranks(runs: dict[str, tuple[dict, int, int]]) -> dict[str, list[dict]]:
    """Each run of `runs` (name -> (overrides, nan_rank, nan_step); -1: no NaN), one after
    another in one spawn of 2 ranks (a spawn and its imports cost more than a tiny run).
    Returns name -> [rank 0's, rank 1's] {"final": metrics, "reports": [metrics, ...]}."""
    with tempfile.TemporaryDirectory() as tmp:
        init, out = f"file://{os.path.join(tmp, 'rdv')}", os.path.join(tmp, "res")
        mp.spawn(_worker, (2, init, out, runs), nprocs=2, join=True)
        ranks = [torch.load(f"{out}.{r}", weights_only=False) for r in range(2)]
    return {name: [ranks[0][name], ranks[1][name]] for name in runs}
