"""timm-style: one production training step on the tiny variant for every registered
data source, so registering a layout gives it a test (it must bring a fixture tree)."""

import math

import pytest
import torch
from fixtures_data import make_chexpert, make_class_manifest, make_mimic, make_openi

from medflip import variants
from medflip.config import apply_overrides
from medflip.registry import DATA_SOURCES
from medflip.training import engine
from medflip.training.run_parts import build_parts
from medflip.training.step import StepPlan, train_step

FIXTURES = {  # source -> writes a tree under the path, returns data.root ("" = embedded)
    "synthetic": lambda root: "",
    "mimic-cxr": lambda root: make_mimic(root) and root,
    "chexpert": lambda root: make_chexpert(root) or root,
    "openi": lambda root: make_openi(root) or root,
    "manifest": lambda root: make_class_manifest(root, train_per_class=2, test_per_class=1),
}


@pytest.mark.parametrize("source", sorted(DATA_SOURCES))
def test_one_training_step_per_registered_source(source, tmp_path, medflip_cache):
    if source not in FIXTURES:
        pytest.fail(f"data source {source!r} is registered without a fixture tree here")
    root = FIXTURES[source](str(tmp_path / "data"))
    sets = {"data.source": source, "optim.batch_size": 2, "mask.variant": "both"}
    sets |= {"loss.kind": "medflip", "loss.svd_weight": 0.1, "data.num_train": 64}
    if root:
        sets["data.root"] = root
    cfg = apply_overrides(variants.get("tiny"), sets)
    parts = build_parts(cfg, engine.Hooks())
    batch, _ = next(iter(parts.batches(0, 0)))
    assert batch["image"].shape == (2, 1, cfg.data.image_size, cfg.data.image_size)
    before = [p.detach().clone() for p in parts.unwrapped.parameters()]
    losses = train_step(
        parts.model, parts.criterion, parts.optimizer, batch,
        StepPlan(lr=1e-3, image_ratio=0.5, text_ratio=0.15),
    )  # fmt: skip
    assert math.isfinite(losses["loss"]) and losses["loss_mlm"] > 0 and losses["loss_mim"] > 0
    after = list(parts.unwrapped.parameters())
    moved = [not torch.equal(a, b) for a, b in zip(before, after, strict=True)]
    assert sum(moved) > len(moved) // 2  # image tower, text tower and heads all stepped
