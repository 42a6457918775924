"""Training throughput of a variant on one device and on all devices of a node.

Pairs/s and model FLOP utilisation (MFU: medflip.models.flops' count of both towers over the
device's peak) of the production step (medflip.training.step.train_step, the run's AdamW) at image
mask ratios r = 0 / 0.5 / 0.75, bf16. Each worker count runs as a real Ray Train
`TorchTrainer` fit (DDP across the workers, rank 0 reports); `--workers 0` measures in this
process without Ray. Options: fused AdamW, `torch.compile`, bf16 gradient all-reduce (a DDP
comm hook) -- benchmark-side switches, not config keys.

On a GPU node:  python benchmarks/throughput.py --device cuda --variant paper --workers 1,all
Here (smoke):   python benchmarks/throughput.py --device cpu --variant demo --batch-size 8

Ends by printing one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
# Dense bf16 peak per device, TFLOP/s (vendor datasheets, SXM parts), by name fragment.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}


def peak_tflops(device_name: str, override: float) -> float | None:
    if override > 0:
        return override
    return next((v for k, v in PEAK_TFLOPS.items() if k in device_name), None)


def _optimizer(model, cfg, fused: bool):
    """The run's AdamW (run_parts.build_optimizer); `fused` rebuilds it with the same
    param groups as torch's fused kernel."""
    import torch

    from medflip.training.run_parts import build_optimizer

    optimizer = build_optimizer(model, cfg)
    if fused:
        optimizer = torch.optim.AdamW(optimizer.param_groups, fused=True)
    return optimizer


def measure(opts: dict, wrap=None) -> dict:
    """Pairs/s per ratio on this process's device; `wrap` = DDP preparation (Ray)."""
    sys.path.insert(0, HERE)
    import time

    import torch
    from common import build, make_batch, sync

    from medflip import variants
    from medflip.config import apply_overrides
    from medflip.models import flops
    from medflip.training.step import StepPlan, train_step

    torch.manual_seed(0)
    cfg = apply_overrides(variants.get(opts["variant"]), {"optim.precision": opts["precision"]})
    device = opts["device"]
    if device == "cuda":
        device = f"cuda:{torch.cuda.current_device()}"
    n = opts["batch_size"] or cfg.optim.batch_size
    batch = make_batch(cfg, n, device)
    length = int(batch["attention_mask"].sum(dim=1).max())  # the encoded (trimmed) length
    model, criterion, _ = build(cfg, device)
    optimizer = _optimizer(model, cfg, opts["fused_adamw"])
    if wrap is not None:
        model = wrap(model)
    if opts["compile"]:
        model = torch.compile(model)
    out = {}
    for ratio in opts["ratios"]:
        plan = StepPlan(lr=cfg.optim.lr, image_ratio=ratio)

        def step(plan=plan):
            train_step(model, criterion, optimizer, batch, plan,
                       precision=cfg.optim.precision, grad_clip=cfg.optim.grad_clip)  # fmt: skip

        for _ in range(opts["warmup"]):
            step()
        sync(device)
        start = time.perf_counter()
        for _ in range(opts["steps"]):
            step()
        sync(device)
        seconds = (time.perf_counter() - start) / opts["steps"]
        per_pair = flops.train_flops_per_pair(cfg, ratio, length)
        out[str(ratio)] = {"step_s": seconds, "pairs_per_s": n / seconds,
                           "flops_per_pair": per_pair, "batch_per_device": n}  # fmt: skip
    return out


def _worker(opts: dict) -> None:
    """Ray Train worker: DDP-prepared model, the same loop; rank 0 reports the slowest rank's
    step time (all-reduce MAX) as the node's."""
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist

    def wrap(model):
        model = ray.train.torch.prepare_model(model)
        if opts["bf16_allreduce"] and isinstance(model, torch.nn.parallel.DistributedDataParallel):
            from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

            model.register_comm_hook(None, default_hooks.bf16_compress_hook)
        return model

    if opts["device"] == "cpu":
        opts = {**opts, "device": "cpu"}
    result = measure(opts, wrap)
    world = ray.train.get_context().get_world_size()
    for r in result.values():
        t = torch.tensor([r["step_s"]], dtype=torch.float64)
        if world > 1 and dist.is_initialized():
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        r["step_s"] = float(t)
        r["pairs_per_s"] = world * r["batch_per_device"] / r["step_s"]
    if ray.train.get_context().get_world_rank() == 0:  # the driver reads it after fit()
        with open(os.path.join(opts["storage"], f"result-{world}.json"), "w") as f:
            json.dump(result, f)
    ray.train.report({"world": world})


def run_trainer(opts: dict, workers: int) -> dict:
    """One TorchTrainer fit with `workers` workers (1 GPU each on cuda, 1 CPU each on cpu)."""
    import ray
    import ray.train
    import ray.train.torch

    use_gpu = opts["device"] == "cuda"
    resources = {"GPU": 1.0, "CPU": 1.0} if use_gpu else {"CPU": float(opts["threads"])}
    trainer = ray.train.torch.TorchTrainer(
        _worker,
        train_loop_config=opts,
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        run_config=ray.train.RunConfig(
            name=f"throughput-{workers}",
            storage_path=opts["storage"],
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
        ),  # fmt: skip
    )
    trainer.fit()
    with open(os.path.join(opts["storage"], f"result-{workers}.json")) as f:
        return json.load(f)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", default="paper")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    p.add_argument("--ratios", default="0,0.5,0.75", help="image mask ratios, comma-separated")
    p.add_argument("--batch-size", type=int, default=0, help="per device; default optim.batch_size")
    p.add_argument("--steps", type=int, default=10, help="timed steps per ratio")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per ratio first")
    p.add_argument("--workers", default="1,all",
                   help="worker counts for TorchTrainer runs: numbers or 'all' (every GPU; "
                        "on cpu 1); 0 = in this process without Ray")  # fmt: skip
    p.add_argument("--threads", type=int, default=2, help="torch threads (cpu)")
    p.add_argument("--fused-adamw", action="store_true", help="torch's fused AdamW kernel")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--bf16-allreduce", action="store_true", help="DDP bf16 gradient all-reduce")
    p.add_argument("--peak-tflops", type=float, default=0.0,
                   help="device peak for MFU (default: known GPUs' dense bf16 peak)")  # fmt: skip
    args = p.parse_args(argv)
    try:
        args.ratio_list = [float(r) for r in args.ratios.split(",")]
    except ValueError:
        p.error(f"--ratios: {args.ratios!r} is not a comma-separated list of numbers")
    return args


def _worker_counts(spec: str, device: str) -> list[int]:
    import torch

    every = torch.cuda.device_count() if device == "cuda" else 1
    counts = [every if w == "all" else int(w) for w in spec.split(",")]
    return sorted(set(counts))


def main(argv=None) -> dict:
    args = parse(argv)  # before the heavy imports: --help answers at once
    sys.path.insert(0, HERE)
    import torch
    from common import load_average

    from medflip.device.precision import resolve_precision

    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no GPU visible here; use --device cpu", file=sys.stderr)
        raise SystemExit(2)
    load_before = load_average()
    torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    peak = peak_tflops(name, args.peak_tflops)
    opts = {
        "variant": args.variant, "device": args.device,
        "precision": resolve_precision(args.precision, args.device),  # auto -> what runs
        "ratios": args.ratio_list, "batch_size": args.batch_size, "steps": args.steps,
        "warmup": args.warmup, "threads": args.threads, "fused_adamw": args.fused_adamw,
        "compile": args.compile, "bf16_allreduce": args.bf16_allreduce,
    }  # fmt: skip
    runs = {}
    counts = _worker_counts(args.workers, args.device)
    if 0 in counts:
        runs["0"] = measure(opts)
    if any(c > 0 for c in counts):
        import ray

        # Workers import this script's module (and common.py) by name: put them on the path.
        path = os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH", "")) if p)
        ray.init(address="local", num_cpus=max(2, args.threads), include_dashboard=False,
                 log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}})  # fmt: skip
        try:
            with tempfile.TemporaryDirectory(prefix="medflip-throughput-") as storage:
                for c in (c for c in counts if c > 0):
                    runs[str(c)] = run_trainer({**opts, "storage": storage}, c)
        finally:
            ray.shutdown()
    rows = []
    for workers, by_ratio in runs.items():
        devices = max(1, int(workers))
        base = by_ratio.get("0.0", {}).get("pairs_per_s")
        for ratio, r in by_ratio.items():
            achieved = r["pairs_per_s"] * r["flops_per_pair"] / devices / 1e12  # TFLOP/s/device
            rows.append({
                "workers": int(workers), "ratio": float(ratio),
                "pairs_per_s": round(r["pairs_per_s"], 2), "step_ms": round(r["step_s"] * 1e3, 2),
                "tflops_per_device": round(achieved, 4),
                "mfu": round(achieved / peak, 4) if peak else None,
                "speedup_vs_r0": round(r["pairs_per_s"] / base, 3) if base else None,
            })  # fmt: skip
            mfu = f"MFU {achieved / peak:.1%}" if peak else "MFU n/a (unknown peak)"
            print(f"workers {workers:>2} r={ratio:<4} {r['pairs_per_s']:9.1f} pairs/s  "
                  f"{achieved:8.3f} TFLOP/s/device  {mfu}")  # fmt: skip
    result = {
        "throughput": rows,
        "conditions": {**opts, "device_name": name, "peak_tflops": peak,
                       "load_before": load_before, "load_after": load_average()},
    }  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
