"""One training step, the one every caller runs: the engine, benchmarks/masking.py, the tests.

open_clip's `train_one_epoch` / `training_forward` idea: forward under autocast, the loss,
then backward with the grad scaler, clipping and the optimiser step, in one function. Which
objectives a step trains (the mask ratios) is decided by `medflip.models.masking.ratios_for`; the
learning rate by the engine's schedule. Both arrive here as a `StepPlan`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from medflip.data.text_budget import reduce_batch
from medflip.device.precision import autocast
from medflip.models.image import resize_images

# (finite on this rank, this rank's loss values) -> (finite on every rank, agreed values):
# the engine's per-step agreement collective, called between forward and backward.
Agree = Callable[[bool, dict[str, float]], tuple[bool, dict[str, float]]]


@dataclass(frozen=True)
class StepPlan:
    """What one step trains: its learning rate, mask ratios (image patches, MLM tokens) and
    token budgets (report tokens per `text_policy`, 0 = all; image side, 0 = as loaded)."""

    lr: float
    image_ratio: float
    text_ratio: float = 0.0
    text_tokens: float = 0.0
    text_policy: str = "truncate"
    image_size: int = 0


def reduce_inputs(batch: dict, plan: StepPlan) -> dict:
    """The batch the model reads under `plan`'s budgets: images resized to `image_size`,
    reports cut to `text_tokens` (medflip.data.text_budget; labels stay the whole report's).
    On the batch's device, with torch's RNG (saved in checkpoints)."""
    batch = reduce_batch(batch, plan.text_tokens, plan.text_policy)
    if plan.image_size and "image" in batch:
        batch["image"] = resize_images(batch["image"], plan.image_size)
    return batch


def train_step(
    model: torch.nn.Module,
    criterion: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict,
    plan: StepPlan,
    *,
    precision: str = "fp32",
    grad_clip: float = 0.0,
    scaler: torch.amp.GradScaler | None = None,
    agree: Agree | None = None,
) -> dict[str, float]:
    """Forward, loss, backward and optimiser step on `batch`; returns the loss values.

    `model` (possibly DDP-wrapped MedFLIP) is called as model(batch, image_ratio=,
    text_ratio=); `criterion` (MedFLIPLoss) maps its outputs to {"loss", "loss_*"}. The batch
    is moved to the model's device. A non-finite loss (on any rank, when `agree` is given)
    skips backward and the update and returns {"loss": nan, ...}: the caller stops the run.
    After the update the temperature is clamped (`clamp_temperature_`, CLIP-style: the
    parameter, not the forward pass). Returned values also hold `temperature` (tau).
    """
    device = next(model.parameters()).device
    for group in optimizer.param_groups:
        group["lr"] = plan.lr
    batch = reduce_inputs({k: v.to(device, non_blocking=True) for k, v in batch.items()}, plan)
    with autocast(device, precision):
        outputs = model(batch, image_ratio=plan.image_ratio, text_ratio=plan.text_ratio)
        losses = criterion(outputs, batch)
    # One host sync for every loss value and tau (each float() of a device tensor is one).
    names = [*losses, "temperature"]
    scalars = [v.detach().float().reshape(()) for v in [*losses.values(), outputs["temperature"]]]
    values = dict(zip(names, torch.stack(scalars).tolist(), strict=True))
    tau = values.pop("temperature")
    finite = math.isfinite(values["loss"])
    if agree is not None:
        finite, values = agree(finite, values)
    values["temperature"] = tau
    if not finite:
        return {**values, "loss": float("nan")}
    optimizer.zero_grad(set_to_none=True)
    loss = losses["loss"]
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    unwrapped = getattr(model, "module", model)
    if hasattr(unwrapped, "clamp_temperature_"):
        unwrapped.clamp_temperature_()
    return values


__all__ = ["Agree", "StepPlan", "train_step"]
