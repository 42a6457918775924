"""Intervals, tests, multiplicity and power on per-seed values: each seed is one replicate.

Every figure the analysis reports is a mean over seeds of one number per run (its accuracy
at equal time, its area over chance, the log time-scaling of its curve against the
baseline's run of the same seed). A run's number carries its own evaluation noise (its
Bernoulli draws on the test items) and its seed's variation (data order, initialisation),
so the paired difference d_s = arm_s - base_s of seed s carries every source of noise
once, and d_1..d_K are independent: the Student-t interval on their mean (Student 1908;
the paired design, Montgomery, *Design and Analysis of Experiments*, 9th ed., sec. 2.5.3)
holds its level at any K >= 2 when the d_s are near normal. The test items are shared by
every run, so a fixed item's difficulty cancels in d_s (the pairing) instead of entering
twice, which is what resampling items and seeds as two crossed factors did (99.5 %
coverage where items dominate). A percentile bootstrap over K = 3 seeds has 10 distinct
resamples and covers ~75-80 % (Efron & Tibshirani 1993, ch. 13 and 14: percentile
intervals are too narrow at small n); the t quantile (4.30 at 2 df) is what pays for
estimating the spread from 3 values. tests/test_stats_coverage.py measures the level on an
item-response model.

Several arms against one baseline are a family: verdicts use Holm's step-down adjustment
(Holm 1979, statsmodels.stats.multitest), which controls the family-wise error at 5 % for
any choice of the arm a claim names; the intervals printed beside them are Bonferroni
simultaneous ones (Holm has no matching intervals). Power is the noncentral-t power of the
one-sample (paired) t test (statsmodels.stats.power.TTestPower).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
from scipy import stats as st
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

LEVEL = 0.95
POWER = 0.8
MIN_SEEDS = 2  # a spread needs two values: below this there is no seed-level interval


def t_mean(values: np.ndarray, level: float = LEVEL) -> dict:
    """Mean, t interval and two-sided p (mean = 0) over the last axis, finite values only.

    Vectorised over leading axes (a simulation's replications). n < 2: NaN interval and p;
    a zero spread: a zero-width interval and p 0 (or 1 when the mean is 0)."""
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    n = ok.sum(axis=-1)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(np.where(ok, v, np.nan), axis=-1)
        sd = np.nanstd(np.where(ok, v, np.nan), axis=-1, ddof=1)
        se = sd / np.sqrt(n)
        df = np.where(n >= MIN_SEEDS, n - 1, np.nan)
        half = st.t.ppf(0.5 + level / 2, df) * se
        tstat = np.where(se > 0, mean / se, np.where(mean == 0, 0.0, np.inf))
        p = np.where(n >= MIN_SEEDS, 2 * st.t.sf(np.abs(tstat), df), np.nan)
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "p": p, "n": n, "sd": sd}


def welch(a: np.ndarray, b: np.ndarray, level: float = LEVEL) -> dict:
    """mean(a) - mean(b) with Welch's interval and p, for arms that do not share seeds."""
    a, b = (np.asarray(v, dtype=float) for v in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    mean = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if min(len(a), len(b)) < MIN_SEEDS:
        return {"mean": mean, "lo": math.nan, "hi": math.nan, "p": math.nan, "sd": math.nan}
    with warnings.catch_warnings():  # two constant samples: scipy warns, returns NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        res = st.ttest_ind(a, b, equal_var=False)
        lo, hi = res.confidence_interval(level)
    sd = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)) * math.sqrt(len(a))
    return {"mean": mean, "lo": float(lo), "hi": float(hi), "p": float(res.pvalue), "sd": sd}


def holm(pvalues) -> np.ndarray:
    """Holm-adjusted p-values of a family (NaN stays NaN and is no member)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=1 - LEVEL, method="holm")[1]
    return out


def family_level(m: int) -> float:
    """The Bonferroni level of each of m simultaneous intervals (0.95 for one)."""
    return 1 - (1 - LEVEL) / max(1, m)


def detectable(sd: float, n: int, power: float = POWER) -> float:
    """The smallest true mean difference a two-sided 5 % paired t test over n seeds finds
    with `power`, for per-seed differences of spread sd (NaN below 2 seeds)."""
    if n < MIN_SEEDS or not np.isfinite(sd):
        return math.nan
    return _effect_size(int(n), power) * float(sd)


@functools.lru_cache(maxsize=64)
def _effect_size(n: int, power: float) -> float:
    """Cohen's d a paired t test over n seeds detects with `power` (a root search)."""
    return float(TTestPower().solve_power(nobs=n, alpha=1 - LEVEL, power=power))


def seeds_needed(delta: float, sd: float, power: float = POWER) -> int:
    """Seeds per arm for a paired t test to detect `delta` with `power` (at least 2)."""
    n = TTestPower().solve_power(effect_size=delta / sd, alpha=1 - LEVEL, power=power)
    return max(MIN_SEEDS, math.ceil(float(np.atleast_1d(n)[0])))


def verdict(lo: float, hi: float, p_adj: float, n: int) -> str:
    """A claim's verdict from its effect (positive = as claimed): confirmed / refuted when
    the family-adjusted p < 5 %, in the claimed or the other direction; never below 2 seeds."""
    if n < MIN_SEEDS:
        return f"cannot tell ({n} seed{'' if n == 1 else 's'})"
    if not np.isfinite(p_adj) or not (np.isfinite(lo) and np.isfinite(hi)):
        return "cannot tell (no interval)"
    if p_adj < 1 - LEVEL:
        return "confirmed" if lo + hi > 0 else "refuted"
    return "cannot tell"
