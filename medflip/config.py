"""Frozen, validated configuration addressed by dotted keys ("mask.image_ratio").

One dataclass per group; `Config` holds them. Every change goes through
`apply_overrides`, which rejects unknown keys (suggesting the closest), wrong types and
out-of-range values with one `ConfigError` naming the key -- before any work starts.
Defaults here are the `demo` variant's; `medflip.variants` names other bases.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import os
from dataclasses import dataclass, field, fields, replace
from typing import Any

# The registry is the only medflip module config imports (tests/test_layers.py): no torch,
# no reader. ConfigError lives there so that an unknown registered name is one too.
from medflip.registry import DATA_SOURCES, LOSS_KINDS, ConfigError  # noqa: F401


@dataclass(frozen=True)
class DataConfig:
    source: str = "synthetic"  # a registered source (registry.DATA_SOURCES): synthetic | mimic-cxr
    # | chexpert | openi | manifest
    root: str = ""  # dataset root; unused for the embedded synthetic corpus
    image_size: int = 64  # 64 px learned as well as 128 px in the demo probe, at 1/4 the cost
    # Training resolution (CLIPA / RECLIP): 0 = image_size. Below it, training batches are
    # resized down (the ViT's positional embeddings resampled as timm does) until the final
    # full-size tuning phase (training/schedule.py); evaluation always reads image_size.
    train_image_size: int = 0
    num_train: int = 20000  # synthetic pairs; enough that a 5-minute demo run never repeats much
    fraction: float = 1.0  # share of pretraining pairs used (data-efficiency sweep)
    paired: float = 1.0  # share kept paired; the rest used as unpaired images and texts
    max_text_len: int = 96  # tokens; synthetic impressions+findings fit in ~80 WordPiece tokens
    tokenizer: str = ""  # "" = WordPiece trained on the corpus and cached; else a local path
    vocab_size: int = 2000  # for the corpus-trained tokenizer; the synthetic vocabulary is small
    loader_workers: int = 1  # DataLoader processes; 1 keeps generation off the step on 2 cores
    eval_per_class: int = 200  # 5x200-style evaluation set: images per class
    seed: int = 0  # corpus seed: which synthetic studies exist (independent of training seed)
    shuffle_reports: bool = False  # control run: reports permuted across images (no pairing)
    # report text the soft-target labels come from: findings_impression (what the text tower
    # reads) | impression (CheXpert's rule; a dataset's label table wins)
    label_text: str = "findings_impression"
    # reports whose images are absent train as text rows in label-matched losses (medclip);
    # off: dropped (the paired-only arm of a data-efficiency comparison)
    text_only: bool = True


@dataclass(frozen=True)
class ModelConfig:
    image_width: int = 192  # ViT-Tiny width: small enough for 2 CPU cores
    image_depth: int = 4  # 4 blocks learned as fast as 12 on the demo corpus
    image_heads: int = 3
    patch_size: int = 8  # 64 px / 8 = 64 patches: enough tokens for masking to matter
    text: str = "scratch-mini"  # scratch-<mini|small|base> or a local BERT-family path
    embed_dim: int = 128  # joint space width
    decoder_width: int = 128  # MAE-style decoder, used by mask.variant image/both
    decoder_depth: int = 1


@dataclass(frozen=True)
class MaskConfig:
    variant: str = "none"  # none | image | text | both (Table 3 ablation)
    image_ratio: float = 0.5  # FLIP patch dropping; the only definition lives in masking.py
    text_ratio: float = 0.15  # BERT's MLM rate
    # FLIP's unmasked tuning (training/schedule.py): with image_ratio > 0 the last share of
    # the budget runs unmasked on its own cosine from unmasked_tune_lr x optim.lr (the tail of the
    # main cosine was < 1 % of the peak: it changed nothing). On wherever masking is studied.
    unmasked_tune_share: float = 0.05
    unmasked_tune_lr: float = 0.1
    # Report tokens the text tower reads in training (CLIPA's text reduction), [CLS]/[SEP]
    # included: 0 = the whole report; a share in (0, 1) = that share of each report's tokens
    # (at least 3); an integer >= 3 = at most that many tokens. Soft-target labels always
    # come from the whole report; evaluation and the full-size tuning phase read everything.
    text_tokens: float = 0.0
    # which tokens a reduced report keeps (data/text_budget.py): truncate (the first ones:
    # IMPRESSION first) | random | block (one random contiguous span) | findings (sentences
    # with a positive or uncertain CheXpert finding first, then negated ones, then the rest)
    text_policy: str = "truncate"


@dataclass(frozen=True)
class LossConfig:
    kind: str = "clip"  # a registered kind (registry.LOSS_KINDS): clip | medclip | medflip
    temperature: float = 0.07  # CLIP's initial tau
    learn_temperature: bool = True
    svd_weight: float = 0.0  # beta of eq. 7; 0 disables the SVD term
    svd_form: str = "pair"  # pair (eq. 6 over token-level sigma_1) | spectral
    mlm_weight: float = 1.0
    mim_weight: float = 1.0


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3  # 3e-4 was too slow and 2e-3 collapsed in the demo probe
    weight_decay: float = 0.05
    # Linear warmup over this share of the budget (on the budget's own measure: seconds,
    # steps or FLOPs, training/schedule.py), so two arms that differ only in step rate warm
    # up over the same part of their budget. 0.05 = FLIP's and CLIP's few % of training; it
    # was 50 steps, which a slow arm of a time budget did not finish until 83 % of its run.
    warmup_share: float = 0.05
    batch_size: int = 128  # global; contrastive learning wants many negatives
    max_steps: int = 100000  # effectively unbounded: the demo stops on its time budget
    time_budget_s: float = 240.0  # training seconds (evaluation excluded); 0 = no budget
    # Training FLOPs (forward + backward of both towers over the tokens a step keeps,
    # models/flops.py); 0 = no budget. The same on every machine: a run's outcome does not
    # depend on how fast its CPU or GPU is (the demo's budget, sweep/spaces.py DEMO).
    flops_budget: float = 0.0
    # auto | fp32 | bf16 | fp16. auto = bf16 where the hardware runs it natively (GPUs,
    # AVX512/AMX CPUs: nearly doubled CPU steps there), else fp32 (AVX2: bf16 ~10x slower)
    precision: str = "auto"
    grad_clip: float = 1.0


@dataclass(frozen=True)
class EvalConfig:
    # Evaluate each time progress (the budget's own measure, training/schedule.py) crosses a
    # multiple of this share, so faster (masked) arms of a time budget are evaluated at the
    # same points of their budget, not more often; 0.1 = 10 curve points (the last is the
    # final, full evaluation). Each evaluation is a Ray report and a checkpoint.
    every_share: float = 0.1
    prompts_per_class: int = 8  # prompt ensemble size
    # How a class's prompts are combined in zero-shot: logits (MedCLIP's protocol, which the
    # paper follows: each prompt's similarity, then their mean) | embeddings (CLIP's: the
    # mean of the normalised prompt embeddings, renormalised, then one similarity).
    prompt_ensemble: str = "logits"
    batch_size: int = 256
    probe: bool = True  # linear probe each evaluation: about half its cost at demo size
    # Curve points cheaper than the final evaluation: 0 = every evaluation scores every test
    # item; n > 0 = evaluations before the last score the first n test items of the 5-class
    # set only (a class-balanced prefix), the last one everything. The demo needs 1,000 test
    # items for a paired SE <= 1 point at its end, and >= 8 curve points within 10 % of training.
    curve_items: int = 0
    # validation items scored per evaluation (a class-balanced prefix of the validation half,
    # 0 = all): selection needs a stable signal, not the test half's size
    val_items: int = 0
    # one evaluation as FLIP's unmasked tuning starts, so a curve shows accuracy before and
    # after it; off by default (one more evaluation per masked trial)
    before_tuning: bool = False


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0


# BERT sizes for `model.text = scratch-<size>`: (hidden, layers, heads, intermediate).
TEXT_SIZES = {
    "mini": (128, 2, 2, 512),  # the demo: text is short and templated, 2 layers suffice
    "small": (256, 4, 4, 1024),
    "base": (768, 12, 12, 3072),  # BERT-base, the paper's text tower size
}

CHOICES = {
    "data.source": tuple(DATA_SOURCES),  # medflip/registry.py
    "data.label_text": ("findings_impression", "impression"),
    "mask.variant": ("none", "image", "text", "both"),
    "mask.text_policy": ("truncate", "random", "block", "findings"),
    "loss.kind": tuple(LOSS_KINDS),  # medflip/registry.py
    "loss.svd_form": ("pair", "spectral"),
    "optim.precision": ("auto", "fp32", "bf16", "fp16"),
    "eval.prompt_ensemble": ("logits", "embeddings"),
}

# Removed keys -> what replaced them: setting one is an error naming the new key.
RENAMED = {
    "optim.warmup_steps": "optim.warmup_share (warmup as a share of the budget)",
    "eval.every_steps": "eval.every_share (evaluations at shares of the budget)",
    "eval.every_s": "eval.every_share (evaluations at shares of the budget)",
}

# key -> (low, high, low_inclusive, high_inclusive); None = unbounded
RANGES = {
    "data.image_size": (8, None, True, True),
    "data.train_image_size": (0, None, True, True),
    "data.num_train": (1, None, True, True),
    "data.fraction": (0.0, 1.0, False, True),
    "data.paired": (0.0, 1.0, True, True),
    "data.max_text_len": (8, 512, True, True),
    "data.vocab_size": (100, None, True, True),
    "data.loader_workers": (0, None, True, True),
    "data.eval_per_class": (1, None, True, True),
    "model.image_width": (8, None, True, True),
    "model.image_depth": (1, None, True, True),
    "model.image_heads": (1, None, True, True),
    "model.patch_size": (1, None, True, True),
    "model.embed_dim": (2, None, True, True),
    "model.decoder_width": (8, None, True, True),
    "model.decoder_depth": (1, None, True, True),
    "mask.image_ratio": (0.0, 0.95, True, True),
    "mask.text_ratio": (0.0, 0.5, True, True),
    "mask.unmasked_tune_share": (0.0, 0.5, True, True),
    "mask.unmasked_tune_lr": (0.0, 1.0, False, True),
    "mask.text_tokens": (0.0, 512.0, True, True),
    "loss.temperature": (0.0, None, False, True),
    "loss.svd_weight": (0.0, None, True, True),
    "loss.mlm_weight": (0.0, None, True, True),
    "loss.mim_weight": (0.0, None, True, True),
    "optim.lr": (0.0, None, False, True),
    "optim.weight_decay": (0.0, None, True, True),
    "optim.warmup_share": (0.0, 0.5, True, True),
    "optim.batch_size": (2, None, True, True),
    "optim.max_steps": (1, None, True, True),
    "optim.time_budget_s": (0.0, None, True, True),
    "optim.flops_budget": (0.0, None, True, True),
    "optim.grad_clip": (0.0, None, True, True),
    "eval.every_share": (0.0, 1.0, False, True),
    "eval.prompts_per_class": (1, None, True, True),
    "eval.batch_size": (1, None, True, True),
    "eval.curve_items": (0, None, True, True),
    "eval.val_items": (0, None, True, True),
}


def _leaf_types(cls=Config, prefix="") -> dict[str, type]:
    out = {}
    for f in fields(cls):
        key = f"{prefix}{f.name}"
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out.update(_leaf_types(type(default), key + "."))
        else:
            out[key] = type(default)
    return out


KEYS: dict[str, type] = _leaf_types()


def flatten(cfg: Config) -> dict[str, Any]:
    """Config -> {dotted key: value}, in declaration order."""
    out = {}
    for key in KEYS:
        obj = cfg
        for part in key.split("."):
            obj = getattr(obj, part)
        out[key] = obj
    return out


def unflatten(flat: dict[str, Any], base: Config | None = None) -> Config:
    """Inverse of `flatten`: missing keys keep `base`'s (default: Config()) values."""
    return apply_overrides(base or Config(), flat)


def _coerce(key: str, value: Any) -> Any:
    want = KEYS[key]
    if isinstance(value, str) and want is not str:
        value = parse_value(key, value)
    if want is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if want is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if want is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def parse_value(key: str, text: str) -> Any:
    """Parse a command-line string for `key` (`--set key=value`)."""
    want = KEYS.get(key)
    if want is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}: expected true/false, got {text!r}")
    if want in (int, float):
        try:
            number = float(text)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {text!r}") from None
        return int(number) if want is int and number == int(number) else number
    return text


def _check_range(key: str, value: Any) -> None:
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(CHOICES[key])}")
    if key not in RANGES:
        return
    low, high, low_inc, high_inc = RANGES[key]
    bad_low = low is not None and (value < low if low_inc else value <= low)
    bad_high = high is not None and (value > high if high_inc else value >= high)
    if bad_low or bad_high:
        lo = "(-inf" if low is None else f"{'[' if low_inc else '('}{low}"
        hi = "inf)" if high is None else f"{high}{']' if high_inc else ')'}"
        raise ConfigError(f"{key}: {value!r} is outside {lo}, {hi}")


def unknown_key_error(key: str) -> ConfigError:
    if key in RENAMED:
        return ConfigError(f"config key {key!r} was removed; use {RENAMED[key]}")
    close = difflib.get_close_matches(key, list(KEYS), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint}")


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Return a new config with dotted-key overrides applied and the whole result validated."""
    groups: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in KEYS:
            raise unknown_key_error(key)
        value = _coerce(key, raw)
        _check_range(key, value)
        if "." in key:
            group, name = key.split(".", 1)
            groups.setdefault(group, {})[name] = value
        else:
            top[key] = value
    new = replace(cfg, **top, **{g: replace(getattr(cfg, g), **v) for g, v in groups.items()})
    validate(new)
    return new


def validate(cfg: Config) -> None:
    """Cross-field checks (single keys are checked as they are set)."""
    for key, value in flatten(cfg).items():
        _check_range(key, value)
    if cfg.data.image_size % cfg.model.patch_size:
        raise ConfigError(
            f"data.image_size: {cfg.data.image_size} is not a multiple of "
            f"model.patch_size ({cfg.model.patch_size})"
        )
    _check_budgets(cfg)
    if cfg.model.image_width % cfg.model.image_heads:
        raise ConfigError(
            f"model.image_heads: {cfg.model.image_heads} does not divide "
            f"model.image_width ({cfg.model.image_width})"
        )
    problem = DATA_SOURCES[cfg.data.source].root_problem(cfg.data.root)
    if problem:
        raise ConfigError(f"data.root: {problem}")
    text = cfg.model.text
    if text.startswith("scratch-"):
        if text.removeprefix("scratch-") not in TEXT_SIZES:
            sizes = ", ".join(f"scratch-{s}" for s in TEXT_SIZES)
            raise ConfigError(f"model.text: {text!r} is not one of {sizes} or a local path")
    elif not os.path.isdir(text):
        raise ConfigError(f"model.text: {text!r} is neither scratch-<size> nor a local directory")
    if cfg.optim.flops_budget > 0 and not text.startswith("scratch-"):
        raise ConfigError(
            f"optim.flops_budget: FLOPs are counted for scratch-<size> text towers only, "
            f"not model.text={text!r}; use optim.time_budget_s or optim.max_steps"
        )


def _check_budgets(cfg: Config) -> None:
    """The token budgets: a training resolution that fits the patches and does not exceed
    the evaluation size; a text budget that is a share or a whole count below the length."""
    size, full, patch = cfg.data.train_image_size, cfg.data.image_size, cfg.model.patch_size
    if size and (size > full or size % patch):
        raise ConfigError(
            f"data.train_image_size: {size} must be 0 (= data.image_size) or a multiple of "
            f"model.patch_size ({patch}) no larger than data.image_size ({full})"
        )
    budget, length = cfg.mask.text_tokens, cfg.data.max_text_len
    if budget >= 1 and (budget != int(budget) or not 3 <= budget < length):
        raise ConfigError(
            f"mask.text_tokens: {budget:g} is neither 0 (off), a share in (0, 1) nor a whole "
            f"number of tokens in [3, data.max_text_len ({length}))"
        )


def config_hash(cfg: Config) -> str:
    """Stable across processes and key order: sha1 of the sorted flat JSON, 12 hex digits."""
    return flat_hash(flatten(cfg))


def flat_hash(flat: dict[str, Any]) -> str:
    """`config_hash` of a flat config as saved (a checkpoint's, a results row's)."""
    blob = json.dumps(dict(flat), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def to_json(cfg: Config) -> str:
    return json.dumps(flatten(cfg), sort_keys=True)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """['a.b=1', ...] -> {'a.b': parsed}; rejects malformed items and unknown keys."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in KEYS:
            raise unknown_key_error(key)
        out[key] = parse_value(key, text.strip())
    return out


def _flat_items(table: dict, prefix: str = "") -> list[tuple[str, Any]]:
    """TOML tables and dotted keys alike -> [(dotted key, value)]."""
    out = []
    for name, value in table.items():
        if isinstance(value, dict):
            out += _flat_items(value, f"{prefix}{name}.")
        else:
            out.append((f"{prefix}{name}", value))
    return out


def load_file(path: str) -> dict[str, Any]:
    """`--config FILE`: a TOML file of dotted keys (`mask.image_ratio = 0.5`, or tables).

    Each key is checked as `--set` checks it; every error names the file. `--set` items
    are applied after the file, so they win.
    """
    import tomllib

    try:
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid TOML ({exc})") from None
    out = {}
    for key, value in _flat_items(table):
        try:
            if key not in KEYS:
                raise unknown_key_error(key)
            out[key] = _coerce(key, value)
            _check_range(key, out[key])
        except ConfigError as exc:
            raise ConfigError(f"--config {path}: {exc}") from None
    return out


def overrides_from_cli(config_file: str | None, sets: list[str]) -> dict[str, Any]:
    """The overrides of a command line: `--config FILE` first, then each `--set` (wins)."""
    return {**(load_file(config_file) if config_file else {}), **parse_sets(sets)}


if __name__ == "__main__":  # python -m medflip.config: the reference of every key
    import sys

    from medflip.config_doc import main

    sys.exit(main())
