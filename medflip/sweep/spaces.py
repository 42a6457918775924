"""SPACES: every sweep medflip runs, by name; each `sweeps/<name>.py` only names one.

A space is searched keys (dotted config keys) plus how to search them:

- `grid`   every combination of `axes` (all `Choice`), enumerated by Tune's grid search;
- `tpe`    one objective, Optuna TPE over `define`, a define-by-run function;
- `multi`  several objectives (a Pareto front), Optuna TPE over `define`.

Seeds are not an axis: `--seeds K` replicates every point K times (see replicate.py).
Define-by-run functions are module-level on purpose: OptunaSearch pickles its space by
reference into the experiment state, and `Tuner.restore` must be able to import it again.
`optuna` itself is never imported here: the functions only call methods of the trial object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# What a 2-core demo can afford: 5 trials one after another inside `make demo`'s 15 minutes
# (measured: 749 s for the mask-ratio sweep at 100 s; 1018 s at 120 s on a loaded machine).
DEMO_BUDGET = {"optim.time_budget_s": 100.0}


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
    metrics: tuple[str, ...] = ("zeroshot_acc",)
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


def joint_space(trial) -> dict | None:
    """Variant, ratio, tau, beta together; the image ratio is searched for image/both only.

    Patch dropping applies in every variant, but a search that mixes "none at r=0.5" with
    "image at r=0.5" cannot tell dropping from reconstruction apart; `none`/`text` therefore
    run unmasked (a constant 0 returned alongside the suggestions).
    """
    variant = _suggest(trial, "mask.variant", JOINT_AXES["mask.variant"])
    for key in ("loss.temperature", "loss.svd_weight"):
        _suggest(trial, key, JOINT_AXES[key])
    if variant in ("image", "both"):
        _suggest(trial, "mask.image_ratio", JOINT_AXES["mask.image_ratio"])
        return None
    return {"mask.image_ratio": 0.0}


SPACES: dict[str, Space] = {
    s.name: s
    for s in (
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
            defaults={"loss.learn_temperature": False},  # else tau is only the initial value
            num_samples=8,
        ),
        Space(
            "svd_weight",
            "beta of eq. 7 in [0, 1]; beta = 0 always evaluated",
            "tpe",
            SVD_AXES,
            define=svd_weight_space,
            defaults={"loss.kind": "medflip"},
            num_samples=8,
            start=({"loss.svd_weight": 0.0},),
        ),
        Space(
            "masking_variants",
            "Table 3: no mask, image mask, text mask, both",
            "grid",
            {"mask.variant": Choice(("none", "image", "text", "both"))},
        ),
        Space(
            "joint",
            "Pareto front of zero-shot accuracy vs device-hours over variant, ratio, tau, beta",
            "multi",
            JOINT_AXES,
            metrics=("zeroshot_acc", "device_hours"),
            modes=("max", "min"),
            define=joint_space,
            defaults={"loss.kind": "medflip"},
            # A fixed step budget, so masking shows up as saved device-hours (200 demo steps:
            # ~1.5-4 min a trial on 2 cores, depending on the ratio).
            demo_budget={"optim.time_budget_s": 0.0, "optim.max_steps": 200},
            num_samples=12,
            # The baseline (the demo's defaults, no masking, no SVD term) as a starting point.
            start=({"mask.variant": "none", "loss.temperature": 0.07, "loss.svd_weight": 0.0},),
        ),
        Space(
            "data_efficiency",
            "Fig. 3: zero-shot accuracy vs share of pretraining pairs, masked vs not",
            "grid",
            {
                "data.fraction": Choice((0.1, 0.25, 0.5, 1.0)),
                # masked vs not = FLIP patch dropping at 0.5 vs none (the variant is "none").
                "mask.image_ratio": Choice((0.0, 0.5)),
            },
        ),
    )
}


def get(name: str) -> Space:
    """The named space; a clear error listing the names otherwise."""
    if name not in SPACES:
        raise KeyError(f"unknown sweep space {name!r}; choose one of {', '.join(SPACES)}")
    return SPACES[name]
