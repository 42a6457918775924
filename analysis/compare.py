"""Arms against a baseline at equal cost: one number per run, intervals over seeds.

Each run contributes its interpolated curve (analysis/paired.py), its value at the
equal-time budget, its area over the reference and, against the baseline's run of the same
seed, its time-scaling kappa (analysis/speedup.py). An arm's figure is the mean over its
seeds; its difference from the baseline is the mean of the per-seed paired differences
with a Student-t interval (analysis/inference.py argues why), Welch's when the arms do not
share seeds. With one seed per arm there is no seed-level interval: the interval
resamples the shared test items (a paired bootstrap) and says it holds evaluation noise
only, and inference.verdict gives no verdict.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from analysis import inference, paired, speedup, stats

ONE_SEED = "evaluation noise only (1 seed)"


def _arm(arm: list[paired.Run], grid, budget, ref, anchor) -> dict:
    """Per run (sorted by seed): curve [T, G], value at the budget [T], area [T]."""
    arm = sorted(arm, key=lambda r: (r.trial.seed, r.trial.experiment, r.trial.trial_id))
    span = max([r.trial.final_x for r in arm] + [budget])
    reps = [paired.reported(r, None) for r in arm]
    at = int(np.searchsorted(grid, budget))  # compare() put the budget on the grid
    cur = np.vstack(
        [paired.curve(r, p, grid, span, anchor, ref[1]) for r, p in zip(arm, reps, strict=True)]
    )
    return {
        "runs": arm,
        "reps": reps,
        "span": span,
        "curves": cur,
        "at": cur[:, at].copy(),
        "areas": paired.area(grid, cur, ref),
    }


def _paired(a: dict, b: dict) -> bool:
    """Runs pair seed by seed when both arms ran the same seeds (sorted alike)."""
    seeds = [[r.trial.seed for r in x["runs"]] for x in (a, b)]
    return seeds[0] == seeds[1]


def _difference(a: np.ndarray, b: np.ndarray, paired_: bool, level: float) -> dict:
    """Mean difference, interval and p: paired t over seeds, or Welch."""
    if paired_:
        est = inference.t_mean(a - b, level)
        return {k: float(est[k]) for k in ("mean", "lo", "hi", "p", "sd")}
    return inference.welch(a, b, level)


def _one_seed(key, arm, base, grid, budget, ref, anchor, weights) -> tuple[float, float]:
    """Paired item-bootstrap interval of a one-seed figure: evaluation noise only."""
    if weights is None:
        return math.nan, math.nan

    def value(x: dict) -> np.ndarray:
        r = x["runs"][0]
        rep = paired.reported(r, weights)
        if key == "area":
            return paired.area(grid, paired.curve(r, rep, grid, x["span"], anchor, ref[1]), ref)
        return paired.curve(r, rep, np.array([budget]), x["span"], anchor, ref[1])[:, 0]

    boot = value(arm) - (0.0 if base is None else value(base))
    lo, hi = stats.interval(boot)
    return float(lo), float(hi)


def _band(x: dict, grid, ref, anchor, weights) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise 95 % band of the arm's mean curve: t over seeds, items for one seed."""
    if len(x["runs"]) >= inference.MIN_SEEDS:
        est = inference.t_mean(x["curves"].T)
        return est["lo"], est["hi"]
    if weights is None:
        nan = np.full(len(grid), np.nan)
        return nan, nan
    r = x["runs"][0]
    boot = paired.curve(r, paired.reported(r, weights), grid, x["span"], anchor, ref[1])
    return stats.interval(boot, axis=0)


def _kappa(a: dict, b: dict, paired_: bool, anchor) -> np.ndarray:
    """[K] per-seed log kappa (paired), or the one of the two mean curves (unpaired)."""
    if paired_:
        side = [
            [(r.x, p[0], paired.n_items(r)) for r, p in zip(x["runs"], x["reps"], strict=True)]
            for x in (a, b)
        ]
        failed = [r.trial.status in paired.curves.FAILED for r in a["runs"]]
        lk = speedup.per_seed(side[0], side[1], anchor)
        return np.where(failed, np.nan, lk)  # a failed run has no speed: it never gets there
    return np.array([np.nan])


def _speed(a: dict, b: dict, paired_: bool, anchor, level: float) -> dict:
    lk = _kappa(a, b, paired_, anchor)
    est = inference.t_mean(lk, level)
    mean = float(est["mean"])
    return {
        "speedup": math.exp(mean) if np.isfinite(mean) else math.nan,
        "speedup_ci": (float(np.exp(est["lo"])), float(np.exp(est["hi"]))),
        "speedup_p": float(est["p"]),
        "log_kappa": lk.tolist(),
    }


def _versus(a, b, grid, budget, ref, anchor, weights, level) -> dict:
    """The arm `a` against the baseline `b`: differences at budget and in area, speedup."""
    pair = _paired(a, b)
    diff = _difference(a["at"], b["at"], pair, level)
    darea = _difference(a["areas"], b["areas"], pair, level)
    out = {
        "paired": pair,
        "diff": diff["mean"],
        "diff_ci": (diff["lo"], diff["hi"]),
        "diff_p": diff["p"],
        "diff_sd": diff["sd"],
        "area_diff": darea["mean"],
        "area_diff_ci": (darea["lo"], darea["hi"]),
        "area_diff_p": darea["p"],
        **_speed(a, b, pair, anchor, level),
    }
    n = min(len(a["runs"]), len(b["runs"]))
    out["detectable"] = inference.detectable(diff["sd"], n) if pair else math.nan
    if n < inference.MIN_SEEDS and pair:
        out["diff_ci"] = _one_seed("at", a, b, grid, budget, ref, anchor, weights)
        out["area_diff_ci"] = _one_seed("area", a, b, grid, budget, ref, anchor, weights)
    out["p_improvement"] = paired.prob_improvement(a["at"], b["at"])
    return out


def _own(x: dict, grid, budget, ref, anchor, weights, target) -> dict:
    """An arm's own figures: mean curve and band, value at budget, area, reach."""
    with warnings.catch_warnings():  # grid costs before any evaluation: NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_curve = np.nanmean(x["curves"], axis=0)
    acc, area = inference.t_mean(x["at"]), inference.t_mean(x["areas"])
    one = len(x["runs"]) < inference.MIN_SEEDS
    reached = [
        r.trial.status not in paired.curves.FAILED and np.isfinite(t)
        for r, t in zip(x["runs"], paired.first_reach(grid, x["curves"], target), strict=True)
    ]
    return {
        "curve": mean_curve,
        "curve_ci": _band(x, grid, ref, anchor, weights),
        "acc_at_budget": float(acc["mean"]),
        "acc_at_budget_ci": _one_seed("at", x, None, grid, budget, ref, anchor, weights)
        if one
        else (float(acc["lo"]), float(acc["hi"])),
        "hypervolume": float(area["mean"]),
        "hypervolume_ci": _one_seed("area", x, None, grid, budget, ref, anchor, weights)
        if one
        else (float(area["lo"]), float(area["hi"])),
        "reach": float(paired.first_reach(grid, mean_curve[None], target)[0]),
        "reached": f"{sum(reached)}/{len(reached)}",
        "seeds": [r.trial.seed for r in x["runs"]],
        "values": x["at"].tolist(),  # each run's value at equal time (failed: chance)
        "interval": ONE_SEED if one else "t over seeds",
    }


def compare(
    groups: dict,
    base_level,
    grid,
    budget,
    target,
    ref,
    anchor=None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = inference.LEVEL,
) -> dict:
    """Per group: mean curve and band, value at `budget`, difference from the baseline,
    P(improvement), speedup kappa and area over `ref`, each with its interval and p.

    `groups` maps level -> [Run]; `anchor`: the metric's value at cost 0 (chance) or None;
    `target` None = TARGET_SHARE of the baseline's gain over ref[1] at `budget` (the
    descriptive `reach`); `level`: of every interval (a report family's Bonferroni level).
    Items are resampled (`n_boot` times) only for arms with one seed.
    """
    grid = np.unique(np.append(grid, [budget] + ([] if anchor is None else [0.0])))
    rng = np.random.default_rng(seed)
    arms = {lv: _arm(arm, grid, budget, ref, anchor) for lv, arm in groups.items()}
    one = any(len(a["runs"]) < inference.MIN_SEEDS for a in arms.values())
    every = [r for arm in groups.values() for r in arm]
    weights = paired.item_weights(rng, every, n_boot) if one else None
    base = arms[base_level]
    if target is None:
        base_at = float(np.nanmean(base["at"]))
        target = ref[1] + paired.TARGET_SHARE * (base_at - ref[1])
    out = {}
    for lv, a in arms.items():
        g = _own(a, grid, budget, ref, anchor, weights, target)
        g.update(_versus(a, base, grid, budget, ref, anchor, weights, level))
        if lv == base_level:
            g.update(speedup=1.0, speedup_ci=(1.0, 1.0), speedup_p=math.nan)
        out[lv] = g
    return {
        "groups": out,
        "target": target,
        "grid": grid,
        "level": level,
        "items_resampled": weights is not None,
    }
