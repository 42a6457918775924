"""How much faster FLIP-style patch dropping makes the image tower and the training step.

1. Image tower forward + backward at mask ratios r in {0, .25, .5, .75, .9}, interleaved,
   median of repeats: speedup vs r = 0, and that speedup as a fraction of the ideal
   1 / (1 - r) (encoder cost proportional to visible patches).
2. The whole training step (both towers + MedFLIPLoss + AdamW) at r = 0 and 0.75, and at
   0.75 with text masking (MLM as a second text pass, or sharing the contrastive pass),
   plus the text tower's own forward + backward.

Ends by printing one line of JSON. Random images and token ids (~60 non-pad tokens): the
cost of a step does not depend on the content.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from medflip import variants
from medflip.config import apply_overrides
from medflip.losses import MedFLIPLoss
from medflip.models.medflip import MedFLIP

RATIOS = (0.0, 0.25, 0.5, 0.75, 0.9)
VOCAB, PAD, CLS, SEP, MASK = 2000, 0, 2, 3, 4


def make_batch(cfg, n: int, device: str, text_len: int = 60, seed: int = 0) -> dict:
    """Random batch in the data layer's format; text ~text_len real tokens, rest padding."""
    g = torch.Generator().manual_seed(seed)
    t = cfg.data.max_text_len
    lengths = torch.randint(text_len - 8, text_len + 9, (n,), generator=g).clamp(3, t)
    ids = torch.randint(5, VOCAB, (n, t), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    ids = ids * mask
    ids[:, 0] = CLS
    ids[torch.arange(n), lengths - 1] = SEP
    labels = torch.randint(-1, 2, (n, 14), generator=g).float()
    batch = {
        "image": torch.randn(n, 1, cfg.data.image_size, cfg.data.image_size, generator=g),
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "image_labels": labels.clone(),
        "paired": torch.ones(n, dtype=torch.bool),
    }
    return {k: v.to(device) for k, v in batch.items()}


def build(cfg, device: str, shared_text_pass: bool = False):
    """Model, loss and AdamW as the engine builds them."""
    special = (PAD, 1, CLS, SEP, MASK)
    model = MedFLIP(cfg, VOCAB, PAD, MASK, special, shared_text_pass=shared_text_pass)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    return model, MedFLIPLoss(cfg), opt


def autocast(device: str, precision: str):
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def train_step(model, loss_fn, opt, batch, image_ratio, text_ratio, device, precision):
    """One optimiser step: forward, MedFLIPLoss, backward, AdamW."""
    with autocast(device, precision):
        out = model(batch, image_ratio, text_ratio)
        loss = loss_fn(out, batch)["loss"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def interleaved(fns: dict, repeats: int, device: str, warmup: int = 2) -> dict:
    """Seconds per run of each named callable, run round-robin so drift hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, device))
    return times


def medians(times: dict) -> dict:
    return {name: statistics.median(ts) for name, ts in times.items()}


def minima(times: dict) -> dict:
    """Fastest run: on a shared machine the least disturbed, so the steadiest ratio."""
    return {name: min(ts) for name, ts in times.items()}


def tower_benchmark(model, batch, repeats, device, precision) -> dict:
    """Image tower forward + backward per mask ratio (seconds per run)."""

    def run(ratio):
        def fn():
            with autocast(device, precision):
                pooled = model.image(batch["image"], ratio).pooled
            pooled.float().sum().backward()

        return fn

    return interleaved({r: run(r) for r in RATIOS}, repeats, device)


def step_benchmark(cfg, batch, repeats, device, precision) -> dict:
    """Whole training steps at r = 0 and 0.75, and at 0.75 with MLM (text_ratio 0.15) run as
    a second text pass (the default) or sharing the contrastive pass."""
    text_cfg = apply_overrides(cfg, {"mask.variant": "text"})  # builds the MLM head
    plain, separate = build(cfg, device), build(text_cfg, device)
    shared = build(text_cfg, device, shared_text_pass=True)

    def run(parts, image_ratio, text_ratio=0.0):
        return lambda: train_step(*parts, batch, image_ratio, text_ratio, device, precision)

    def text_only():
        with autocast(device, precision):
            pooled = plain[0].text(batch["input_ids"], batch["attention_mask"]).pooled
        pooled.float().sum().backward()

    fns = {
        "step_0": run(plain, 0.0),
        "step_0.75": run(plain, 0.75),
        "step_0.75_mlm": run(separate, 0.75, 0.15),
        "step_0.75_mlm_shared": run(shared, 0.75, 0.15),
        "text_tower": text_only,
    }
    return interleaved(fns, repeats, device)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="demo")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=0, help="default: optim.batch_size")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = variants.get(args.variant)
    n = args.batch_size or cfg.optim.batch_size
    batch = make_batch(cfg, n, args.device)

    model, _, _ = build(cfg, args.device)
    tower_runs = tower_benchmark(model, batch, args.repeats, args.device, args.precision)
    tower, tower_min = medians(tower_runs), minima(tower_runs)
    speedup = {r: tower[0.0] / tower[r] for r in RATIOS}
    fraction = {r: speedup[r] * (1 - r) for r in RATIOS if r > 0}
    fraction_min = {r: tower_min[0.0] / tower_min[r] * (1 - r) for r in RATIOS if r > 0}
    print(f"image tower fwd+bwd, batch {n}, {args.precision}, {args.device}, median (min):")
    for r in RATIOS:
        frac = f"  {fraction[r]:.2f} ({fraction_min[r]:.2f}) of ideal" if r > 0 else ""
        print(f"  r={r:<4} {tower[r] * 1e3:8.1f} ({tower_min[r] * 1e3:.1f}) ms  "
              f"x{speedup[r]:.2f}{frac}")  # fmt: skip

    # mask.variant stays the base's (demo: none), so no MAE decoder: this is FLIP's step.
    step_runs = step_benchmark(cfg, batch, args.repeats, args.device, args.precision)
    step, step_min = medians(step_runs), minima(step_runs)
    step_speedup = step["step_0"] / step["step_0.75"]
    print(f"training step ({args.variant}, batch {n}), median (min):")
    for name, sec in step.items():
        print(f"  {name:22s} {sec * 1e3:8.1f} ({step_min[name] * 1e3:.1f}) ms")
    print(f"  step speedup at r=0.75: x{step_speedup:.2f} "
          f"(min: x{step_min['step_0'] / step_min['step_0.75']:.2f})")  # fmt: skip
    result = {
        "tower_fraction_of_ideal": {str(r): round(f, 3) for r, f in fraction.items()},
        "tower_fraction_of_ideal_min": {str(r): round(f, 3) for r, f in fraction_min.items()},
        "tower_speedup": {str(r): round(s, 3) for r, s in speedup.items() if r > 0},
        "tower_ms": {str(r): round(t * 1e3, 2) for r, t in tower.items()},
        "step_speedup_0.75": round(step_speedup, 3),
        "step_speedup_0.75_min": round(step_min["step_0"] / step_min["step_0.75"], 3),
        "step_ms": {k: round(v * 1e3, 2) for k, v in step.items()},
        "step_ms_min": {k: round(v * 1e3, 2) for k, v in step_min.items()},
        "mlm_second_pass_overhead": round(step["step_0.75_mlm"] / step["step_0.75"] - 1, 3),
        "mlm_shared_pass_overhead": round(step["step_0.75_mlm_shared"] / step["step_0.75"] - 1, 3),
        "text_share_of_step_0.75": round(step["text_tower"] / step["step_0.75"], 3),
        "conditions": {
            "variant": args.variant,
            "batch": n,
            "precision": args.precision,
            "device": args.device,
            "threads": args.threads,
            "repeats": args.repeats,
        },  # fmt: skip
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
