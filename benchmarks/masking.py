"""How much faster FLIP-style patch dropping makes the image tower and the training step.

1. Image tower forward + backward at mask ratios r in {0, .25, .5, .75, .9}, interleaved,
   median of repeats: speedup vs r = 0, and that speedup as a fraction of the ideal
   1 / (1 - r) (encoder cost proportional to visible patches).
2. The production training step (medflip.step.train_step with the run's AdamW, param
   groups, clipping and precision) at r = 0 and 0.75, and at 0.75 with text masking (MLM as
   a second text pass, or sharing the contrastive pass), side by side in one run; and where
   a masked step's time goes: image tower, text tower, loss (each forward + backward) and
   optimiser (clipping + AdamW), the rest being what the step adds around them.

Ends by printing one line of JSON. Random images and token ids (~60 non-pad tokens): the
cost of a step does not depend on the content.
"""

from __future__ import annotations

import json

from cli import step_parser

RATIOS = (0.0, 0.25, 0.5, 0.75, 0.9)
MASKED = 0.75


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
    fns["step_0.75"]()  # gradients exist, so the optimiser part times a real update
    fns.update(breakdown_fns(plain, batch, cfg, device))
    return interleaved(fns, repeats, device)


def where_time_goes(step: dict) -> dict:
    """Share of the masked step per part; `other` = step minus the parts (autocast casts,
    zero_grad, loss-value syncs, the graph joining the towers)."""
    total = step["step_0.75"]
    shares = {k.removeprefix("part_"): v / total for k, v in step.items() if k.startswith("part_")}
    shares["other"] = 1 - sum(shares.values())
    return {k: round(v, 3) for k, v in shares.items()}


def parse(argv=None):
    parser = step_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=0, help="default: optim.batch_size")
    parser.add_argument("--threads", type=int, default=2)
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
    step_runs = step_benchmark(cfg, batch, args.repeats, args.device)
    step, step_min = medians(step_runs), minima(step_runs)
    step_speedup = step["step_0"] / step["step_0.75"]
    shares = where_time_goes(step)
    print(f"production training step ({args.variant}, batch {n}), median (min):")
    for name, sec in step.items():
        print(f"  {name:22s} {sec * 1e3:8.1f} ({step_min[name] * 1e3:.1f}) ms")
    print(f"  step speedup at r=0.75: x{step_speedup:.2f} "
          f"(min: x{step_min['step_0'] / step_min['step_0.75']:.2f})")  # fmt: skip
    print("  masked step by part: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    result = {
        "tower_fraction_of_ideal": {str(r): round(f, 3) for r, f in fraction.items()},
        "tower_fraction_of_ideal_min": {str(r): round(f, 3) for r, f in fraction_min.items()},
        "tower_speedup": {str(r): round(s, 3) for r, s in speedup.items() if r > 0},
        "tower_ms": {str(r): round(t * 1e3, 2) for r, t in tower.items()},
        "step_speedup_0.75": round(step_speedup, 3),
        "step_speedup_0.75_min": round(step_min["step_0"] / step_min["step_0.75"], 3),
        "step_ms": {k: round(v * 1e3, 2) for k, v in step.items()},
        "step_ms_min": {k: round(v * 1e3, 2) for k, v in step_min.items()},
        "step_0.75_share": shares,
        "mlm_second_pass_overhead": round(step["step_0.75_mlm"] / step["step_0.75"] - 1, 3),
        "mlm_shared_pass_overhead": round(step["step_0.75_mlm_shared"] / step["step_0.75"] - 1, 3),
        "text_share_of_step_0.75": shares["text"],
        "conditions": {
            "variant": args.variant, "batch": n, "precision": args.precision,
            "device": args.device, "threads": args.threads, "repeats": args.repeats,
            "step": "medflip.step.train_step", "load_before": load_before,
            "load_after": load_average(),
        },
    }  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
