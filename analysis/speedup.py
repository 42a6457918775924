"""The speedup as a time-scaling fitted over the whole curve: acc_arm(t) ~ acc_base(kappa t).

A time to reach one target uses one crossing of a noisy curve: the first time a 60-item
curve point touches the target is mostly noise, snaps to the evaluation grid and is
undefined when a resample never gets there (that gave [0.52, 5.18] for a true 2x at 3
seeds). Fitting the scaling over the curves' overlap uses every evaluation instead, the
way learning-curve extrapolation and "time to accuracy" comparisons align curves (Domhan
et al. 2015; Coleman et al. 2017, DAWNBench, for why one threshold crossing is fragile).

Per seed s, kappa_s minimises the mean squared gap between the arm's run and the
baseline's run of the same seed, each a monotone fit of its evaluations (`monotone`)
interpolated by PCHIP (from chance at t = 0 when the metric has one), compared
symmetrically at reference times u: A(u / sqrt(kappa)) against B(u sqrt(kappa)), u over
the overlap of both curves, so swapping the arms maps kappa to 1 / kappa. The minimum is
found on a grid of log2 kappa in [-4, 4] (steps of 1/32: 1 and 2 are grid points) and
refined by the parabola through the best grid point and its neighbours. kappa is finite
whenever both runs were evaluated: an arm that never improves sits at the grid's edge
(1/16). The arm's speedup is the geometric mean of kappa_s with the t interval of mean log
kappa_s (analysis/inference.py).
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator
from scipy.optimize import isotonic_regression

LOG2_GRID = np.arange(-128, 129) / 32  # log2 kappa: 1/16 .. 16
_Q = (np.arange(64) + 0.5) / 64  # where in the overlap the curves are compared
_CHUNK = 128  # curves per block: [chunk, grid, Q] floats stay ~34 MB


def _knots(x: np.ndarray, y: np.ndarray, anchor: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Knots [n] and values [P, n] with (0, anchor) prepended when the curve has one."""
    y = np.atleast_2d(np.asarray(y, dtype=float))
    x = np.asarray(x, dtype=float)
    if anchor is None or x[0] <= 0:
        return x, y
    return np.append(0.0, x), np.hstack([np.full((len(y), 1), anchor), y])


def _interp(x: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Values [P, *at.shape] of P curves sharing knots x by monotone cubic (PCHIP)
    interpolation: a chord sags below a concave learning curve by f'' h^2 / 8 (3 points for
    the demo's 35 s grid on a curve rising over 45 s), and the sparser curve would look
    slower; PCHIP keeps each segment within its end values, so a noisy point adds no
    overshoot. Held flat past either end (callers stay inside)."""
    if len(x) < 2:
        return np.broadcast_to(y[:, :1, None], (len(y), *at.shape)).copy()
    f = PchipInterpolator(x, y, axis=1, extrapolate=False)
    return f(np.clip(at, x[0], x[-1]))


def _losses(xa, ya, xb, yb) -> np.ndarray:
    """[P, grid] mean squared gap at each kappa of LOG2_GRID (inf without overlap)."""
    root = 2.0 ** (LOG2_GRID / 2)  # sqrt(kappa) [Kg]
    lo = np.maximum(xa[0] * root, xb[0] / root)  # the overlap in reference time u
    hi = np.minimum(xa[-1] * root, xb[-1] / root)
    u = lo[:, None] + _Q[None, :] * (hi - lo)[:, None]  # [Kg, Q]
    gap = _interp(xa, ya, u / root[:, None]) - _interp(xb, yb, u * root[:, None])
    loss = np.mean(gap**2, axis=-1)  # [P, Kg]
    return np.where((hi > lo)[None, :], loss, np.inf)


def _refine(loss: np.ndarray) -> np.ndarray:
    """[P] log2 kappa: the grid minimum moved to the vertex of its parabola (<= half a step)."""
    k = np.argmin(loss, axis=1)
    inner = np.clip(k, 1, loss.shape[1] - 2)
    rows = np.arange(len(loss))
    a, b, c = (loss[rows, inner + j] for j in (-1, 0, 1))
    curv = a - 2 * b + c
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(curv > 0, 0.5 * (a - c) / curv, 0.0)
    edge = (k == 0) | (k == loss.shape[1] - 1) | ~np.isfinite(shift)
    shift = np.where(edge, 0.0, np.clip(shift, -0.5, 0.5))
    best = LOG2_GRID[k] + shift / 32
    return np.where(np.isfinite(loss[rows, k]), best, np.nan)


def monotone(y: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """[P, n] each curve's weighted isotonic (non-decreasing) fit, weights = items scored.

    A 60-item curve point is +-6 points of noise; a learning curve's trend is monotone, and
    the pool-adjacent-violators fit (Barlow et al. 1972; scipy.optimize.isotonic_regression)
    averages the noise of neighbouring points where they disagree, weighting the 1,000-item
    final evaluation 16x a 60-item point (measured: sd of log kappa_s 0.43 -> 0.38)."""
    y = np.atleast_2d(np.asarray(y, dtype=float))
    return np.array([isotonic_regression(row, weights=weights).x for row in y])


def log_kappa(xa, ya, xb, yb, anchor: float | None = None, wa=None, wb=None) -> np.ndarray:
    """[P] natural-log time-scaling of P arm runs against P baseline runs.

    xa [na] / xb [nb]: the evaluation costs each side's runs share; ya [P, na] / yb [P, nb]:
    their reported values (NaN-free); wa / wb: items scored at each evaluation (weights of
    the monotone fit). log kappa > 0: the arm gets there sooner."""
    ya, yb = monotone(ya, wa), monotone(yb, wb)
    xa, ya = _knots(xa, ya, anchor)
    xb, yb = _knots(xb, yb, anchor)
    out = np.empty(len(ya))
    for lo in range(0, len(ya), _CHUNK):
        block = slice(lo, lo + _CHUNK)
        out[block] = _refine(_losses(xa, ya[block], xb, yb[block]))
    return out * np.log(2.0)


def per_seed(arm_runs, base_runs, anchor: float | None) -> np.ndarray:
    """[K] log kappa of each (arm run, baseline run) pair: each run as (x [R], values [R],
    items scored [R] or None)."""
    out = []
    for (xa, ya, wa), (xb, yb, wb) in zip(arm_runs, base_runs, strict=True):
        ok_a, ok_b = np.isfinite(ya), np.isfinite(yb)
        if ok_a.sum() < 1 or ok_b.sum() < 1:
            out.append(np.nan)
            continue
        wa = None if wa is None else wa[ok_a]
        wb = None if wb is None else wb[ok_b]
        lk = log_kappa(xa[ok_a], ya[ok_a], xb[ok_b], yb[ok_b], anchor, wa, wb)
        out.append(float(lk[0]))
    return np.array(out, dtype=float)
