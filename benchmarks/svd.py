"""What the token-level SVD term (eq. 6, `loss.svd_form=pair`) costs, and how exact it is.

1. Share of a demo training step (batch 128, optim.precision auto, r = 0.75) spent in the
   SVD term, on the production step: 1 - (step without the term) / (step with it), both
   whole `train_step`s, interleaved, medians (and from the fastest runs). The term's own
   forward + backward on fixed token outputs is reported beside it, as a cross-check only.
   The power steps / exactly solved pairs of the term on the trained model's tokens after
   the timed steps are recorded too.
2. sigma_1 from medflip.losses.spectral vs `torch.linalg.svdvals` on every one of the N^2
   image-text token-similarity matrices, for two kinds of token sets: the demo model's
   real token outputs (synthetic radiographs, random token ids, freshly initialised towers:
   the tokens share a dominant direction) and near-isotropic random unit tokens of the same
   shapes (sigma_2 close to sigma_1: power iteration's hard case, solved exactly pair by
   pair). Relative error median / p99 / max, power steps taken, pairs solved exactly, and
   forward + backward time per kind.

Ends by printing one line of JSON.
"""

from __future__ import annotations

import json

from cli import step_parser


def synthetic_images(n: int, size: int):
    """n synthetic radiographs [n, 1, H, W], standardised; None if the data layer is absent."""
    import torch

    try:
        from medflip.data.synthetic import SyntheticCXR
    except ImportError:
        return None
    data = SyntheticCXR(seed=0, size=n, image_size=size)
    images = torch.stack([torch.as_tensor(data[i]["image"]) for i in range(n)])[:, None]
    return (images - images.mean()) / images.std()


def unit_tokens(a, b, mask):
    """The term's inputs: L2-normalised tokens, excluded text tokens zeroed."""
    import torch.nn.functional as F

    return F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1) * mask[:, :, None]


def isotropic_like(a, b, mask, seed: int = 1):
    """Random unit tokens with the shapes (and text mask) of a real batch."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randn(a.shape, generator=g), torch.randn(b.shape, generator=g), mask


def accuracy(a, b, mask, repeats: int, device: str) -> dict:
    """sigma_1 error vs svdvals on all pairs, steps taken, forward + backward time."""
    import torch
    from common import interleaved, medians

    from medflip.losses import spectral

    a, b = unit_tokens(a, b, mask)
    ref = torch.linalg.svdvals(torch.einsum("ikd,jtd->ijkt", a, b))[..., 0]  # [N, N]
    info: dict = {}
    ours = spectral.pair_top_sigma(a, b, mask, info=info)
    err = ((ours - ref).abs() / ref.clamp_min(1e-12)).flatten()
    leaves = [x.clone().requires_grad_() for x in (a, b)]

    def fwd_bwd():
        spectral.pair_top_sigma(*leaves, mask).sum().backward()

    times = medians(interleaved({"term": fwd_bwd}, repeats, device, warmup=1))
    return {
        "median": err.median().item(), "p99": err.quantile(0.99).item(),
        "max": err.max().item(), **info, "sigma_fwd_bwd_ms": times["term"] * 1e3,
        "sampled_max": spectral.sampled_rel_error(a, b, ours).item(),
    }  # fmt: skip


def step_share(cfg, batch, repeats, device, ratio) -> dict:
    """1 - step without / step with the SVD term (production steps, interleaved medians);
    the term alone on fixed tokens beside it."""
    import torch
    from common import autocast, build, interleaved, medians, minima, step_fn

    from medflip.config import apply_overrides
    from medflip.losses.contrastive import svd_pair_loss

    with_svd = apply_overrides(cfg, {"loss.svd_weight": 0.1, "loss.svd_form": "pair"})
    parts = build(with_svd, device)
    plain_cfg = apply_overrides(cfg, {"loss.svd_weight": 0.0})
    plain = build(plain_cfg, device)
    with torch.no_grad(), autocast(device, cfg.optim.precision):
        out = parts[0](batch, image_ratio=ratio)
    leaves = [out[k].detach().requires_grad_() for k in ("image_tokens", "text_tokens")]

    def term():
        with autocast(device, cfg.optim.precision):
            loss, _ = svd_pair_loss(  # as the criterion runs it: with the error metric
                *leaves, out["text_token_mask"], out["temperature"], with_error=True
            )
        loss.backward()

    fns = {
        "term": term,
        "step_svd": step_fn(parts, batch, with_svd, ratio),
        "step_plain": step_fn(plain, batch, plain_cfg, ratio),
    }
    runs = interleaved(fns, repeats, device)
    times, fastest = medians(runs), minima(runs)
    times["share"] = 1 - times["step_plain"] / times["step_svd"]
    times["share_min"] = 1 - fastest["step_plain"] / fastest["step_svd"]
    times["share_term_alone"] = times["term"] / times["step_svd"]
    times["trained"] = trained_token_info(parts[0], batch, device, cfg, ratio)
    return times


def trained_token_info(model, batch, device, cfg, ratio) -> dict:
    """Power steps / exactly solved pairs of the term on the model's tokens after the timed
    steps trained it (the production step's own cost drivers)."""
    import torch
    from common import autocast

    from medflip.losses import spectral

    with torch.no_grad(), autocast(device, cfg.optim.precision):
        out = model(batch, image_ratio=ratio)
    a, b = unit_tokens(out["image_tokens"], out["text_tokens"], out["text_token_mask"])
    info: dict = {}
    spectral.pair_top_sigma(a, b, out["text_token_mask"], info=info)
    return info


def parse(argv=None):
    parser = step_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--ratio", type=float, default=0.75, help="image mask ratio of the step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--step-repeats", type=int, default=15,
        help="interleaved step pairs for the share (a difference of two ~1 s steps: noisy)",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)  # before the heavy imports: --help answers at once
    import torch
    from common import build, load_average, make_batch

    from medflip import variants
    from medflip.config import apply_overrides
    from medflip.losses import spectral

    load_before = load_average()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = apply_overrides(variants.get(args.variant), {"optim.precision": args.precision})
    n = cfg.optim.batch_size
    batch = make_batch(cfg, n, args.device)
    images = synthetic_images(n, cfg.data.image_size)
    if images is not None:
        batch["image"] = images.to(args.device)

    model = build(apply_overrides(cfg, {"loss.svd_weight": 0.1}), args.device)[0]
    with torch.no_grad():
        out = model(batch, args.ratio)
    real = (out["image_tokens"], out["text_tokens"], out["text_token_mask"])
    kinds = {"model_tokens": real, "isotropic_tokens": isotropic_like(*real)}
    acc = {name: accuracy(*toks, args.repeats, args.device) for name, toks in kinds.items()}
    share = step_share(cfg, batch, args.step_repeats, args.device, args.ratio)
    k, t = out["image_tokens"].shape[1], out["text_tokens"].shape[1]
    print(f"sigma_1 of {n}x{n} pairs (K={k} image tokens, T'={t} text columns) vs svdvals:")
    for name, e in acc.items():
        print(f"  {name:17s} rel err median {e['median']:.1e} p99 {e['p99']:.1e} "
              f"max {e['max']:.1e} after {e['steps']} steps, {e['exact_pairs']} pairs exact; "
              f"fwd+bwd {e['sigma_fwd_bwd_ms']:.1f} ms")  # fmt: skip
    print(f"step at r={args.ratio}: {share['step_svd'] * 1e3:.1f} ms with the term, "
          f"{share['step_plain'] * 1e3:.1f} ms without: the term is {share['share']:.1%} of the "
          f"step (fastest runs {share['share_min']:.1%}; term alone {share['term'] * 1e3:.1f} ms"
          f" = {share['share_term_alone']:.1%})")  # fmt: skip
    result = {
        "svd_step_share": round(share["share"], 4),
        "svd_step_share_min": round(share["share_min"], 4),
        "svd_step_share_term_alone": round(share["share_term_alone"], 4),
        "trained_tokens": share["trained"],
        "sigma1_rel_error": {name: {k: v for k, v in e.items() if k != "sigma_fwd_bwd_ms"}
                             for name, e in acc.items()},
        "sigma1_fwd_bwd_ms": {name: round(e["sigma_fwd_bwd_ms"], 2) for name, e in acc.items()},
        "ms": {k: round(share[k] * 1e3, 2) for k in ("term", "step_svd", "step_plain")},
        "conditions": {
            "variant": args.variant, "batch": n, "precision": args.precision, "ratio": args.ratio,
            "device": args.device, "threads": args.threads, "repeats": args.repeats,
            "step_repeats": args.step_repeats,
            "tol": spectral.PAIR_TOL, "max_iters": spectral.PAIR_MAX_ITERS,
            "images": "synthetic" if images is not None else "random",
            "load_before": load_before, "load_after": load_average(),
        },
    }  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
