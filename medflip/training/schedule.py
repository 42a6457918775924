"""The learning-rate schedule and FLIP's unmasked-tuning phase: one function of progress.

progress p = max(step / optim.max_steps, train_time / optim.time_budget_s), so a run
anneals at whichever budget runs out first. When training reads less than evaluation
(`reduces_inputs`: patch dropping, a text budget `mask.text_tokens` or a smaller
`data.train_image_size`) and `mask.unmasked_tune_share` s > 0, the run has two phases
(FLIP, Li et al. 2023, sec. 3.3; CLIPA's and RECLIP's full-size fine-tuning):

    p < 1 - s   reduced pre-training: linear warmup, cosine from optim.lr to 0 at p = 1 - s
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


def progress_fraction(step: int, train_time_s: float, cfg: Config) -> float:
    o = cfg.optim
    p = step / o.max_steps
    if o.time_budget_s > 0:
        p = max(p, train_time_s / o.time_budget_s)
    return min(1.0, p)


def reduces_inputs(cfg: Config) -> bool:
    """Whether training reads less than evaluation: dropped patches, a text budget or a
    training image smaller than data.image_size."""
    smaller = 0 < cfg.data.train_image_size < cfg.data.image_size
    return cfg.mask.image_ratio > 0 or cfg.mask.text_tokens > 0 or smaller


def tune_share(cfg: Config) -> float:
    """The share of the budget spent in full-size tuning (0 when nothing is reduced)."""
    return cfg.mask.unmasked_tune_share if reduces_inputs(cfg) else 0.0




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
