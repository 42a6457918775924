"""`python -m medflip.config [--variant NAME]`: every config key, its default, range, meaning.

The allowed values are the ones `apply_overrides` enforces (read from config.py); a test
checks every key has a meaning here, so a new key cannot be added without one.
"""

from __future__ import annotations

import argparse

from medflip import config, variants

# What each key means (config.py's comments say why its default is what it is).
MEANING: dict[str, str] = {
    "data.source": "where pretraining pairs come from (dataset layout)",
    "data.root": "dataset root directory (real sources only)",
    "data.image_size": "square image side in pixels, for training and evaluation",
    "data.train_image_size": "training image side before full-size tuning (0 = data.image_size)",
    "data.num_train": "synthetic training studies rendered",
    "data.fraction": "share of the training pairs used (data-efficiency sweep)",
    "data.paired": "share of pairs kept paired; the rest are used as unpaired images/texts",
    "data.max_text_len": "report tokens kept per study",
    "data.tokenizer": "'' = WordPiece trained on the corpus (cached); else a local tokenizer",
    "data.vocab_size": "vocabulary size of the corpus-trained tokenizer",
    "data.loader_workers": "DataLoader worker processes",
    "data.eval_per_class": "evaluation images per class (5x200-style set)",
    "data.seed": "corpus seed: which synthetic studies exist",
    "data.label_text": "report text the soft-target labels are extracted from",
    "data.text_only": "reports without an image as text rows (loss.kind=medclip only)",
    "data.shuffle_reports": "control: reports permuted across images (pairing destroyed)",
    "model.image_width": "ViT width",
    "model.image_depth": "ViT blocks",
    "model.image_heads": "ViT attention heads (must divide the width)",
    "model.patch_size": "ViT patch side in pixels (must divide the image size)",
    "model.text": "text tower: scratch-<mini|small|base> BERT, or a local BERT-family path",
    "model.embed_dim": "joint embedding width",
    "model.decoder_width": "masked-image decoder width (mask.variant image/both)",
    "model.decoder_depth": "masked-image decoder blocks",
    "mask.variant": "auxiliary objectives: none, image (MIM), text (MLM) or both",
    "mask.image_ratio": "share of image patches dropped (FLIP)",
    "mask.text_ratio": "share of report tokens masked for MLM",
    "mask.unmasked_tune_share": "share of the budget run unmasked at the end (FLIP tuning)",
    "mask.unmasked_tune_lr": "peak lr of the unmasked-tuning phase, as a share of optim.lr",
    "mask.text_tokens": "report tokens read in training: 0 all, (0, 1) a share, >= 3 a count",
    "mask.text_policy": "which tokens a reduced report keeps: truncate|random|block|findings",
    "loss.kind": "contrastive loss: clip (InfoNCE), medclip (soft label targets), medflip",
    "loss.temperature": "initial softmax temperature tau",
    "loss.learn_temperature": "learn tau during training",
    "loss.svd_weight": "weight beta of the SVD term (eq. 7); 0 disables it",
    "loss.svd_form": "SVD term: pair (eq. 6, token-level sigma_1) or spectral",
    "loss.mlm_weight": "weight of the masked-language-model loss",
    "loss.mim_weight": "weight of the masked-image reconstruction loss",
    "optim.lr": "peak AdamW learning rate",
    "optim.weight_decay": "AdamW weight decay (not on biases, norms, positions, tau)",
    "optim.warmup_share": "share of the budget in linear warmup before the cosine decay",
    "optim.batch_size": "global batch size (pairs per step over all workers)",
    "optim.max_steps": "step budget: training stops here",
    "optim.time_budget_s": "training-seconds budget (evaluation excluded); 0 = none",
    "optim.flops_budget": "training-FLOPs budget (kept tokens, both towers); 0 = none",
    "optim.precision": "autocast precision: auto = bf16 where native, else fp32 (fp16 needs a GPU)",
    "optim.grad_clip": "gradient-norm clip; 0 disables it",
    "eval.every_share": "evaluate at each multiple of this share of the budget (a report)",
    "eval.prompt_ensemble": "zero-shot prompts combined by mean logit (MedCLIP) or embedding",
    "eval.prompts_per_class": "zero-shot prompt ensemble size per class",
    "eval.batch_size": "evaluation batch size",
    "eval.probe": "run the linear probe at each evaluation (about half an evaluation's cost)",
    "eval.curve_items": "test items scored at evaluations before the last (0 = all)",
    "eval.val_items": "validation items scored per evaluation (0 = the whole half)",
    "eval.before_tuning": "evaluate once as unmasked tuning starts (accuracy before it)",
    "seed": "training seed: initial weights, masking noise, batch order",
}


def allowed(key: str) -> str:
    """The values `apply_overrides` accepts for `key`, as text."""
    if key in config.CHOICES:
        return " | ".join(map(str, config.CHOICES[key]))
    if key in config.RANGES:
        low, high, low_inc, high_inc = config.RANGES[key]
        lo = "-inf" if low is None else f"{'[' if low_inc else '('}{low:g}"
        hi = "inf)" if high is None else f"{high:g}{']' if high_inc else ')'}"
        return f"{lo}, {hi}"
    kind = config.KEYS[key]
    if kind is bool:
        return "true | false"
    if key == "model.text":
        return " | ".join(f"scratch-{s}" for s in config.TEXT_SIZES) + " | local path"
    return {str: "text", int: "integer", float: "number"}[kind]


def table(variant: str) -> str:
    """One line per key: key, the variant's default (* = differs from demo), allowed, meaning."""
    values = config.flatten(variants.get(variant))
    demo = config.flatten(variants.get("demo"))
    rows = [("key", f"{variant} default", "allowed", "meaning")]
    for key, value in values.items():
        shown = repr(value) if isinstance(value, str) else str(value).lower()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shown = str(value)
        mark = " *" if value != demo[key] else ""
        rows.append((key, shown + mark, allowed(key), MEANING.get(key, "")))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip()
        for r in rows
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m medflip.config",
        description="List every config key with its default (per variant), the values it "
        "accepts and what it means. Set keys with --set KEY=VALUE or --config FILE.toml.",
    )
    p.add_argument("--variant", default="demo", choices=variants.NAMES)
    args = p.parse_args(argv)
    print(table(args.variant))
    if args.variant != "demo":
        print(f"\n* = {args.variant} differs from demo")
    return 0
