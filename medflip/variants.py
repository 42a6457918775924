"""Named base configs. `demo` is the CPU-sized embedded default; `medflip` is the paper's
method (RECIPE) at that size; `paper` is the recipe at ViT-B/16 @ 224."""

from __future__ import annotations

from medflip.config import Config, apply_overrides
from medflip.registry import Registry

# The paper's method as one recipe: eq. 1-5 soft targets (loss.kind=medclip), the SVD term
# with beta > 0 (eq. 6), image masking (FLIP patch dropping at 0.5 plus the masked-image
# objective). beta = 0.1 sits inside the svd_weight sweep's range; that sweep picks it.
RECIPE: dict = {
    "loss.kind": "medclip",
    "loss.svd_weight": 0.1,
    "mask.variant": "image",
    "mask.image_ratio": 0.5,
}

# Each variant is a set of overrides over Config() (whose defaults are the demo's).
VARIANTS: Registry[dict] = Registry(
    "variant",
    {
        # A few minutes a run on 2 CPU cores: 64 px, ViT 192x4 patch 8, 2-layer text tower.
        "demo": {},
        # The paper's method (RECIPE) at the demo's size.
        "medflip": dict(RECIPE),
        # The paper's scale: ViT-B/16 at 224 px, a BERT-base-sized text tower, GPU precision.
        "paper": {
            "data.image_size": 224,
            "data.num_train": 200000,
            "data.max_text_len": 128,
            "data.vocab_size": 30522,
            "data.loader_workers": 8,
            "model.image_width": 768,
            "model.image_depth": 12,
            "model.image_heads": 12,
            "model.patch_size": 16,
            "model.text": "scratch-base",
            "model.embed_dim": 512,
            "model.decoder_width": 512,
            "model.decoder_depth": 4,
            **RECIPE,
            "optim.lr": 5e-4,
            "optim.batch_size": 256,
            "optim.warmup_share": 0.05,  # 1,000 of 20,000 steps
            "optim.time_budget_s": 0.0,
            "optim.max_steps": 20000,
            "eval.every_share": 0.05,  # every 1,000 steps
        },
        # Seconds a run: for tests and --smoke-test sweeps. Learns little; exercises everything.
        "tiny": {
            "data.image_size": 32,
            "data.num_train": 512,
            "data.max_text_len": 64,
            "data.loader_workers": 0,
            "data.eval_per_class": 10,
            "model.image_width": 32,
            "model.image_depth": 1,
            "model.image_heads": 2,
            "model.patch_size": 8,
            "model.embed_dim": 16,
            "model.decoder_width": 16,
            "optim.batch_size": 16,
            "optim.warmup_share": 0.1,  # 2 of 20 steps
            "optim.max_steps": 20,
            "optim.time_budget_s": 0.0,
            "eval.every_share": 0.5,  # every 10 steps
            "eval.prompts_per_class": 2,
        },
    },
)

NAMES = tuple(VARIANTS)


def get(name: str) -> Config:
    """The named base config, validated (an unknown name: ConfigError naming the variants)."""
    return apply_overrides(Config(), VARIANTS[name])
