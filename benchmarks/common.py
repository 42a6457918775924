"""What the benchmarks share: a random batch, the production model/loss/optimiser/step,
interleaved timing. Imported by masking.py, svd.py and throughput.py *after* argparse, so
that `--help` answers without importing torch, timm and transformers.
"""

from __future__ import annotations

if __name__ == "__main__":  # a helper, not a benchmark: say so instead of printing nothing
    raise SystemExit(
        "benchmarks/common.py is shared code, not a benchmark:"
        " run benchmarks/masking.py, svd.py or throughput.py (--help lists the options)"
    )

import os
import statistics
import time

import torch

from medflip.config import Config
from medflip.device.precision import autocast
from medflip.losses.contrastive import MedFLIPLoss
from medflip.models.medflip import MedFLIP
from medflip.training.run_parts import build_optimizer
from medflip.training.step import StepPlan, train_step

VOCAB, PAD, CLS, SEP, MASK = 2000, 0, 2, 3, 4


def make_batch(cfg: Config, n: int, device: str, text_len: int = 60, seed: int = 0) -> dict:
    """Random batch in the data layer's format; text ~text_len real tokens, rest padding."""
    g = torch.Generator().manual_seed(seed)
    t = cfg.data.max_text_len
    text_len = min(text_len, t - 8)
    lengths = torch.randint(text_len - 8, text_len + 9, (n,), generator=g).clamp(3, t)
    vocab = max(cfg.data.vocab_size, VOCAB)
    ids = torch.randint(5, vocab, (n, t), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    ids = ids * mask
    ids[:, 0] = CLS
    ids[torch.arange(n), lengths - 1] = SEP
    labels = torch.randint(-1, 2, (n, 14), generator=g).float()
    size = cfg.data.image_size
    batch = {
        "image": torch.randn(n, 1, size, size, generator=g),
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "image_labels": labels.clone(),
        "paired": torch.ones(n, dtype=torch.bool),
    }
    return {k: v.to(device) for k, v in batch.items()}


def build(cfg: Config, device: str, shared_text_pass: bool = False):
    """Model, loss and the run's AdamW (run_parts.build_optimizer), as a run builds them."""
    special = (PAD, 1, CLS, SEP, MASK)
    vocab = max(cfg.data.vocab_size, VOCAB)
    model = MedFLIP(cfg, vocab, PAD, MASK, special, shared_text_pass=shared_text_pass)
    model = model.to(device)
    return model, MedFLIPLoss(cfg).to(device), build_optimizer(model, cfg)


def step_fn(parts, batch: dict, cfg: Config, image_ratio: float, text_ratio: float = 0.0):
    """One production training step (medflip.training.step.train_step) as a no-argument callable."""
    model, criterion, optimizer = parts
    plan = StepPlan(lr=cfg.optim.lr, image_ratio=image_ratio, text_ratio=text_ratio)

    def run():
        train_step(
            model, criterion, optimizer, batch, plan,
            precision=cfg.optim.precision, grad_clip=cfg.optim.grad_clip,
        )  # fmt: skip

    return run


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


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


def load_average() -> list[float]:
    """1/5/15-minute load averages (the machine is shared: say how busy it was)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


__all__ = [
    "autocast",
    "build",
    "interleaved",
    "load_average",
    "make_batch",
    "medians",
    "minima",
    "step_fn",
    "timed",
]
