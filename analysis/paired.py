"""Selection on validation, reporting on test, and each run's curve between evaluations.

At each cost x a trial holds the checkpoint that scored best on the *validation* half so
far (`val_<metric>`, ties to the newest), or (`latest`) its latest evaluation; what is
reported is that checkpoint's *test* value, as measured, never a running maximum over test
evaluations. Which rule runs by default is `selection_rule`'s (shared by frontier.py,
report.py and ablation.py).

Between evaluations a run's curve is interpolated (monotone cubic, from chance at cost 0
when the metric has one): holding the last value made a curve lag by half an evaluation
interval, so an arm evaluated 4x as often looked 1.34x faster on the same truth.
Intervals are over seeds (analysis/inference.py); the per-item correctness is resampled
only where an arm has one seed, and then the interval says it holds evaluation noise only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.interpolate import PchipInterpolator

from analysis import curves
from medflip.evaluation import items as packed_items

ITEMS = {"zeroshot_acc": "zeroshot_items"}  # metric -> its per-item correctness column
# Default target: this share of the baseline's gain over the reference (chance) at its
# budget. The final accuracy itself sits on the plateau, where the first time a noisy
# curve touches it is mostly noise (and earlier for arms evaluated more often).
TARGET_SHARE = 0.9
# Selecting a checkpoint on validation needs a validation score steadier than the gains
# between checkpoints: with n items its SE is ~50/sqrt(n) points (11 at the demo's 20, when
# a curve gains ~2-5 points an evaluation late in training); 200 items (3.5 points) is
# the least that selects on signal rather than on noise.
MIN_VAL_ITEMS = 200


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


def selection_rule(df: pd.DataFrame, y: str, select: str = "auto") -> tuple[str, str]:
    """(what picks the held checkpoint, why): `val_<y>` or LATEST.

    "val" / "latest" as asked; "auto" (the default of frontier.py, report.py, ablation.py):
    validation when the table has `val_<y>` and its evaluations score at least
    MIN_VAL_ITEMS validation items (`eval.val_items`, 0 = the whole validation half), else
    each trial's latest evaluation. Never `y` itself: a running maximum over test
    evaluations is optimistic."""
    val = f"val_{y}"
    has_val = val in df and df[val].notna().any()
    if select == "val" and not has_val:
        raise ValueError(f"--select val: the results have no {val} column")
    if select == "val":
        return val, "--select val"
    if select == LATEST:
        return LATEST, "--select latest"
    if not has_val:
        return LATEST, f"auto: the table has no {val}"
    n = df["eval.val_items"].dropna() if "eval.val_items" in df else pd.Series([], dtype=float)
    small = int(n[n > 0].min()) if (n > 0).any() else 0
    if small and small < MIN_VAL_ITEMS:
        return LATEST, (
            f"auto: validation scores {small} items per evaluation (eval.val_items), fewer "
            f"than {MIN_VAL_ITEMS}: selecting on it (SE ~{50 / small**0.5:.0f} points) would "
            "pick checkpoints by noise"
        )
    what = f"{small} items" if small else "the whole validation half"
    return val, f"auto: validation scores {what} per evaluation (>= {MIN_VAL_ITEMS} needed)"


def selection_column(df: pd.DataFrame, y: str, select: str = "auto") -> str:
    """The column of `selection_rule` (without the reason)."""
    return selection_rule(df, y, select)[0]


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


def n_items(run: Run) -> np.ndarray | None:
    """[R] test items scored at each evaluation (the weights of a monotone fit), or None."""
    return None if run.correct is None else (~np.isnan(run.correct)).sum(axis=1).astype(float)


def curve(
    run: Run, rep: np.ndarray, grid: np.ndarray, carry_to: float, anchor, failed: float
) -> np.ndarray:
    """[B, G] reported value at each grid cost, interpolated between evaluations (and from
    `anchor` at cost 0, when not None; NaN before the first evaluation otherwise), the
    final value held up to `carry_to`, NaN past it. A failed/diverged run holds no usable
    model: `failed` (chance) everywhere.

    Interpolation is monotone cubic (PCHIP, Fritsch & Carlson 1980): a chord sags below a
    concave learning curve, by more for the arm evaluated less often (measured: the area
    interval of an arm evaluated 4x as often held "no difference" in 91.7 % with chords,
    short of 95 %); PCHIP stays within each segment's end values, so a noisy point adds
    no overshoot."""
    if len(run.x) == 0 or run.trial.status in curves.FAILED:
        return np.full((rep.shape[0], len(grid)), failed)
    xs, vals = run.x, rep
    if anchor is not None and xs[0] > 0:
        xs = np.append(0.0, xs)
        vals = np.hstack([np.full((len(rep), 1), anchor), rep])
    keep = np.append(np.diff(xs) > 0, True)  # a repeated cost (a restart): its last value
    xs, vals = xs[keep], vals[:, keep]
    inside = np.clip(grid, xs[0], xs[-1])
    if len(xs) == 1:
        out = np.repeat(vals, len(grid), axis=1)
    else:
        out = PchipInterpolator(xs, vals, axis=1)(inside)
    out[:, (grid < xs[0]) | (grid > carry_to)] = np.nan
    return out


def first_reach(grid: np.ndarray, curve_: np.ndarray, target: float) -> np.ndarray:
    """[B] cost where curve [B, G] first reaches `target`, interpolated linearly between
    grid points (the curve is linear there); inf when never."""
    hit = curve_ >= target - 1e-12
    first = np.where(hit.any(axis=1), hit.argmax(axis=1), -1)
    out = np.full(len(curve_), np.inf)
    for b in np.flatnonzero(first >= 0):
        k = first[b]
        if k == 0 or not np.isfinite(curve_[b, k - 1]):
            out[b] = grid[k]
            continue
        y0, y1 = curve_[b, k - 1], curve_[b, k]
        out[b] = grid[k - 1] + (grid[k] - grid[k - 1]) * (target - y0) / (y1 - y0)
    return out


def area(grid: np.ndarray, curve_: np.ndarray, ref: tuple[float, float]) -> np.ndarray:
    """[B] area between curve [B, G] and the reference accuracy up to ref[0] (trapezoids:
    exact for the linear curve where the grid holds every evaluation; NaN counts 0)."""
    keep = grid <= ref[0]
    h = np.clip(np.nan_to_num(curve_[:, keep] - ref[1], nan=0.0), 0, None)
    return np.trapezoid(h, grid[keep], axis=-1) if keep.sum() > 1 else np.zeros(len(curve_))


def prob_improvement(a: np.ndarray, b: np.ndarray) -> float:
    """rliable's P(X > Y): share of (run of a, run of b) pairs where a wins, ties 1/2."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return np.nan
    d = a[:, None] - b[None, :]
    return float(np.mean((d > 0) + 0.5 * (d == 0)))
