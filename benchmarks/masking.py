"""How much faster FLIP-style patch dropping makes the image tower and the training step.

1. Image tower forward + backward at mask ratios r in {0, .25, .5, .75, .9}, interleaved,
   median of repeats: speedup vs r = 0, and that speedup as a fraction of the ideal
   1 / (1 - r) (encoder cost proportional to visible patches).
2. The production training step (medflip.training.step.train_step with the run's AdamW, param
   groups, clipping and precision) at r = 0 and 0.75, and at 0.75 with text masking (MLM as
   a second text pass, or sharing the contrastive pass), side by side in one run; and where
   a masked step's time goes: image tower, text tower, loss (each forward + backward) and
   optimiser (clipping + AdamW), the rest being what the step adds around them. The steps
   at r = 0 and 0.75 and the text part run twice, with the text forward in length buckets
   (medflip.models.text_buckets, the default on CPU) and as one trimmed batch: the
   speedup before / after bucketing side by side.
3. Token budgets (issue 23), in the same interleaved run: the r = 0.75 step with the text
   cut to 16 tokens (CLIPA-sized) and to half of each report (truncate policy: the cost
   does not depend on which tokens are kept), the step at half the image side (32 px at
   r = 0, and at r = 0.75 with 16 text tokens); each setting's model FLOPs per pair
   (medflip.models.flops, kept tokens and pixels only) beside its time.

Ends by printing one line of JSON. Random images and token ids: the cost of a step does
not depend on the content, but the text tower's does on the lengths, so they are drawn
from the demo corpus' measured distribution (`--text-lengths demo`; `uniform60` is the
earlier 52-68).
"""

from __future__ import annotations

import json

from cli import step_parser

RATIOS = (0.0, 0.25, 0.5, 0.75, 0.9)
MASKED = 0.75
# Token counts (with [CLS]/[SEP]) of the demo corpus' 20,000 training texts (seed 0,
# medflip tokenizer, max_text_len 96) at these percentiles: mean 34.0, median 32, and a
# batch of 128 drawn from it has a longest row of ~75 (sampled from these: ~76).
LENGTH_PERCENTILES = (
    0, 1, 2.5, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 97.5, 99, 99.5, 99.9, 100,
)  # fmt: skip
DEMO_LENGTHS = (7, 12, 14, 17, 20, 23, 26, 29, 32, 35, 39, 44, 51, 58, 64, 71, 75, 84, 96)


def with_text_lengths(batch: dict, kind: str, seed: int = 0) -> dict:
    """The batch with row lengths drawn from the demo corpus (`demo`) or common.make_batch's
    52-68 (`uniform60`): ids past each row's length become padding, its last token [SEP]."""
    import numpy as np
    import torch
    from common import PAD, SEP

    if kind == "uniform60":
        return batch
    ids, mask = batch["input_ids"].clone(), batch["attention_mask"]
    n, t = ids.shape
    u = np.random.default_rng(seed).random(n)  # inverse CDF, linear between percentiles
    drawn = np.interp(u, np.array(LENGTH_PERCENTILES) / 100, DEMO_LENGTHS).round()
    lengths = torch.from_numpy(drawn).long().clamp(3, t).to(ids.device)  # [n]
    mask = (torch.arange(t, device=ids.device)[None, :] < lengths[:, None]).to(mask.dtype)
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, PAD))
    ids[torch.arange(n), lengths - 1] = SEP
    return {**batch, "input_ids": ids, "attention_mask": mask}


def tower_benchmark(model, batch, repeats, device, precision) -> dict:
    """Image tower forward + backward per mask ratio (seconds per run)."""
    from common import autocast, interleaved

    def run(ratio):
        def fn():
            with autocast(device, precision):
                pooled = model.image(batch["image"], ratio).pooled
            pooled.float().sum().backward()

        return fn

    return interleaved({r: run(r) for r in RATIOS}, repeats, device)


def breakdown_fns(parts, batch, cfg, device) -> dict:
    """Parts of a masked step, each timed alone: towers and loss forward + backward (the
    loss on detached model outputs), and the optimiser (clipping + AdamW)."""
    import torch
    from common import autocast

    model, criterion, optimizer = parts
    precision = cfg.optim.precision

    def image():
        with autocast(device, precision):
            pooled = model.image(batch["image"], MASKED).pooled
        pooled.float().sum().backward()

    def text():
        with autocast(device, precision):
            pooled = model.text(batch["input_ids"], batch["attention_mask"]).pooled
        pooled.float().sum().backward()

    with torch.no_grad(), autocast(device, precision):
        outputs = model(batch, image_ratio=MASKED)
    leaves = {k: v.detach().requires_grad_(v.is_floating_point()) for k, v in outputs.items()}

    def loss():
        with autocast(device, precision):
            criterion(leaves, batch)["loss"].backward()

    def optimiser():
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()

    return {"part_image": image, "part_text": text, "part_loss": loss, "part_optim": optimiser}


def step_benchmark(cfg, batch, repeats, device) -> dict:
    """Production steps at r = 0 and 0.75, and at 0.75 with MLM (text_ratio 0.15) run as a
    second text pass (the default) or sharing the contrastive pass; plus the parts."""
    from common import build, interleaved, step_fn

    from medflip.config import apply_overrides

    text_cfg = apply_overrides(cfg, {"mask.variant": "text"})  # builds the MLM head
    plain, separate = build(cfg, device), build(text_cfg, device)
    shared = build(text_cfg, device, shared_text_pass=True)
    fns = {
        "step_0": step_fn(plain, batch, cfg, 0.0),
        "step_0.75": step_fn(plain, batch, cfg, MASKED),
        "step_0.75_mlm": step_fn(separate, batch, text_cfg, MASKED, 0.15),
        "step_0.75_mlm_shared": step_fn(shared, batch, text_cfg, MASKED, 0.15),
    }
    fns.update(budget_fns(plain, batch, cfg))
    fns["step_0.75"]()  # gradients exist, so the optimiser part times a real update
    fns.update(breakdown_fns(plain, batch, cfg, device))
    text = plain[0].text
    for name in ("step_0", "step_0.75", "part_text"):
        fns[f"{name}_unbucketed"] = unbucketed(fns[name], text)
    return interleaved(fns, repeats, device)


# name -> (image ratio, text budget (mask.text_tokens), image side divisor): the budgets
# timed beside the full steps
BUDGETS = {
    "step_0.75_text16": (MASKED, 16, 1),
    "step_0.75_texthalf": (MASKED, 0.5, 1),
    "step_0_halfres": (0.0, 0, 2),
    "step_0.75_halfres_text16": (MASKED, 16, 2),
}


def budget_fns(parts, batch, cfg) -> dict:
    """Production steps under the token budgets of BUDGETS (StepPlan: train_step reduces
    the batch as a run does)."""
    from medflip.training.step import StepPlan, train_step

    model, criterion, optimizer = parts

    def make(ratio, tokens, divisor):
        plan = StepPlan(
            lr=cfg.optim.lr, image_ratio=ratio, text_tokens=tokens,
            image_size=cfg.data.image_size // divisor if divisor > 1 else 0,
        )  # fmt: skip
        return lambda: train_step(
            model, criterion, optimizer, batch, plan,
            precision=cfg.optim.precision, grad_clip=cfg.optim.grad_clip,
        )  # fmt: skip

    return {name: make(*setting) for name, setting in BUDGETS.items()}


def flops_per_pair(cfg, mask) -> dict:
    """Model training FLOPs per pair of each timed setting: images at their kept patches
    and side, each text over its kept tokens (medflip.models.flops)."""
    import torch

    from medflip.data.text_budget import kept_lengths
    from medflip.models import flops
    from medflip.models.text_buckets import row_lengths

    lengths = torch.tensor(row_lengths(mask))
    settings = {"step_0": (0.0, 0, 1), "step_0.75": (MASKED, 0, 1), **BUDGETS}
    out = {}
    for name, (ratio, tokens, divisor) in settings.items():
        kept = kept_lengths(lengths, tokens).tolist()
        text = sum(flops.text_macs(cfg, k) for k in kept) / len(kept)
        image = flops.image_macs(cfg, ratio, cfg.data.image_size // divisor)
        out[name] = round(6 * (image + text))  # x2 FLOPs per MAC, x3 forward + backward
    return out


def unbucketed(fn, text):
    """`fn` with the text forward as one batch trimmed to its longest row (no buckets)."""

    def run():
        buckets, text.buckets = text.buckets, 1
        try:
            fn()
        finally:
            text.buckets = buckets

    return run


def padding_stats(text, mask) -> dict:
    """Real and encoded tokens per row: one trimmed batch (`longest`) vs the buckets."""
    from medflip.models.text_buckets import length_buckets, row_lengths

    lengths = row_lengths(mask)
    groups = length_buckets(lengths, text.max_buckets(mask.device))
    encoded = sum(len(g) * max(lengths[i] for i in g) for g in groups)
    n = len(lengths)
    return {
        "real_per_row": round(sum(lengths) / n, 1), "longest": max(lengths),
        "encoded_per_row_bucketed": round(encoded / n, 1), "buckets": [len(g) for g in groups],
    }  # fmt: skip


def where_time_goes(step: dict) -> dict:
    """Share of the masked step per part; `other` = step minus the parts (autocast casts,
    zero_grad, loss-value syncs, the graph joining the towers)."""
    total = step["step_0.75"]
    parts = {k: v for k, v in step.items() if k.startswith("part_") and "unbucketed" not in k}
    shares = {k.removeprefix("part_"): v / total for k, v in parts.items()}
    shares["other"] = 1 - sum(shares.values())
    return {k: round(v, 3) for k, v in shares.items()}


def parse(argv=None):
    parser = step_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=0, help="default: optim.batch_size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--text-lengths", default="demo", choices=("demo", "uniform60"))
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)  # before the heavy imports: --help answers at once
    import torch
    from common import build, load_average, make_batch, medians, minima

    from medflip import variants
    from medflip.config import apply_overrides

    load_before = load_average()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = variants.get(args.variant)
    n = args.batch_size or cfg.optim.batch_size
    cfg = apply_overrides(cfg, {"optim.precision": args.precision, "optim.batch_size": n})
    batch = with_text_lengths(make_batch(cfg, n, args.device), args.text_lengths)

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
    step_runs = step_benchmark(cfg, batch, args.repeats, args.device)
    step, step_min = medians(step_runs), minima(step_runs)
    step_speedup = step["step_0"] / step["step_0.75"]
    plain_speedup = step["step_0_unbucketed"] / step["step_0.75_unbucketed"]
    plain_min = step_min["step_0_unbucketed"] / step_min["step_0.75_unbucketed"]
    shares = where_time_goes(step)
    print(f"production training step ({args.variant}, batch {n}), median (min):")
    for name, sec in step.items():
        print(f"  {name:22s} {sec * 1e3:8.1f} ({step_min[name] * 1e3:.1f}) ms")
    print(f"  step speedup at r=0.75: x{step_speedup:.2f} "
          f"(min: x{step_min['step_0'] / step_min['step_0.75']:.2f})")  # fmt: skip
    print(f"  unbucketed text: x{plain_speedup:.2f} (min: x{plain_min:.2f})")
    print("  masked step by part: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    pair_flops = flops_per_pair(cfg, batch["attention_mask"])
    budgets = {k: round(step["step_0"] / step[k], 3) for k in ("step_0.75", *BUDGETS)}
    print("  token budgets vs the full step (time speedup, FLOPs speedup, MFLOPs a pair):")
    for name, speed in budgets.items():
        print(f"    {name:26s} x{speed:.2f}  x{pair_flops['step_0'] / pair_flops[name]:.2f}"
              f"  {pair_flops[name] / 1e6:.1f}")  # fmt: skip
    result = {
        "tower_fraction_of_ideal": {str(r): round(f, 3) for r, f in fraction.items()},
        "tower_fraction_of_ideal_min": {str(r): round(f, 3) for r, f in fraction_min.items()},
        "tower_speedup": {str(r): round(s, 3) for r, s in speedup.items() if r > 0},
        "tower_ms": {str(r): round(t * 1e3, 2) for r, t in tower.items()},
        "step_speedup_0.75": round(step_speedup, 3),
        "step_speedup_0.75_min": round(step_min["step_0"] / step_min["step_0.75"], 3),
        "step_speedup_0.75_unbucketed": round(plain_speedup, 3),
        "step_speedup_0.75_unbucketed_min": round(plain_min, 3),
        "text_bucketing_step_0.75_gain": round(step["step_0.75_unbucketed"] / step["step_0.75"], 3),
        "text_tokens": padding_stats(model.text, batch["attention_mask"]),
        "step_ms": {k: round(v * 1e3, 2) for k, v in step.items()},
        "step_ms_min": {k: round(v * 1e3, 2) for k, v in step_min.items()},
        "step_0.75_share": shares,
        "mlm_second_pass_overhead": round(step["step_0.75_mlm"] / step["step_0.75"] - 1, 3),
        "mlm_shared_pass_overhead": round(step["step_0.75_mlm_shared"] / step["step_0.75"] - 1, 3),
        "text_share_of_step_0.75": shares["text"],
        "budget_step_speedup": budgets,
        "flops_per_pair": pair_flops,
        "budget_flops_speedup": {
            k: round(pair_flops["step_0"] / pair_flops[k], 3) for k in budgets
        },
        "conditions": {
            "variant": args.variant, "batch": n, "precision": args.precision,
            "device": args.device, "threads": args.threads, "repeats": args.repeats,
            "text_lengths": args.text_lengths,
            "step": "medflip.training.step.train_step", "load_before": load_before,
            "load_after": load_average(),
        },
    }  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
