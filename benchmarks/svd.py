"""What the token-level SVD term (eq. 6, `loss.svd_form=pair`) costs, and how exact it is.

1. Share of a demo training step (batch 128, bf16) spent in the SVD term: the term's own
   forward + backward on the step's token outputs, over the whole step with the term on
   (and, noisier, the difference of steps with and without it), interleaved medians.
2. sigma_1 from medflip's factored power iteration vs `torch.linalg.svdvals` on every one
   of the N^2 image-text token-similarity matrices, on the demo model's real token outputs
   (synthetic radiographs, random token ids; freshly initialised towers): relative error
   (median / p99 / max, per number of iterations) and speed (forward, all pairs).

Ends by printing one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from masking import (  # noqa: E402, I001  (benchmarks/masking.py, next to this script)
    autocast,
    build,
    interleaved,
    make_batch,
    medians,
    minima,
    train_step,
)

from medflip import variants  # noqa: E402
from medflip.config import apply_overrides  # noqa: E402
from medflip.losses import svd_pair_loss  # noqa: E402
from medflip.losses_svd import PAIR_ITERS, pair_sigma1  # noqa: E402


def synthetic_images(n: int, size: int) -> torch.Tensor | None:
    """n synthetic radiographs [n, 1, H, W], standardised; None if the data layer is absent."""
    try:
        from medflip.data.synthetic import SyntheticCXR
    except ImportError:
        return None
    data = SyntheticCXR(seed=0, size=n, image_size=size)
    images = torch.stack([torch.as_tensor(data[i]["image"]) for i in range(n)])[:, None]
    return (images - images.mean()) / images.std()


def svdvals_sigma1(a, b, mask) -> torch.Tensor:
    """Reference: form every S_ij [K, T] and take svdvals' largest, same normalisation."""
    a = F.normalize(a.float(), dim=-1)
    b = F.normalize(b.float(), dim=-1) * mask[:, :, None]
    s = torch.linalg.svdvals(torch.einsum("ikd,jtd->ijkt", a, b))[..., 0]
    return s / (a.shape[1] * mask.sum(1).clamp_min(1).float()[None, :]).sqrt()


def accuracy(out: dict, repeats: int, device: str) -> dict:
    """sigma_1 error per iteration count, loss error, and speed vs svdvals."""
    a, b, mask = out["image_tokens"], out["text_tokens"], out["text_token_mask"]
    ref = svdvals_sigma1(a, b, mask)
    errors = {}
    for iters in sorted({0, 1, 2, 3, 4, PAIR_ITERS}):
        err = ((pair_sigma1(a, b, mask, iters) - ref).abs() / ref.clamp_min(1e-12)).flatten()
        errors[iters] = {
            "median": err.median().item(), "p99": err.quantile(0.99).item(),
            "max": err.max().item(),
        }  # fmt: skip
    tau = 0.07
    target = torch.arange(ref.shape[0], device=ref.device)
    ref_loss = (F.cross_entropy(ref / tau, target) + F.cross_entropy(ref.T / tau, target)) / 2
    loss = svd_pair_loss(a, b, mask, tau)
    times = medians(interleaved(
        {"ours": lambda: pair_sigma1(a, b, mask), "svdvals": lambda: svdvals_sigma1(a, b, mask)},
        repeats, device, warmup=1,
    ))  # fmt: skip
    return {
        "errors": errors,
        "loss_rel_error": abs(loss.item() - ref_loss.item()) / ref_loss.item(),
        "speedup": times["svdvals"] / times["ours"],
        "ms": {k: v * 1e3 for k, v in times.items()},
    }


def step_share(cfg, batch, repeats, device, precision, ratio) -> dict:
    """SVD term fwd+bwd time over the training step's time, interleaved medians."""
    with_svd = apply_overrides(cfg, {"loss.svd_weight": 0.1, "loss.svd_form": "pair"})
    model, loss_fn, opt = build(with_svd, device)
    plain = build(apply_overrides(cfg, {"loss.svd_weight": 0.0}), device)
    with torch.no_grad(), autocast(device, precision):
        out = model(batch, ratio)
    leaves = [out[k].detach().requires_grad_() for k in ("image_tokens", "text_tokens")]

    def term():
        with autocast(device, precision):
            loss = svd_pair_loss(*leaves, out["text_token_mask"], out["temperature"])
        loss.backward()

    def step(parts):
        return lambda: train_step(*parts, batch, ratio, 0.0, device, precision)

    runs = interleaved(
        {"term": term, "step_svd": step((model, loss_fn, opt)), "step_plain": step(plain)},
        repeats, device,
    )  # fmt: skip
    times, fastest = medians(runs), minima(runs)
    times["share"] = times["term"] / times["step_svd"]
    times["share_min"] = fastest["term"] / fastest["step_svd"]
    times["share_by_difference"] = 1 - times["step_plain"] / times["step_svd"]
    return times


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="demo")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ratio", type=float, default=0.75, help="image mask ratio of the step")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = variants.get(args.variant)
    n = cfg.optim.batch_size
    batch = make_batch(cfg, n, args.device)
    images = synthetic_images(n, cfg.data.image_size)
    if images is not None:
        batch["image"] = images.to(args.device)

    model = build(apply_overrides(cfg, {"loss.svd_weight": 0.1}), args.device)[0]
    with torch.no_grad():
        out = model(batch, args.ratio)
    acc = accuracy(out, args.repeats, args.device)
    share = step_share(cfg, batch, args.repeats, args.device, args.precision, args.ratio)
    k = out["image_tokens"].shape[1]
    print(f"sigma_1 of {n}x{n} pairs (K={k} image tokens, ~60 text tokens), vs svdvals:")
    for iters, e in acc["errors"].items():
        mark = "  <- default" if iters == PAIR_ITERS else ""
        print(f"  {iters} iters: rel err median {e['median']:.1e} p99 {e['p99']:.1e} "
              f"max {e['max']:.1e}{mark}")  # fmt: skip
    print(f"  loss rel error {acc['loss_rel_error']:.1e}; forward {acc['ms']['ours']:.1f} ms vs "
          f"svdvals {acc['ms']['svdvals']:.1f} ms (x{acc['speedup']:.1f})")  # fmt: skip
    print(f"step at r={args.ratio}: {share['step_svd'] * 1e3:.1f} ms with the term, "
          f"{share['step_plain'] * 1e3:.1f} ms without; term fwd+bwd {share['term'] * 1e3:.1f} ms"
          f" = {share['share']:.1%} of the step")  # fmt: skip
    default = acc["errors"][PAIR_ITERS]
    result = {
        "svd_step_share": round(share["share"], 4),
        "svd_step_share_min": round(share["share_min"], 4),
        "svd_step_share_by_difference": round(share["share_by_difference"], 4),
        "sigma1_rel_error": default["p99"],
        "sigma1_rel_error_median": default["median"],
        "sigma1_rel_error_max": default["max"],
        "sigma1_rel_error_by_iters": {str(i): e for i, e in acc["errors"].items()},
        "svd_loss_rel_error": acc["loss_rel_error"],
        "sigma1_speedup_vs_svdvals": round(acc["speedup"], 2),
        "ms": {**{k: round(v, 2) for k, v in acc["ms"].items()},
               **{k: round(share[k] * 1e3, 2) for k in ("term", "step_svd", "step_plain")}},
        "conditions": {
            "variant": args.variant, "batch": n, "precision": args.precision, "ratio": args.ratio,
            "device": args.device, "threads": args.threads, "repeats": args.repeats,
            "power_iters": PAIR_ITERS, "images": "synthetic" if images is not None else "random",
        },
    }  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
