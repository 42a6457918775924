"""SPACES: every sweep medflip runs, by name; each `sweeps/<name>.py` only names one.

A space is searched keys (dotted config keys) plus how to search them:

- `grid`   every combination of `axes` (all `Choice`), enumerated by Tune's grid search;
- `tpe`    one objective, Optuna TPE over `define`, a define-by-run function;
- `multi`  several objectives (a Pareto front), Optuna TPE over `define`.

Masking labels mean one thing in every space: `mask.variant` names the masking
*objectives* (none: contrastive only; image: + masked-image reconstruction; text: + MLM;
both), and patch dropping is `mask.image_ratio`, its own axis, set explicitly (as an axis or
a default) by every space. Objectives are read on the validation split (`val_*`): the
searcher, the scheduler and "best trial" never see the held-out test figures.

Seeds are not an axis: `--seeds K` replicates every point K times (see replicate.py).
Define-by-run functions are module-level on purpose: OptunaSearch pickles its space by
reference into the experiment state, and `Tuner.restore` must be able to import it again.
`optuna` itself is never imported here: the functions only call methods of the trial object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medflip.registry import Registry
from medflip.variants import RECIPE

# What a 2-core demo can afford per trial (--smoke-test and `make demo` sizes live in the
# Makefile's demo target, which states its own budget and arms).
DEMO_BUDGET = {"optim.time_budget_s": 100.0, "eval.every_share": 0.125}
OBJECTIVE = "val_zeroshot_acc"  # selection reads the validation half (evaluate.py)


def _without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


@dataclass(frozen=True)
class Float:
    """A float axis in [low, high], sampled log-uniformly when `log`."""

    low: float
    high: float
    log: bool = False

    def extremes(self) -> tuple[float, ...]:
        return (self.low, self.high)


@dataclass(frozen=True)
class Choice:
    """A categorical axis (or a grid axis)."""

    values: tuple

    def extremes(self) -> tuple:
        return tuple(self.values)


@dataclass(frozen=True)
class Space:
    name: str
    figure: str  # what it reproduces, for --help and the table
    kind: str  # grid | tpe | multi
    axes: dict[str, Float | Choice]
    metrics: tuple[str, ...] = (OBJECTIVE,)
    modes: tuple[str, ...] = ("max",)
    define: Callable[[Any], dict | None] | None = None  # define-by-run (tpe, multi)
    defaults: dict[str, Any] = field(default_factory=dict)  # fixed overrides, every variant
    demo_budget: dict[str, Any] = field(default_factory=lambda: dict(DEMO_BUDGET))
    num_samples: int = 1  # suggestions for tpe/multi (grids enumerate their axes)
    start: tuple[dict, ...] = ()  # points Optuna evaluates first

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    def grid_points(self) -> list[dict[str, Any]]:
        """Every combination of the axes, first axis slowest (grid spaces)."""
        points: list[dict[str, Any]] = [{}]
        for key, axis in self.axes.items():
            points = [{**p, key: v} for p in points for v in axis.values]
        return points

    def smoke_axes(self) -> dict[str, Choice]:
        """--smoke-test grid: the first axis' first two values, the others' first value."""
        out = {}
        for i, (key, axis) in enumerate(self.axes.items()):
            out[key] = Choice(tuple(axis.values[: 2 if i == 0 else 1]))
        return out


def _suggest(trial, key: str, axis: Float | Choice):
    if isinstance(axis, Float):
        return trial.suggest_float(key, axis.low, axis.high, log=axis.log)
    return trial.suggest_categorical(key, list(axis.values))


TEMPERATURE_AXES = {"loss.temperature": Float(0.01, 0.5, log=True)}
SVD_AXES = {"loss.svd_weight": Float(0.0, 1.0)}
JOINT_AXES = {
    "mask.variant": Choice(("none", "image", "text", "both")),
    "mask.image_ratio": Float(0.0, 0.9),
    "loss.temperature": Float(0.01, 0.5, log=True),
    "loss.svd_weight": Float(0.0, 1.0),
}


def temperature_space(trial) -> None:
    """tau, log-uniform: its effect is multiplicative (logits are cos / tau)."""
    _suggest(trial, "loss.temperature", TEMPERATURE_AXES["loss.temperature"])


def svd_weight_space(trial) -> None:
    """beta of eq. 7; beta = 0 (no SVD term) is always evaluated first (see `start`)."""
    _suggest(trial, "loss.svd_weight", SVD_AXES["loss.svd_weight"])


def joint_space(trial) -> None:
    """Objectives (variant), patch dropping (ratio), tau and beta, each its own axis: the
    labels mean what they mean in every other space (module docstring)."""
    for key, axis in JOINT_AXES.items():
        _suggest(trial, key, axis)


# `make demo`: the question the tool exists for -- does FLIP patch dropping at 0.75 beat
# no masking for the same compute? -- answered the same way on any machine, with intervals,
# on 2 cores in <= 30 minutes: 6 seeds per arm, 2 trials at a time (1 core each).
#
# The budget is training FLOPs (models/flops.py: forward + backward, both towers, kept
# tokens only), not seconds: a seconds budget gave 60-100 steps on an AVX2 EPYC and 240-330
# on an AMX Xeon, so the answer depended on the CPU (and on how well each CPU turns saved
# FLOPs into saved seconds). At equal FLOPs every machine trains the same steps in the same
# arithmetic (fp32 pinned: bf16 runs only where native and changes the numbers), so only
# the wall time differs; the analysis gives the speedup on FLOPs and on this machine's
# seconds side by side. 7e12 FLOPs = ~390 baseline steps and ~800 masked steps of batch 64
# (measured, seed 0): the curve leaves chance by step ~55 on both arms and is still rising
# at the end, so the arms are compared well past the ViT's early plateau; ~210 s (baseline)
# and ~240 s (masked) of training per trial on one AVX2 EPYC core (fp32, two trials at
# once), so 12 trials take ~26 min. The demo model is ViT 96 wide (a quarter of the demo
# variant's FLOPs: 4x the steps per second); r = 0.75 cuts its step FLOPs 2.1x (the text
# tower is the rest).
#
# Evaluation: 2,000 test items (800 per class, half of them test) scored at each trial's
# last evaluation, for an evaluation noise of ~1 point in a paired difference; a cheap curve
# point at every eighth of the budget on the first 60 of them; 20 validation items (the
# progress view's signal: the demo's analysis reports each trial's latest evaluation,
# --select latest); no probe. One more curve point just before unmasked tuning shows what
# the tuning adds.
DEMO = {
    "optim.time_budget_s": 0.0,
    "optim.flops_budget": 7e12,
    "optim.precision": "fp32",
    "optim.batch_size": 64,
    "model.image_width": 96,
    "eval.every_share": 0.125,
    "eval.probe": False,
    "data.eval_per_class": 800,
    "eval.curve_items": 60,
    "eval.val_items": 20,
    "eval.before_tuning": True,
}

SPACES: Registry[Space] = Registry(
    "sweep space",
    (
        Space(
            "demo",
            "make demo: FLIP patch dropping 0.75 vs none at equal training FLOPs",
            "grid",
            {"mask.image_ratio": Choice((0.0, 0.75))},
            defaults={"mask.variant": "none"},
            demo_budget=dict(DEMO),
        ),
        Space(
            "mask_ratio",
            "Fig. 1: zero-shot accuracy vs training time per image mask ratio",
            "grid",
            {"mask.image_ratio": Choice((0.0, 0.25, 0.5, 0.75, 0.9))},
            # Pure FLIP: patch dropping is the only factor (masking.ratios_for applies the
            # ratio in every variant); no reconstruction decoder to confound the time axis.
            defaults={"mask.variant": "none"},
        ),
        Space(
            "temperature",
            "tau of the contrastive loss, log-uniform in [0.01, 0.5]",
            "tpe",
            TEMPERATURE_AXES,
            define=temperature_space,
            # tau fixed (else it is only the initial value); plain CLIP, no masking.
            defaults={
                "loss.learn_temperature": False,
                "mask.variant": "none",
                "mask.image_ratio": 0.0,
            },
            num_samples=8,
        ),
        Space(
            "svd_weight",
            "Table 1: beta of the SVD term in [0, 1] within the paper's recipe; beta = 0 first",
            "tpe",
            SVD_AXES,
            define=svd_weight_space,
            defaults=_without(RECIPE, "loss.svd_weight"),
            num_samples=8,
            start=({"loss.svd_weight": 0.0},),
        ),
        Space(
            "masking_variants",
            "Table 3: masking objectives none/image/text/both in the paper's recipe",
            "grid",
            {
                "mask.variant": Choice(("none", "image", "text", "both")),
                "mask.image_ratio": Choice((0.5,)),  # patch dropping, stated: one value
            },
            defaults=_without(RECIPE, "mask.variant", "mask.image_ratio"),
        ),
        Space(
            "joint",
            "Pareto front of zero-shot accuracy vs device-hours over variant, ratio, tau, beta",
            "multi",
            JOINT_AXES,
            metrics=(OBJECTIVE, "device_hours"),
            modes=("max", "min"),
            define=joint_space,
            defaults={"loss.kind": RECIPE["loss.kind"]},
            # A fixed step budget, so masking shows up as saved device-hours (200 demo steps:
            # ~1.5-4 min a trial on 2 cores, depending on the ratio).
            demo_budget={"optim.time_budget_s": 0.0, "optim.max_steps": 200},
            num_samples=12,
            # The baseline (no masking, no SVD term) and the paper's recipe as starting points.
            start=(
                {
                    "mask.variant": "none",
                    "mask.image_ratio": 0.0,
                    "loss.temperature": 0.07,
                    "loss.svd_weight": 0.0,
                },
                {**_without(RECIPE, "loss.kind"), "loss.temperature": 0.07},
            ),
        ),
        Space(
            "data_efficiency",
            "Fig. 3: zero-shot accuracy vs share of pretraining pairs, masked vs not",
            "grid",
            {
                "data.fraction": Choice((0.1, 0.25, 0.5, 1.0)),
                # masked vs not = FLIP patch dropping at 0.5 vs none; objectives: none.
                "mask.image_ratio": Choice((0.0, 0.5)),
            },
            defaults={"mask.variant": "none"},
        ),
        Space(
            "token_budget",
            "Beyond the paper (issue 23): text budget x image mask ratio x training "
            "resolution in the recipe -- which token budget buys the most accuracy per "
            "second and per FLOP",
            "grid",
            {
                # first axis: what --smoke-test varies. 0 = the whole report; 16 = a
                # CLIPA-sized budget; 0.5 = half of each report (truncate: IMPRESSION first)
                "mask.text_tokens": Choice((0.0, 16.0, 0.5)),
                "mask.image_ratio": Choice((0.5, 0.75, 0.0)),  # the recipe's 0.5 first
                # 0 = data.image_size (demo: 64 px); 32 = half the side, a quarter of the
                # patches, until full-size tuning restores it
                "data.train_image_size": Choice((0, 32)),
            },
            defaults=_without(RECIPE, "mask.image_ratio"),
        ),
    ),
)


def get(name: str) -> Space:
    """The named space; an unknown name is a ConfigError listing the names."""
    return SPACES[name]
