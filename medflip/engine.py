"""fit(): one MedFLIP pretraining run. No Ray here: Ray Train workers call this.

AdamW with linear warmup and a cosine decay, gradient clipping, autocast per
`optim.precision`; stops at `optim.max_steps` or after `optim.time_budget_s` seconds of
training (evaluation excluded); evaluates every `eval.every_steps` steps and then calls
`report(metrics, checkpoint_dir)`; stops with status "diverged" on a non-finite loss.

The cosine follows progress = max(step / max_steps, train_time / time_budget), so a
time-budgeted run still anneals to zero at its budget. Only step-limited runs are
bit-for-bit resumable (wall time differs between attempts); a time-limited run resumes at
its checkpoint with the learning rate its elapsed time implies.
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

from medflip import checkpoint
from medflip import progress as progress_text
from medflip.config import Config, to_json
from medflip.run_parts import RunParts, autocast, build_parts, device_name

log = logging.getLogger("medflip.engine")
Report = Callable[[dict, "str | None"], None]


def _identity(x):
    return x


@dataclass
class Hooks:
    """How a caller (Ray Train) plugs distribution in; the defaults are one process."""

    prepare_model: Callable = _identity  # e.g. ray.train.torch.prepare_model (DDP wrap)
    rank: int = 0
    world_size: int = 1


def lr_factor(step: int, train_time_s: float, cfg: Config) -> float:
    """Warmup then cosine to 0 over whichever budget (steps or seconds) runs out first."""
    o = cfg.optim
    if step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    progress = step / o.max_steps
    if o.time_budget_s > 0:
        progress = max(progress, train_time_s / o.time_budget_s)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def image_ratio_at(step: int, progress: checkpoint.Progress, step_time_s: float, cfg) -> float:
    """FLIP: the last `unmasked_tune_steps` steps run unmasked.

    With a time budget the end is estimated from the current pace, counting an unmasked
    step as 1/(1 - r) masked steps (the encoder's cost is linear in kept patches).
    """
    ratio, tune = cfg.mask.image_ratio, cfg.mask.unmasked_tune_steps
    if tune == 0 or ratio == 0:
        return ratio
    if step >= cfg.optim.max_steps - tune:
        return 0.0
    if cfg.optim.time_budget_s > 0 and step_time_s > 0:
        left = cfg.optim.time_budget_s - progress.train_time_s
        if left <= tune * step_time_s / (1 - ratio):
            return 0.0
    return ratio


def _should_stop(progress: checkpoint.Progress, cfg: Config) -> bool:
    if progress.step >= cfg.optim.max_steps:
        return True
    return cfg.optim.time_budget_s > 0 and progress.train_time_s >= cfg.optim.time_budget_s


def _train_step(parts: RunParts, batch: dict, ratio: float, progress) -> dict[str, float]:
    cfg, step = parts.cfg, progress.step
    for group in parts.optimizer.param_groups:
        group["lr"] = cfg.optim.lr * lr_factor(step, progress.train_time_s, cfg)
    batch = {k: v.to(parts.device, non_blocking=True) for k, v in batch.items()}
    text_ratio = cfg.mask.text_ratio if cfg.mask.variant in ("text", "both") else 0.0
    with autocast(parts.device, cfg.optim.precision):
        outputs = parts.model(batch, image_ratio=ratio, text_ratio=text_ratio)
        losses = parts.criterion(outputs, batch)
    loss = losses["loss"]
    if step == cfg.fault.nan_at_step:
        loss = loss * float("nan")
    if not torch.isfinite(loss.detach()):
        return {"loss": float("nan")}
    parts.optimizer.zero_grad(set_to_none=True)
    if parts.scaler is not None:
        parts.scaler.scale(loss).backward()
        parts.scaler.unscale_(parts.optimizer)
    else:
        loss.backward()
    if cfg.optim.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(parts.model.parameters(), cfg.optim.grad_clip)
    if parts.scaler is not None:
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
    else:
        parts.optimizer.step()
    out = {k: v.detach().float().item() for k, v in losses.items()}
    out["temperature"] = float(outputs["temperature"].detach())
    return out


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
        "wall_time_s": progress.wall_time_s + (time.perf_counter() - started),
        "device_hours": progress.train_time_s * parts.world_size / 3600.0,
        "device_type": device_name(parts.device),
        "throughput": meter.samples / meter.train_s if meter.train_s > 0 else float("nan"),
        "data_wait_share": meter.wait_s / meter.train_s if meter.train_s > 0 else float("nan"),
        "status": status,
    }
    for key in ("loss", "loss_contrastive", "loss_svd", "loss_mlm", "loss_mim", "temperature"):
        m[key] = meter.means().get(key, float("nan"))
    m.update(evals)
    return m


def _report(parts, progress, meter, started, status, report, evaluate_now=True) -> dict:
    """Evaluate (rank 0), checkpoint (rank 0) and hand both to `report`."""
    eval_start = time.perf_counter()
    evals = parts.evaluate() if (evaluate_now and parts.rank == 0) else {}
    eval_s = time.perf_counter() - eval_start
    metrics = _metrics(parts, progress, meter, started, status, evals)
    metrics["eval_time_s"] = eval_s
    log.info(_progress_line(metrics, parts.cfg))
    ckpt_dir = None
    if parts.rank == 0 and status != "diverged":
        ckpt_dir = tempfile.mkdtemp(prefix="medflip-ckpt-")
        progress.wall_time_s = metrics["wall_time_s"] - (time.perf_counter() - started)
        checkpoint.save(
            ckpt_dir, parts.unwrapped, parts.optimizer, parts.scaler, progress, to_json(parts.cfg)
        )
    try:
        if report is not None:
            report(metrics, ckpt_dir)
    finally:
        if ckpt_dir:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
    return metrics


def _progress_line(m: dict, cfg: Config) -> str:
    lr = cfg.optim.lr * lr_factor(m["step"], m["train_time_s"], cfg)  # the next step's
    return progress_text.line(m, cfg, lr)


def fit(
    cfg: Config,
    report: Report | None = None,
    resume_from: str | None = None,
    hooks: Hooks | None = None,
) -> dict:
    """Train per `cfg`; returns the final metrics (also the last `report`)."""
    hooks = hooks or Hooks()
    parts = build_parts(cfg, hooks.prepare_model, hooks.rank, hooks.world_size)
    progress = checkpoint.Progress()
    if resume_from:
        progress = checkpoint.load(resume_from, parts.unwrapped, parts.optimizer, parts.scaler)
        log.info("resumed from %s at step %d", resume_from, progress.step)
    started, meter, step_s, status = time.perf_counter(), _Meter(), 0.0, "completed"
    while not _should_stop(progress, cfg) and status == "completed":
        for batch, wait_s in parts.batches(progress.epoch, progress.batch_in_epoch):
            if progress.step == cfg.fault.crash_at_step and not progress.resumed:
                raise RuntimeError(f"fault.crash_at_step: injected crash at step {progress.step}")
            t0 = time.perf_counter()
            ratio = image_ratio_at(progress.step, progress, step_s, cfg)
            losses = _train_step(parts, batch, ratio, progress)
            step_s = time.perf_counter() - t0
            progress.step, progress.batch_in_epoch = progress.step + 1, progress.batch_in_epoch + 1
            progress.samples_seen += cfg.optim.batch_size
            progress.train_time_s += step_s + wait_s
            meter.add(losses, cfg.optim.batch_size, step_s + wait_s, wait_s)
            if not math.isfinite(losses["loss"]):
                status = "diverged"
                log.warning("non-finite loss at step %d: stopping", progress.step)
                break
            if _should_stop(progress, cfg):
                break
            if progress.step % cfg.eval.every_steps == 0:
                _report(parts, progress, meter, started, "running", report)
                meter = _Meter()
        else:
            progress.epoch, progress.batch_in_epoch = progress.epoch + 1, 0
    return _report(
        parts, progress, meter, started, status, report, evaluate_now=status != "diverged"
    )
