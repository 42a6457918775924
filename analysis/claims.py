"""The verdict on a paper's claim: which arm it is about, adjusted for the arms beside it.

Picking the arm with the best *test* accuracy and testing it with an unadjusted interval
is the winner's curse: of 5 identical arms, one "confirmed" the claim in 12 % of runs
against 2.5 % nominal. Here the claim names its arm (pre-specified, as the paper states
it) or the arm is chosen on the *validation* half, and the verdict uses Holm's step-down
p-value over every non-baseline arm of the section (Holm 1979): the family-wise error of
any "confirmed" or "refuted" stays <= 5 % whichever arm is named
(tests/test_stats_multiplicity.py measures it with 7 identical arms).

Fig. 3's claim, "at least as good with less data", is non-inferiority: confirmed when at
every data fraction the masked arm's one-sided 95 % lower bound of the paired difference
lies above -margin (an intersection-union test needs no adjustment: Berger 1982), refuted
when at some fraction it is worse than -margin (Holm over fractions). The masking x
fraction interaction is an OLS two-way model on each run's value at equal time
(statsmodels; seeds as blocks where they are shared), its F test on the interaction.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats as st
from statsmodels.stats.anova import anova_lm

from analysis import inference

MARGIN = 0.02  # Fig. 3's non-inferiority margin: 2 points of accuracy (--margin)


def family(effects: dict, claim_level: str) -> dict:
    """The claim's verdict. effects: level -> (lo, hi, p, n) of each non-baseline arm's
    effect (positive = as claimed); claim_level: the arm the claim is about."""
    levels = list(effects)
    adjusted = inference.holm([effects[lv][2] for lv in levels])
    p_adj = dict(zip(levels, adjusted, strict=True))
    lo, hi, _, n = effects[claim_level]
    return {
        "about": claim_level,
        "p_adjusted": float(p_adj[claim_level]),
        "family": len(levels),
        "verdict": inference.verdict(lo, hi, p_adj[claim_level], n),
    }


def on_validation(df: pd.DataFrame, key: str, x: str, y: str, budget: float, levels) -> str | None:
    """The level whose runs' best validation value by `budget` is highest on average (None
    without a validation column): the claimed arm, chosen without looking at test."""
    val = f"val_{y}"
    if val not in df or not df[val].notna().any():
        return None
    rows = df[df[x] <= budget]
    best = rows.groupby(["experiment", "trial_id"]).agg(level=(key, "last"), v=(val, "max"))
    means = best.groupby(best["level"].map(str))["v"].mean()
    means = means[[lv for lv in levels if lv in means.index]]
    return None if means.dropna().empty else str(means.idxmax())


def non_inferiority(diffs: dict, margin: float) -> dict:
    """diffs: fraction -> (mean, sd, n) of the paired per-seed difference masked - unmasked.

    Confirmed when every fraction rejects 'diff <= -margin' at 5 % one-sided; refuted when
    some fraction rejects 'diff >= -margin' after Holm over fractions; else cannot tell."""
    p_ni, p_worse, n_min = [], [], min(d[2] for d in diffs.values())
    for mean, sd, n in diffs.values():
        if n < inference.MIN_SEEDS or not np.isfinite(sd):
            p_ni.append(math.nan)
            p_worse.append(math.nan)
            continue
        se = sd / math.sqrt(n)
        t = (mean + margin) / se if se > 0 else math.copysign(math.inf, mean + margin)
        p_ni.append(float(st.t.sf(t, n - 1)))
        p_worse.append(float(st.t.cdf(t, n - 1)))
    worse = inference.holm(p_worse)
    if n_min < inference.MIN_SEEDS:
        verdict = f"cannot tell ({n_min} seed{'' if n_min == 1 else 's'})"
    elif all(np.isfinite(p) and p < 1 - inference.LEVEL for p in p_ni):
        verdict = "confirmed"
    elif np.nanmin(np.append(worse, np.inf)) < 1 - inference.LEVEL:
        verdict = "refuted"
    else:
        verdict = "cannot tell"
    return {"verdict": verdict, "p_noninferior": p_ni, "p_worse_holm": worse.tolist()}


def interaction(runs: pd.DataFrame) -> float:
    """p of the masking x fraction interaction: runs has columns acc, arm, fraction, seed."""
    if runs["fraction"].nunique() < 2 or runs["arm"].nunique() < 2 or len(runs) < 6:
        return math.nan
    blocks = " + C(seed)" if runs.groupby(["arm", "fraction"])["seed"].nunique().min() > 1 else ""
    fit = smf.ols(f"acc ~ C(arm) * C(fraction){blocks}", data=runs).fit()
    table = anova_lm(fit, typ=2)
    row = [i for i in table.index if ":" in i]
    return float(table.loc[row[0], "PR(>F)"]) if row else math.nan
