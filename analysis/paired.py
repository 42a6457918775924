"""Selection on validation, reporting on test, and a paired bootstrap over items and seeds.

At each cost x a trial holds the checkpoint that scored best on the *validation* half so
far (`val_<metric>`, ties to the newest); what is reported is that checkpoint's *test*
value, as measured, never a running maximum over test evaluations. An arm's curve is the
mean over its seeds of that reported value.

Intervals resample the evaluation items (every arm scores the same test items, so one
draw of item weights is shared by all arms: the pairing) and, together, the seeds (arms
with the same seed values share the seed draw too). A one-seed comparison still gets an
interval for its evaluation noise. Without per-item correctness (`zeroshot_items`, 5-class
zero-shot only) only seeds are resampled, and the summary says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import curves, stats
from medflip.evaluation import items as packed_items

ITEMS = {"zeroshot_acc": "zeroshot_items"}
# Default target: this share of the baseline's gain over the reference (chance) at its
# budget. The final accuracy itself sits on the plateau, where the first time a noisy
# curve touches it is mostly noise (and earlier for arms evaluated more often).
TARGET_SHARE = 0.9  # metric -> its per-item correctness column


@dataclass
class Run:
    """One trial's evaluations (reports without an evaluation dropped), sorted by cost."""

    trial: curves.Trial  # ids, group, seed, status
    x: np.ndarray  # [R] cost at each evaluation
    test: np.ndarray  # [R] the reported (test) metric
    sel: np.ndarray  # [R] index of the checkpoint held at each evaluation (val-selected)
    # [R, N] per-item test correctness (1/0); NaN past a curve point's prefix
    # (eval.curve_items: cheap points score the first items of the full set), or None
    correct: np.ndarray | None


def held(val: np.ndarray) -> np.ndarray:
    """[R] index of the best validation value so far at each evaluation, ties to the newest
    (0 before any). Vectorised: a 1M-row table is a million of these."""
    best = np.fmax.accumulate(val)  # [R] NaN only before the first value
    record = ~np.isnan(val) & (val >= best)  # a new best or a tie with it
    return np.maximum.accumulate(np.where(record, np.arange(len(val)), 0)).astype(int)


LATEST = "latest"  # no selection: each trial's latest evaluation, as measured


def selection_column(df: pd.DataFrame, y: str, select: str = "auto") -> str:
    """What picks the held checkpoint: `val_<y>` (select "val", or "auto" when the table
    has it), else LATEST (select "latest", or "auto" without a validation metric). Never
    `y` itself: a running maximum over test evaluations is optimistic."""
    val = f"val_{y}"
    has_val = val in df and df[val].notna().any()
    if select == "val" and not has_val:
        raise ValueError(f"--select val: the results have no {val} column")
    return val if has_val and select != LATEST else LATEST


def _padded(cells) -> np.ndarray:
    """[R, N] float correctness from packed cells of possibly different lengths (a curve
    point's prefix and the full set): NaN where a cell has no item."""
    rows = [packed_items.unpack(c) for c in cells]
    out = np.full((len(rows), max(len(r) for r in rows)), np.nan)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def runs(
    df: pd.DataFrame, trials: list[curves.Trial], x: str, y: str, select: str = "auto"
) -> list[Run]:
    """The Run of each trial (same order), selecting on `selection_column(df, y, select)`.

    One sort and one pass of array slices: a DataFrame per trial cost ~1 ms each (10 s at
    10,000 trials)."""
    sel_col, item_col = selection_column(df, y, select), ITEMS.get(y)
    rows = df[df[y].notna() & df[x].notna()]
    rows = rows.sort_values(["experiment", "trial_id", "step"], kind="stable")
    where = rows.groupby(["experiment", "trial_id"], sort=False).indices  # key -> positions
    xs_all = rows[x].to_numpy(dtype=float)  # [N]
    test_all = rows[y].to_numpy(dtype=float)
    val_all = None if sel_col == LATEST else rows[sel_col].to_numpy(dtype=float, na_value=np.nan)
    packed = rows[item_col].to_numpy(dtype=object) if item_col in rows else None
    none = np.array([], dtype=int)
    out = []
    for t in trials:
        idx = where.get((t.experiment, t.trial_id), none)
        correct = None
        if packed is not None and len(idx) and not pd.isna(packed[idx]).any():
            correct = _padded(packed[idx])  # [R, N]
        xs = np.maximum.accumulate(xs_all[idx]) if len(idx) else xs_all[idx]
        sel = np.arange(len(idx)) if val_all is None else held(val_all[idx])
        out.append(Run(t, xs, test_all[idx], sel, correct))
    return out


def item_weights(rng, runs_: list[Run], n_boot: int) -> np.ndarray | None:
    """[B, N] multinomial item counts shared by every run, or None (no items to resample).
    N is the largest set scored; a run scored on a prefix uses the first columns."""
    sizes = {r.correct.shape[1] for r in runs_ if r.correct is not None}
    if not sizes or any(r.correct is None for r in runs_ if len(r.x)):
        return None
    n = max(sizes)
    return rng.multinomial(n, np.full(n, 1 / n), size=n_boot).astype(float) / n


def reported(run: Run, weights: np.ndarray | None) -> np.ndarray:
    """[B, R] (or [1, R]) the held checkpoint's test value at each evaluation, per resample."""
    if len(run.x) == 0:
        return np.full((1 if weights is None else len(weights), 0), np.nan)
    if weights is None or run.correct is None:
        return run.test[run.sel][None, :]
    c = run.correct  # [R, n], NaN past a prefix
    w = weights[:, : c.shape[1]]  # [B, n]: the same items' weights as every other run's
    num, den = w @ np.nan_to_num(c).T, w @ (~np.isnan(c)).T  # [B, R]
    with np.errstate(invalid="ignore", divide="ignore"):  # a draw without the prefix: NaN
        return (num / den)[:, run.sel]


def on_grid(
    run: Run, rep: np.ndarray, grid: np.ndarray, carry_to: float, failed: float = np.nan
) -> np.ndarray:
    """[B, G] reported value at each grid cost: NaN before the first evaluation and past
    `carry_to` (a run that stopped earlier keeps its final checkpoint up to there); a
    failed/diverged run holds no usable model: `failed` everywhere (chance, in compare)."""
    idx = np.searchsorted(run.x, grid, side="right") - 1  # [G]
    if len(run.x) == 0 or run.trial.status in curves.FAILED:
        return np.full((rep.shape[0], len(grid)), failed)
    vals = rep[:, np.clip(idx, 0, None)]
    vals[:, (idx < 0) | (grid > carry_to)] = np.nan
    return vals


_BLOCK = 2**24  # elements of one [T, b, G] block of per-resample curves (128 MB)


def resample_counts(seed_idx: np.ndarray, n: int) -> np.ndarray:
    """[B, n] how often each of n runs is drawn in each resample of seed_idx [B, K]."""
    b = len(seed_idx)
    flat = (np.arange(b)[:, None] * n + seed_idx).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(float)


def arm_curves(arm: list[Run], reps, grid, seed_idx, carry_to, failed) -> np.ndarray:
    """[B, G] mean over (resampled) seeds of the runs' reported curves, drawn up to the
    arm's longest run or `carry_to`, whichever is later.

    The mean of a resample is a count-weighted mean over the arm's runs (NaN ignored):
    the [B, K, G] array of picked curves is never built (2,000 seeds x 1,000 resamples x
    750 costs is 12 GB, which got frontier.py killed on a 1M-row table)."""
    span = max([r.trial.final_x for r in arm] + [carry_to])
    counts = np.ones((1, len(arm))) if seed_idx is None else resample_counts(seed_idx, len(arm))
    per_rep = max(rep.shape[0] for rep in reps)  # 1: one curve per run for every resample
    b = max(per_rep, len(counts))
    step = b if per_rep == 1 else max(1, _BLOCK // max(1, len(arm) * len(grid)))
    out = np.empty((b, len(grid)))
    for lo in range(0, b, step):
        hi = min(b, lo + step)
        m = np.stack(
            [
                on_grid(r, rep if len(rep) == 1 else rep[lo:hi], grid, span, failed)
                for r, rep in zip(arm, reps, strict=True)
            ]
        )  # [T, 1 or hi-lo, G]
        w = np.broadcast_to(counts if len(counts) == 1 else counts[lo:hi], (hi - lo, len(arm)))
        ok = ~np.isnan(m)
        if m.shape[1] == 1:
            num, den = w @ np.where(ok, m, 0.0)[:, 0], w @ ok[:, 0]  # [b, G]
        else:
            num = np.einsum("bt,tbg->bg", w, np.where(ok, m, 0.0))
            den = np.einsum("bt,tbg->bg", w, ok.astype(float))
        with np.errstate(invalid="ignore", divide="ignore"):  # nobody evaluated yet: NaN
            out[lo:hi] = np.where(den > 0, num / den, np.nan)
    return out


def first_reach(grid: np.ndarray, curve: np.ndarray, target: float) -> np.ndarray:
    """[B] first grid cost where curve [B, G] >= target; inf when never."""
    hit = curve >= target - 1e-12
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    return np.where(first >= 0, grid[np.clip(first, 0, None)], np.inf)


def area(grid: np.ndarray, curve: np.ndarray, ref: tuple[float, float]) -> np.ndarray:
    """[B] area between curve [B, G] (steps at the grid) and the reference accuracy."""
    widths = np.diff(np.append(grid, ref[0]))
    return np.sum(np.clip(np.nan_to_num(curve - ref[1], nan=0.0), 0, None) * widths, axis=-1)


def prob_improvement(a: np.ndarray, b: np.ndarray) -> float:
    """rliable's P(X > Y): share of (run of a, run of b) pairs where a wins, ties 1/2."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return np.nan
    d = a[:, None] - b[None, :]
    return float(np.mean((d > 0) + 0.5 * (d == 0)))


def ci(boot: np.ndarray) -> tuple[float, float]:
    lo, hi = stats.interval(np.asarray(boot, dtype=float))
    return float(lo), float(hi)


def _seed_draws(rng, groups: dict, base_level, n_boot: int) -> dict:
    """[B, K] seed-index resamples per group; groups with the baseline's seeds share its draw
    (seed s of every arm is resampled together: the same data order and initialisation)."""
    base_seeds = sorted(r.trial.seed for r in groups[base_level])
    shared = rng.integers(0, len(base_seeds), size=(n_boot, len(base_seeds)))
    out = {}
    for lv, arm in groups.items():
        seeds = sorted(r.trial.seed for r in arm)
        out[lv] = shared if seeds == base_seeds else rng.integers(0, len(arm), (n_boot, len(arm)))
    return out


def compare(groups: dict, base_level, grid, budget, target, ref, n_boot: int, seed: int) -> dict:
    """Per group: reported curve, accuracy at `budget`, its paired difference from the
    baseline and P(improvement), the cost to reach `target` and the speedup, the area under
    the curve, each with a 95% paired-bootstrap interval (items x seeds).

    `groups` maps level -> [Run]; `target` None = TARGET_SHARE of the baseline's gain over
    the reference accuracy at `budget`.
    """
    rng = np.random.default_rng(seed)
    every = [r for arm in groups.values() for r in arm]
    weights = item_weights(rng, every, n_boot)
    draws = _seed_draws(rng, groups, base_level, n_boot)
    at = np.searchsorted(grid, budget, side="right") - 1  # the grid point of the budget
    point, boot = {}, {}
    for lv, arm in groups.items():
        arm = sorted(arm, key=lambda r: r.trial.seed)
        point[lv] = arm_curves(  # [G]
            arm, [reported(r, None) for r in arm], grid, None, budget, ref[1]
        )[0]
        boot[lv] = arm_curves(  # [B, G]
            arm, [reported(r, weights) for r in arm], grid, draws[lv], budget, ref[1]
        )
        if weights is None and len(arm) < 2:  # nothing to resample: no interval
            boot[lv] = np.full_like(boot[lv], np.nan)
    if target is None:  # on the rising part of the curve, where a time to reach it is defined
        target = ref[1] + TARGET_SHARE * (float(point[base_level][at]) - ref[1])
    per_seed = {lv: _per_seed_at(groups[lv], budget) for lv in groups}
    base_reach = first_reach(grid, boot[base_level], target)
    out = {}
    for lv in groups:
        reach_pt = float(first_reach(grid, point[lv][None], target)[0])
        base_pt = float(first_reach(grid, point[base_level][None], target)[0])
        diff = boot[lv][:, at] - boot[base_level][:, at]
        out[lv] = {
            "curve": point[lv],
            "curve_ci": stats.interval(boot[lv], axis=0),
            "acc_at_budget": float(point[lv][at]),
            "acc_at_budget_ci": ci(boot[lv][:, at]),
            "diff": float(point[lv][at] - point[base_level][at]),
            "diff_ci": ci(diff),
            "p_improvement": prob_improvement(per_seed[lv], per_seed[base_level]),
            "p_diff_positive": float(np.mean(diff > 0)),
            "reach": reach_pt,
            "speedup": float(stats.ratio(base_pt, reach_pt)),
            "speedup_ci": ci(stats.ratio(base_reach, first_reach(grid, boot[lv], target))),
            "reached": _reached(groups[lv], grid, target),
            "hypervolume": float(area(grid, point[lv][None], ref)[0]),
            "seeds": sorted(r.trial.seed for r in groups[lv]),
            "hypervolume_ci": ci(area(grid, boot[lv], ref)),
        }
    return {"groups": out, "target": target, "items_resampled": weights is not None}


def _per_seed_at(arm: list[Run], budget: float) -> np.ndarray:
    """[T] each run's reported value at `budget` (NaN if it has none)."""
    vals = []
    for r in arm:
        idx = np.searchsorted(r.x, budget, side="right") - 1
        ok = idx >= 0 and r.trial.status not in curves.FAILED
        vals.append(r.test[r.sel[idx]] if ok else np.nan)
    return np.array(vals, dtype=float)


def _reached(arm: list[Run], grid: np.ndarray, target: float) -> str:
    """'k/n': runs whose own reported curve reaches `target` (failed ones never do)."""
    hits = [
        r.trial.status not in curves.FAILED
        and np.isfinite(first_reach(grid, on_grid(r, reported(r, None), grid, np.inf), target)[0])
        for r in arm
    ]
    return f"{sum(hits)}/{len(arm)}"
