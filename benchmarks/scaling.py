"""Pairs/s of one trial on 1 and on 2 workers, and the per-worker efficiency.

Each worker is a process running the production loop (`engine.fit`) under DDP, as Ray Train
runs it (torch.multiprocessing + gloo on CPU, NCCL with `--device cuda`), with one thread
per worker (`--threads`) and the same global batch, so 2 workers each take half of every
batch. Throughput is the second report's (steps after the first half: start-up, warm-up and
the first evaluation excluded); 1- and 2-worker runs alternate, `--repeats` times each, and
the medians are compared. Ray's own start-up (~10-20 s per trial on 2 cores) is not in it:
benchmarks/orchestration.py measures that.

    python benchmarks/scaling.py                 # CPU, demo variant, 1 vs 2 workers
    python benchmarks/scaling.py --device cuda   # a GPU node: 1 vs 2 GPUs

Ends with one line of JSON: pairs/s per worker count, the ratio and the efficiency.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _worker(rank, world, init, out, variant, overrides, threads, device):
    import torch
    import torch.distributed as dist

    from medflip import variants
    from medflip.config import apply_overrides
    from medflip.training import engine

    torch.set_num_threads(threads)
    if device == "cuda":
        torch.cuda.set_device(rank)
    if world > 1:
        backend = "nccl" if device == "cuda" else "gloo"
        dist.init_process_group(backend, init_method=init, rank=rank, world_size=world)
    cfg = apply_overrides(variants.get(variant), overrides)
    reports = []
    hooks = engine.Hooks(
        prepare_model=torch.nn.parallel.DistributedDataParallel if world > 1 else (lambda m: m),
        rank=rank,
        world_size=world,
    )
    engine.fit(cfg, report=lambda m, _: reports.append(m["throughput"]), hooks=hooks)
    if rank == 0:
        torch.save(reports, out)
    if world > 1:
        dist.destroy_process_group()


def pairs_per_s(world, variant, overrides, threads, device) -> float:
    """Global training pairs/s over the second half of one run on `world` workers."""
    import torch  # after argparse: --help answers at once
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp:
        init, out = f"file://{os.path.join(tmp, 'rdv')}", os.path.join(tmp, "res")
        args = (world, init, out, variant, overrides, threads, device)
        mp.spawn(_worker, args, nprocs=world, join=True)
        return float(torch.load(out)[1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="demo")
    p.add_argument("--steps", type=int, default=24, help="steps per run (throughput: 2nd half)")
    p.add_argument("--repeats", type=int, default=2, help="runs per worker count (median)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    a = p.parse_args(argv)
    from medflip import variants

    batch = variants.get(a.variant).optim.batch_size
    overrides = {
        "optim.max_steps": a.steps,
        "optim.time_budget_s": 0.0,
        "optim.precision": a.precision,
        "eval.every_share": 0.5,
        "data.eval_per_class": 10,  # evaluation is not timed; keep it short
        "data.loader_workers": 0,  # one process per worker: the cores belong to the ranks
    }
    runs: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(a.repeats):  # interleaved, so drift in machine load hits both alike
        for world in (1, 2):
            runs[world].append(pairs_per_s(world, a.variant, overrides, a.threads, a.device))
            print(f"{world} worker(s): {runs[world][-1]:.1f} pairs/s", flush=True)
    one, two = statistics.median(runs[1]), statistics.median(runs[2])
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []
    print(
        f"median pairs/s: 1 worker {one:.1f}, 2 workers {two:.1f}; "
        f"ratio {two / one:.2f}x, per-worker efficiency {two / (2 * one):.0%}"
    )
    print(
        json.dumps(
            {
                "variant": a.variant,
                "device": a.device,
                "threads_per_worker": a.threads,
                "global_batch": batch,
                "pairs_per_s_1": one,
                "pairs_per_s_2": two,
                "ratio_2_over_1": two / one,
                "efficiency_per_worker": two / (2 * one),
                "runs": {str(k): v for k, v in runs.items()},
                "loadavg_end": load,
            }
        )
    )


if __name__ == "__main__":
    main()
