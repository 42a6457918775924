"""timm-style: one production training step on the tiny variant for every registered
variant and sweep space, so registering one gives it a test.

A variant contributes its objective settings (the `loss.*` and `mask.*` keys) on top of
`tiny`'s sizes (the `paper` model is too large for a test step); a sweep space contributes
its fixed defaults and the first value of each axis.
"""

import math

import pytest
import torch

from medflip import variants
from medflip.config import apply_overrides, flatten
from medflip.sweep import spaces
from medflip.training import engine
from medflip.training.run_parts import build_parts
from medflip.training.step import StepPlan, train_step

OBJECTIVE_GROUPS = ("loss.", "mask.")


def _one_step(sets: dict) -> dict:
    cfg = apply_overrides(variants.get("tiny"), {"optim.batch_size": 4, **sets})
    parts = build_parts(cfg, engine.Hooks())
    batch, _ = next(iter(parts.batches(0, 0)))
    before = [p.detach().clone() for p in parts.unwrapped.parameters()]
    text_ratio = cfg.mask.text_ratio if cfg.mask.variant in ("text", "both") else 0.0
    losses = train_step(
        parts.model, parts.criterion, parts.optimizer, batch,
        StepPlan(lr=1e-3, image_ratio=cfg.mask.image_ratio, text_ratio=text_ratio),
    )  # fmt: skip
    moved = [
        not torch.equal(a, b) for a, b in zip(before, parts.unwrapped.parameters(), strict=True)
    ]
    assert math.isfinite(losses["loss"])
    assert sum(moved) > len(moved) // 2  # both towers and the heads stepped
    return losses


@pytest.mark.parametrize("name", variants.NAMES)
def test_one_training_step_per_variant(name):
    flat = flatten(variants.get(name))
    losses = _one_step({k: v for k, v in flat.items() if k.startswith(OBJECTIVE_GROUPS)})
    if flat["loss.svd_weight"] > 0:
        assert losses["loss_svd"] > 0  # the variant's SVD term really ran


def _first_point(space: spaces.Space) -> dict:
    return {key: axis.extremes()[0] for key, axis in space.axes.items()}


@pytest.mark.parametrize("name", sorted(spaces.SPACES))
def test_one_training_step_per_sweep_space(name):
    space = spaces.get(name)
    sets = {**space.defaults, **_first_point(space)}
    losses = _one_step(sets)
    if sets.get("mask.variant") in ("image", "both"):
        assert losses["loss_mim"] > 0
