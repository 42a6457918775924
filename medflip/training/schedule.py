"""The learning-rate schedule and the run's phases: one function of progress, one clock.

progress p = max(step / optim.max_steps, train_time / optim.time_budget_s, train_flops /
optim.flops_budget) over the budgets that are set, so a run anneals at whichever budget runs
out first, and everything that follows the run's course reads p only: warmup (the first
`optim.warmup_share` of p), the cosine, the tuning phase and the evaluation cadence
(`eval.every_share`, `evaluations_due`). A time-budgeted arm that steps twice as fast
therefore sees the same learning rate and is evaluated at the same points of its budget
as a slow one; a step-budgeted run is scheduled in steps, a FLOPs-budgeted one in FLOPs.
`phase` names where p is (warmup | main | unmasked_tune: a results column).

When training reads less than evaluation (`reduces_inputs`: patch dropping, a text budget
`mask.text_tokens` or a smaller `data.train_image_size`) and `mask.unmasked_tune_share`
s > 0, the run has two phases (FLIP, Li et al. 2023, sec. 3.3; CLIPA's and RECLIP's
full-size fine-tuning):

    p < w       warmup: linear from 0 to optim.lr at p = w (w = optim.warmup_share)
    p < 1 - s   reduced pre-training: cosine from optim.lr to 0 at p = 1 - s
    p >= 1 - s  full-size ("unmasked") tuning: every patch, whole reports, full image size
                (masking.budgets_for), no MLM/MIM; its own cosine from
                mask.unmasked_tune_lr x optim.lr to 0 at p = 1

The tuning phase restarts at a learning rate that can still move the weights (the tail of
one long cosine, where it used to run, is below 1 % of the peak). Runs that read
everything have one phase: the cosine over the whole budget.
"""

from __future__ import annotations

import math

from medflip.config import Config

PHASES = ("warmup", "main", "unmasked_tune")  # the `phase` results column's values


def progress_fraction(step: int, train_time_s: float, cfg: Config, flops: float = 0.0) -> float:
    """p in [0, 1]: the share of the budget spent (the largest over the budgets set)."""
    o = cfg.optim
    p = step / o.max_steps
    if o.time_budget_s > 0:
        p = max(p, train_time_s / o.time_budget_s)
    if o.flops_budget > 0:
        p = max(p, flops / o.flops_budget)
    return min(1.0, p)


def reduces_inputs(cfg: Config) -> bool:
    """Whether training reads less than evaluation: dropped patches, a text budget or a
    training image smaller than data.image_size."""
    smaller = 0 < cfg.data.train_image_size < cfg.data.image_size
    return cfg.mask.image_ratio > 0 or cfg.mask.text_tokens > 0 or smaller


def tune_share(cfg: Config) -> float:
    """The share of the budget spent in full-size tuning (0 when nothing is reduced)."""
    return cfg.mask.unmasked_tune_share if reduces_inputs(cfg) else 0.0


def phase(p: float, cfg: Config) -> str:
    """The phase at progress p (one of PHASES): the one place phases are decided. Warmup
    is part of the reduced (masked) pre-training; the tuning phase reads everything."""
    share = tune_share(cfg)
    if share > 0 and p >= 1 - share:
        return "unmasked_tune"
    return "warmup" if p < min(cfg.optim.warmup_share, 1 - share) else "main"


def unmasked(step: int, train_time_s: float, cfg: Config, flops: float = 0.0) -> bool:
    """True in the unmasked (full-size) tuning phase."""
    return phase(progress_fraction(step, train_time_s, cfg, flops), cfg) == "unmasked_tune"


def _cosine(x: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, x))))


def lr_at(p: float, cfg: Config) -> float:
    """Multiplier of optim.lr at progress p (see the module docstring). Warmup starts at 0
    (p = 0 at the first step of a fresh run: that step only seeds AdamW's moments)."""
    share, warmup = tune_share(cfg), cfg.optim.warmup_share
    where = phase(p, cfg)
    if where == "unmasked_tune":
        return cfg.mask.unmasked_tune_lr * _cosine((p - (1 - share)) / share)
    if where == "warmup":
        return p / warmup
    return _cosine((p - warmup) / (1 - share - warmup)) if warmup < 1 - share else 0.0


def lr_factor(step: int, train_time_s: float, cfg: Config, flops: float = 0.0) -> float:
    """Multiplier of optim.lr after `step` steps, `train_time_s` s and `flops` FLOPs."""
    return lr_at(progress_fraction(step, train_time_s, cfg, flops), cfg)


def evaluations_due(p_before: float, p_now: float, cfg: Config) -> bool:
    """Whether p crossed a multiple of eval.every_share since p_before: a fixed grid of the
    budget (a step past one mark does not push the next later), whatever the step rate."""
    every = cfg.eval.every_share
    return math.floor(p_now / every + 1e-9) > math.floor(p_before / every + 1e-9)
