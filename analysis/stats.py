"""Small statistics: vectorised bootstrap pieces and Student-t intervals (scipy.stats).

Bootstrap resamples are index arrays [B, n] drawn once and applied to whole matrices, so a
thousand resamples of a [trials, grid] curve matrix is one gather and one sort, not a loop.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as st

LEVEL = 0.95  # every interval here is a 95% one


def nanmedian(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """Median along `axis` ignoring NaN (NaN where all are NaN), by one sort.

    np.nanmedian falls back to slow paths on small axes; sorting puts NaN last, so the
    median of the k finite values sits at ranks (k-1)//2 and k//2. +inf is an ordinary
    value here (a cost never reached enters the median as such).
    """
    s = np.sort(np.moveaxis(np.asarray(a, dtype=float), axis, -1), axis=-1)  # [..., n]
    k = np.sum(~np.isnan(s), axis=-1, keepdims=True)  # [..., 1]
    lo = np.take_along_axis(s, np.maximum((k - 1) // 2, 0), axis=-1)
    hi = np.take_along_axis(s, np.maximum(k // 2, 0), axis=-1)
    with np.errstate(invalid="ignore"):
        # (inf + inf) / 2 stays inf; a finite and an inf middle pair gives inf, as it should.
        med = np.where(lo == hi, lo, (lo + hi) / 2)
    return np.where(k > 0, med, np.nan)[..., 0]


def boot_indices(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """[n_boot, n] indices: each row one resample with replacement of n items."""
    return rng.integers(0, n, size=(n_boot, n))


def interval(boot: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Percentile 95% interval of bootstrap replicates along `axis`, ignoring NaN.

    "nearest" ranks (no interpolation), so replicates that are +inf stay +inf instead of
    turning into NaN by inf - inf.
    """
    alpha = (1 - LEVEL) / 2
    with warnings.catch_warnings():  # all-NaN columns (before any report) stay NaN quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(boot, [alpha, 1 - alpha], axis=axis, method="nearest")
    return lo, hi


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den for costs that may be +inf (never reached): inf/inf -> NaN, x/inf -> 0."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = num / den
    both = np.isinf(num) & np.isinf(den)
    return np.where(both, np.nan, out)


def t_quantile(df: int, level: float = LEVEL) -> float:
    """The two-sided `level` critical value of Student's t (t_{0.975, df} for 95%)."""
    if df < 1:
        raise ValueError(f"t_quantile: df must be >= 1, got {df}")
    return float(st.t.ppf(0.5 + level / 2, df))


def t_interval(values: np.ndarray) -> tuple[float, float, float, int]:
    """(mean, lo, hi, n) of the 95% Student-t interval of the finite values; NaN CI if n < 2."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(v.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = t_quantile(n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n
