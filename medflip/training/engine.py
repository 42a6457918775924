"""fit(): one MedFLIP pretraining run. No Ray here: Ray Train workers call this.

AdamW with linear warmup and a cosine decay, gradient clipping, autocast per
`optim.precision`; stops at `optim.max_steps`, after `optim.time_budget_s` seconds of
training (evaluation excluded) or `optim.flops_budget` training FLOPs (models/flops.py,
counted per step over every rank); evaluates at shares of the budget (`_Cadence`; curve
points may be cheap, the last evaluation is full) and then calls
`report(metrics, checkpoint_dir)`; stops with status "diverged" on a non-finite loss.

The schedule (medflip/training/schedule.py) is one function of progress = the share of the
budget spent, so a time-budgeted run warms up, anneals to zero and is evaluated on its own
clock whatever its step rate, and ends with FLIP's unmasked-tuning phase when patches are
dropped; every report records its `lr`, `phase`, `budget_share` and `train_flops`. Only
step-limited runs are bit-for-bit resumable (wall time differs between attempts); a
time-limited run resumes at its checkpoint with the learning rate its elapsed time implies.

With several workers every decision that reads a clock (stop, learning rate, unmasked
tuning, evaluation) uses rank 0's training clock, and "the loss is finite" must hold on
every rank: both are agreed in one all-reduce per step (`_Agreement`), between forward and
backward, so all ranks take the same branch at the same step and no collective waits on a
rank that has left.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from medflip.config import Config, to_json
from medflip.data.text_budget import kept_lengths
from medflip.device import distributed
from medflip.device.precision import resolve_precision
from medflip.models.flops import step_flops
from medflip.models.masking import budgets_for, ratios_for
from medflip.models.text_buckets import row_lengths
from medflip.training import checkpoint
from medflip.training import progress as progress_text
from medflip.training.run_parts import build_parts, device_name, rank_seed
from medflip.training.schedule import evaluations_due, lr_at, phase, progress_fraction
from medflip.training.step import StepPlan, train_step

log = logging.getLogger("medflip.training.engine")
Report = Callable[[dict, "str | None"], None]


def _identity(x):
    return x


def _no_fault(step: int, batch: dict) -> dict:
    return batch


@dataclass
class Hooks:
    """How a caller (Ray Train, a test) plugs in; the defaults are one plain process.

    `before_step(step, batch) -> batch` runs before each step: the seam for fault injection
    (raise to crash, or return a poisoned batch for a non-finite loss) -- tests and the
    sweep's drills use it; it is not part of the config. `tokenizer_file` / `tokenizer_hash`:
    the experiment's shared tokenizer (see medflip.data.tokenizer.experiment_tokenizer).
    """

    prepare_model: Callable = _identity  # e.g. ray.train.torch.prepare_model (DDP wrap)
    rank: int = 0
    world_size: int = 1
    before_step: Callable[[int, dict], dict] = _no_fault
    tokenizer_file: str = ""
    tokenizer_hash: str = ""


def _should_stop(progress: checkpoint.Progress, cfg: Config) -> bool:
    if progress.step >= cfg.optim.max_steps:
        return True
    if cfg.optim.flops_budget > 0 and progress.train_flops >= cfg.optim.flops_budget:
        return True
    return cfg.optim.time_budget_s > 0 and progress.train_time_s >= cfg.optim.time_budget_s


def _share(progress: checkpoint.Progress, cfg: Config) -> float:
    """The share of the budget spent (schedule.progress_fraction of the agreed counters)."""
    return progress_fraction(progress.step, progress.train_time_s, cfg, progress.train_flops)


def _step_flops(batch: dict, plan: StepPlan, cfg: Config) -> float:
    """This rank's training FLOPs of `batch` under `plan` (kept patches, kept tokens);
    NaN for a pretrained text tower (counted for scratch-<size> only)."""
    if not cfg.model.text.startswith("scratch-"):
        return math.nan
    lengths = torch.tensor(row_lengths(batch["attention_mask"]))  # [B] real tokens per row
    kept = kept_lengths(lengths, plan.text_tokens).tolist()
    images = int(batch["image"].shape[0])  # text-only rows carry no image
    return float(step_flops(cfg, plan.image_ratio, images, kept, plan.image_size))


class _Agreement:
    """Rank 0's clock and "finite on every rank", agreed by one all-reduce per step.

    Rank 0 measures training time (`own_s`, evaluation excluded); every rank adopts its
    value. Mid-interval the agreed clock lags rank 0's by the last step's backward (the
    agreement runs before backward); `sync` makes it exact at reports.
    """

    def __init__(self, device: torch.device, world_size: int, train_time_s: float):
        self.device, self.world_size = device, world_size
        self.own_s = train_time_s  # this rank's measured training time (rank 0's counts)

    def for_step(self, progress: checkpoint.Progress, t0: float, wait_s: float, flops: float):
        """The `agree` callback of one train_step; `flops`: this rank's step FLOPs (summed)."""

        def agree(finite: bool, values: dict[str, float]) -> tuple[bool, dict[str, float]]:
            keys = sorted(values)  # the same keys on every rank (same config)
            now = self.own_s + wait_s + (time.perf_counter() - t0)
            flag = 0.0 if finite else 1.0
            summed = [flag, flops, *(values[k] for k in keys)]
            out = distributed.agree([now], summed, self.device)
            progress.train_time_s = out[0]
            progress.train_flops += out[2]
            # Contrastive/SVD parts are already global; MLM/MIM become the mean over ranks.
            agreed = {k: v / self.world_size for k, v in zip(keys, out[3:], strict=True)}
            return out[1] == 0, agreed

        return agree

    def finished_step(self, step_s: float, wait_s: float) -> None:
        self.own_s += step_s + wait_s

    def sync(self, progress: checkpoint.Progress) -> None:
        progress.train_time_s = distributed.agree([self.own_s], [], self.device)[0]


def _plan(progress: checkpoint.Progress, cfg: Config) -> StepPlan:
    """This step's learning rate, mask ratios and token budgets, from the agreed progress
    (schedule.py decides the phase; full-size tuning reads everything)."""
    p = _share(progress, cfg)
    tuning = phase(p, cfg) == "unmasked_tune"
    image_ratio, text_ratio = ratios_for(cfg, unmasked=tuning)
    text_tokens, image_size = budgets_for(cfg, full_size=tuning)
    lr = cfg.optim.lr * lr_at(p, cfg)
    return StepPlan(
        lr=lr, image_ratio=image_ratio, text_ratio=text_ratio, text_tokens=text_tokens,
        text_policy=cfg.mask.text_policy, image_size=image_size,
    )  # fmt: skip


class _Meter:
    """Accumulates the interval between evaluations: losses, samples, time, data wait."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.steps = self.samples = 0
        self.train_s = self.wait_s = 0.0

    def add(self, losses: dict, samples: int, step_s: float, wait_s: float):
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.steps, self.samples = self.steps + 1, self.samples + samples
        self.train_s, self.wait_s = self.train_s + step_s, self.wait_s + wait_s

    def means(self) -> dict[str, float]:
        return {k: v / max(1, self.steps) for k, v in self.sums.items()}


def _metrics(parts, progress, meter, started, status, evals) -> dict:
    m = {
        "step": progress.step,
        "samples_seen": progress.samples_seen,
        "train_time_s": progress.train_time_s,
        "train_flops": progress.train_flops,
        # where the schedule is at this report (what the next step would run under)
        "budget_share": _share(progress, parts.cfg),
        "lr": parts.cfg.optim.lr * lr_at(_share(progress, parts.cfg), parts.cfg),
        "phase": phase(_share(progress, parts.cfg), parts.cfg),
        "wall_time_s": progress.wall_time_s + (time.perf_counter() - started),
        "device_hours": progress.train_time_s * parts.world_size / 3600.0,
        "device_type": device_name(parts.device),
        "precision": resolve_precision(parts.cfg.optim.precision, parts.device),  # auto: what ran
        "throughput": meter.samples / meter.train_s if meter.train_s > 0 else float("nan"),
        "data_wait_share": meter.wait_s / meter.train_s if meter.train_s > 0 else float("nan"),
        "status": status,
    }
    for key in ("loss", "loss_contrastive", "loss_svd", "loss_mlm", "loss_mim", "temperature"):
        m[key] = meter.means().get(key, float("nan"))
    if "svd_sigma_rel_err" in meter.sums:  # pair SVD term on: sigma_1's sampled error
        m["svd_sigma_rel_err"] = meter.means()["svd_sigma_rel_err"]
    m.update(evals)
    return m


def _report(parts, progress, meter, started, status, report, agreement) -> dict:
    """Evaluate (rank 0), checkpoint (rank 0, every rank's RNG) and hand both to `report`.

    Called on every rank at the same step (the decision reads agreed progress): the clock
    sync and the RNG gather are collectives.
    """
    agreement.sync(progress)
    rng = distributed.gather_objects(checkpoint.rng_state())  # [world], rank order
    eval_start = time.perf_counter()
    evaluate_now = status != "diverged" and parts.rank == 0
    # Curve points may be cheap (eval.curve_items); the run's last evaluation is always full.
    full = status != "running" or parts.cfg.eval.curve_items == 0
    evals = parts.evaluate(full=full) if evaluate_now else {}
    eval_s = time.perf_counter() - eval_start
    metrics = _metrics(parts, progress, meter, started, status, evals)
    metrics["eval_time_s"] = eval_s
    log.info(_progress_line(metrics, parts.cfg))
    ckpt_dir = None
    if parts.rank == 0 and status != "diverged":
        ckpt_dir = tempfile.mkdtemp(prefix="medflip-ckpt-")
        progress.wall_time_s = metrics["wall_time_s"] - (time.perf_counter() - started)
        checkpoint.save(
            ckpt_dir,
            parts.unwrapped,
            parts.optimizer,
            parts.scaler,
            progress,
            to_json(parts.cfg),
            rng=rng,
            tokenizer_hash=parts.tokenizer_hash,
        )
    try:
        if report is not None:
            report(metrics, ckpt_dir)
    finally:
        if ckpt_dir:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
    return metrics


class _Cadence:
    """When to evaluate: at each multiple of `eval.every_share` of the budget (on the
    budget's own clock: schedule.evaluations_due), and with `eval.before_tuning` once as
    FLIP's unmasked tuning is about to start (the curve then shows the accuracy before
    tuning beside the final one, after it). Reads agreed progress only, so every rank
    decides alike."""

    def __init__(self, progress: checkpoint.Progress, cfg: Config):
        self.cfg = cfg
        self.mark(progress)

    def mark(self, progress: checkpoint.Progress) -> None:
        self.p = _share(progress, self.cfg)
        # not watching for the phase change = as if already in it
        watch = self.cfg.eval.before_tuning
        self.tuning = not watch or phase(self.p, self.cfg) == "unmasked_tune"

    def due(self, progress: checkpoint.Progress) -> bool:
        p = _share(progress, self.cfg)
        if not self.tuning and phase(p, self.cfg) == "unmasked_tune":
            return True  # the next step is the first unmasked one
        return evaluations_due(self.p, p, self.cfg)


def _progress_line(m: dict, cfg: Config) -> str:
    return progress_text.line(m, cfg, m["lr"])  # the next step's


def fit(
    cfg: Config,
    report: Report | None = None,
    resume_from: str | None = None,
    hooks: Hooks | None = None,
) -> dict:
    """Train per `cfg`; returns the final metrics (also the last `report`)."""
    hooks = hooks or Hooks()
    parts = build_parts(cfg, hooks)
    progress = checkpoint.Progress()
    if resume_from:
        progress = checkpoint.load(
            resume_from,
            parts.unwrapped,
            parts.optimizer,
            parts.scaler,
            parts.rank,
            parts.tokenizer_hash,
            rank_seed=rank_seed(cfg.seed, parts.rank),
        )
        log.info("resumed from %s at step %d", resume_from, progress.step)
    agreement = _Agreement(parts.device, parts.world_size, progress.train_time_s)
    started, meter, status = time.perf_counter(), _Meter(), "completed"
    cadence = _Cadence(progress, cfg)
    while not _should_stop(progress, cfg) and status == "completed":
        for batch, wait_s in parts.batches(progress.epoch, progress.batch_in_epoch):
            batch = hooks.before_step(progress.step, batch)
            t0 = time.perf_counter()
            plan = _plan(progress, cfg)
            flops = _step_flops(batch, plan, cfg)
            losses = train_step(
                parts.model, parts.criterion, parts.optimizer, batch, plan,
                precision=cfg.optim.precision, grad_clip=cfg.optim.grad_clip,
                scaler=parts.scaler, agree=agreement.for_step(progress, t0, wait_s, flops),
            )  # fmt: skip
            step_s = time.perf_counter() - t0
            agreement.finished_step(step_s, wait_s)
            progress.step, progress.batch_in_epoch = progress.step + 1, progress.batch_in_epoch + 1
            progress.samples_seen += cfg.optim.batch_size
            meter.add(losses, cfg.optim.batch_size, step_s + wait_s, wait_s)
            if not math.isfinite(losses["loss"]):
                status = "diverged"  # on every rank at once: the flag was agreed
                log.warning("non-finite loss at step %d: stopping", progress.step)
                break
            if _should_stop(progress, cfg):
                break
            if cadence.due(progress):
                _report(parts, progress, meter, started, "running", report, agreement)
                meter = _Meter()
                cadence.mark(progress)
        else:
            progress.epoch, progress.batch_in_epoch = progress.epoch + 1, 0
    return _report(parts, progress, meter, started, status, report, agreement)
