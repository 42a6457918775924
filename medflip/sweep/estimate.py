"""What a sweep will cost, before it starts: wall time and device-hours from its budgets.

One trial's wall time = training + evaluation + start-up:

- training: `optim.time_budget_s` when set, else (or when sooner) `optim.max_steps` steps
  of the model's training FLOPs (models/flops.py) at a per-device rate, or
  `optim.flops_budget` at that rate;
- evaluation: EVAL_SHARE of the training time;
- start-up: STARTUP_S (Ray Train's worker group, the corpus, tokenizer and model built).

Trials then fill the sweep's concurrent slots in order (each takes the first free one),
plus RAY_START_S once. Device-hours count each trial's whole wall time on each of its
workers (what the cluster is held for; the results' `device_hours` counts training only).

The constants are the README's measured figures (`make demo` on an AVX2-only 2-core EPYC:
6 trials of 280 training seconds, two at a time, 1 core each; wall 1,107 s for 855 s of
training per slot; evaluation ~9 % of training; ~60-100 steps of 0.08-0.13 TFLOP per
trial); the GPU rate is an assumption, not a measurement. They set the order of magnitude
(is this an hour or a week?), not a schedule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EVAL_SHARE = 0.09  # the demo's evaluations: ~9 % of its training time (README)
# (1,107 s wall - 855 s training - 3 x 25 s evaluation) per 3 trials of a slot, less Ray's start
STARTUP_S = 50.0
RAY_START_S = 20.0
# ~80 demo steps x ~0.1 TFLOP in 280 s on one core (README: 60-100 steps a trial)
CPU_GFLOPS_PER_CORE = 30.0
# Assumed, not measured here: ~25 % of an H100's dense bf16 peak (989 TFLOP/s).
GPU_TFLOPS = 250.0
# A plan that needs more wall time than this gets a warning line.
WARN_WALL_S = 24 * 3600.0


@dataclass(frozen=True)
class Estimate:
    trial_s: tuple[float, ...]  # each trial's wall time, in launch order
    train_s: float  # one trial's training time (the longest)
    step_s: float | None  # one step's estimated time, where steps end training (else None)
    concurrency: int
    devices_per_trial: float
    wall_s: float
    device_hours: float
    per_device: str  # what "device" means here: "GPU" or "CPU core"


def step_seconds(cfg, cpus: float, gpus: float, workers: int) -> float | None:
    """One optimiser step's estimated time for `cfg` on one trial's workers (None: the
    FLOPs are not counted for this model, e.g. a pretrained text tower)."""
    from medflip.models import flops  # torch: only when a plan is costed

    try:
        per_pair = flops.train_flops_per_pair(cfg, cfg.mask.image_ratio, cfg.data.max_text_len)
    except ValueError:
        return None
    rate = GPU_TFLOPS * 1e12 * gpus if gpus > 0 else CPU_GFLOPS_PER_CORE * 1e9 * cpus
    return per_pair * cfg.optim.batch_size / (rate * workers)


def trial_seconds(cfg, step_s: float | None) -> tuple[float, float]:
    """(training, whole wall time) of one trial; training is inf when unknown."""
    budget = cfg.optim.time_budget_s if cfg.optim.time_budget_s > 0 else math.inf
    by_steps = cfg.optim.max_steps * step_s if step_s is not None else math.inf
    by_flops = math.inf
    if cfg.optim.flops_budget > 0 and step_s is not None:  # the FLOPs budget at the rate
        from medflip.models import flops

        ratio, length = cfg.mask.image_ratio, cfg.data.max_text_len
        per_step = flops.train_flops_per_pair(cfg, ratio, length) * cfg.optim.batch_size
        by_flops = cfg.optim.flops_budget / per_step * step_s
    train = min(budget, by_steps, by_flops)
    return train, train * (1 + EVAL_SHARE) + STARTUP_S


def schedule(trial_s: list[float], slots: int) -> float:
    """Wall time of trials started in order on `slots` concurrent places."""
    free_at = [0.0] * max(1, slots)
    for s in trial_s:
        free_at.sort()
        free_at[0] += s
    return max(free_at) + RAY_START_S


def estimate(configs: list, res, concurrency: int) -> Estimate:
    """The cost of running `configs` (one Config per trial) with resources `res`
    (cluster.Resources) `concurrency` at a time."""
    gpus = res.gpus_per_worker
    steps = [step_seconds(c, res.cpus_per_worker, gpus, res.num_workers) for c in configs]
    times = [trial_seconds(c, s) for c, s in zip(configs, steps, strict=True)]
    per_device = "GPU" if gpus > 0 else "CPU core"
    devices = res.num_workers * (gpus if gpus > 0 else res.cpus_per_worker)
    walls = [w for _, w in times]
    # the steps' time is shown only where the steps, not the time budget, end training
    known = [
        s
        for c, s, (t, _) in zip(configs, steps, times, strict=True)
        if s is not None and (c.optim.time_budget_s <= 0 or t < c.optim.time_budget_s)
    ]
    return Estimate(
        trial_s=tuple(walls),
        train_s=max(t for t, _ in times),
        step_s=max(known) if known else None,
        concurrency=concurrency,
        devices_per_trial=devices,
        wall_s=schedule(walls, concurrency),
        device_hours=sum(walls) * devices / 3600.0,
        per_device=per_device,
    )


def duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3.4 h`, `2.1 days`: the order of magnitude, readable."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def describe(e: Estimate) -> list[str]:
    """The estimate line (and a warning line when the plan will not fit a day)."""
    if math.isinf(e.train_s):
        return [
            "estimate   unknown: no optim.time_budget_s, and the steps of this model are not "
            "costed (models/flops.py counts scratch text towers only)"
        ]
    train = f"{duration(e.train_s)} training"
    if e.step_s is not None:
        train += f" (~{e.step_s:.2g} s/step)"
    line = (
        f"estimate   ~{duration(e.wall_s)} wall, ~{e.device_hours:,.1f} {e.per_device}-hours: "
        f"{len(e.trial_s)} trial(s) x ({train} + {EVAL_SHARE:.0%} evaluation + "
        f"{STARTUP_S:.0f} s start-up), {e.concurrency} at a time "
        "(README's measured demo figures; order of magnitude only)"
    )
    lines = [line]
    if e.wall_s > WARN_WALL_S:
        where = "CPU-only workers" if e.per_device == "CPU core" else "these workers"
        lines.append(
            f"warning: this plan needs ~{duration(e.wall_s)} on {where}; shorten "
            "optim.time_budget_s / optim.max_steps, run fewer trials or seeds, a smaller "
            "--variant, or more or larger devices"
        )
    return lines


def plan_lines(plan, res, concurrency: int) -> list[str]:
    """`describe` for a sweep's plan: every trial's config (grid points, or the shared one
    of a search) with `res` per trial, `concurrency` at a time."""
    from medflip import variants
    from medflip.config import apply_overrides
    from medflip.sweep.plan import trial_points

    base = variants.get(plan.variant)
    points = trial_points(plan) if plan.space.kind == "grid" else [{}] * plan.num_trials
    configs = [apply_overrides(base, {**plan.fixed, **p}) for p in points]
    return describe(estimate(configs, res, concurrency))
