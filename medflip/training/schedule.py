"""The learning-rate schedule and FLIP's unmasked-tuning phase: one function of progress.

progress p = max(step / optim.max_steps, train_time / optim.time_budget_s), so a run
anneals at whichever budget runs out first. With patch dropping (mask.image_ratio > 0) and
`mask.unmasked_tune_share` s > 0, the run has two phases (FLIP, Li et al. 2023, sec. 3.3):

    p < 1 - s   masked pre-training: linear warmup, cosine from optim.lr to 0 at p = 1 - s
    p >= 1 - s  unmasked tuning: no patch dropping and no MLM/MIM, its own cosine from
                mask.unmasked_tune_lr x optim.lr to 0 at p = 1

The tuning phase restarts at a learning rate that can still move the weights (the tail of
one long cosine, where it used to run, is below 1 % of the peak). Runs without patch
dropping have one phase: the cosine over the whole budget.
"""

from __future__ import annotations

import math

from medflip.config import Config


def progress_fraction(step: int, train_time_s: float, cfg: Config) -> float:
    o = cfg.optim
    p = step / o.max_steps
    if o.time_budget_s > 0:
        p = max(p, train_time_s / o.time_budget_s)
    return min(1.0, p)


def tune_share(cfg: Config) -> float:
    """The share of the budget spent in unmasked tuning (0 without patch dropping)."""
    return cfg.mask.unmasked_tune_share if cfg.mask.image_ratio > 0 else 0.0


def unmasked(step: int, train_time_s: float, cfg: Config) -> bool:
    """True in the unmasked-tuning phase."""
    share = tune_share(cfg)
    return share > 0 and progress_fraction(step, train_time_s, cfg) >= 1 - share


def _cosine(x: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, x))))


def lr_factor(step: int, train_time_s: float, cfg: Config) -> float:
    """Multiplier of optim.lr at this point of the run (see the module docstring)."""
    p, share = progress_fraction(step, train_time_s, cfg), tune_share(cfg)
    if share > 0 and p >= 1 - share:
        return cfg.mask.unmasked_tune_lr * _cosine((p - (1 - share)) / share)
    if step < cfg.optim.warmup_steps:
        return (step + 1) / cfg.optim.warmup_steps
    return _cosine(p / (1 - share))
