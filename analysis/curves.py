"""Reported curves, time to a target, Pareto frontiers and 2-D hypervolume.

A trial's curve is, against cost, the test value of the checkpoint you would hold once you
have paid x: the one best on the validation split so far (a step function). Costs are the
reported x values; nothing is interpolated between reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

FAILED = ("diverged", "failed")  # these never reach a target, whatever they reported


@dataclass(frozen=True)
class Trial:
    """One trial's reports, sorted by step."""

    experiment: str
    trial_id: str
    group: object  # the level of the grouping key
    seed: int
    status: str  # the last reported status ("running" if none)
    x: np.ndarray  # [R] cost at each report, non-decreasing
    best: np.ndarray  # [R] test value of the val-selected checkpoint; NaN before any

    @property
    def final_x(self) -> float:
        return float(self.x[-1])

    @property
    def final_best(self) -> float:
        return float(self.best[-1])


def held_values(val: np.ndarray, test: np.ndarray) -> np.ndarray:
    """[R] the test value of the checkpoint held at each report: the one best on validation
    so far (ties to the newest) among reports with both values; NaN before the first
    evaluation. Never a running maximum over test values. Vectorised (a 1M-row table)."""
    ok = ~np.isnan(val) & ~np.isnan(test)
    v = np.where(ok, val, np.nan)
    best = np.fmax.accumulate(v)  # [R] NaN only before the first evaluation
    where = np.maximum.accumulate(np.where(ok & (v >= best), np.arange(len(v)), -1))
    return np.where(where >= 0, test[np.clip(where, 0, None)], np.nan)


def latest_values(test: np.ndarray) -> np.ndarray:
    """[R] the latest test value at each report, as measured (no selection); NaN before
    the first evaluation."""
    where = np.maximum.accumulate(np.where(~np.isnan(test), np.arange(len(test)), -1))
    return np.where(where >= 0, test[np.clip(where, 0, None)], np.nan)


def trials(
    df: pd.DataFrame, x: str, y: str, by: str | None, select: str | None = None
) -> list[Trial]:
    """Trials (by experiment and trial_id) from a results frame; rows without x are skipped.

    `best` is the reported curve: `y` of the checkpoint best on `select` so far (default
    `y` itself, i.e. selection on the reported split: pass the validation column), or
    "latest": each report's latest test value as measured (paired.LATEST).
    One sort, then array slices per trial (a DataFrame per trial: ~1 ms each).
    """
    select = select or y
    df = df[df[x].notna()].sort_values(["experiment", "trial_id", "step"], kind="stable")
    where = df.groupby(["experiment", "trial_id"], sort=True).indices  # key -> positions
    xs_all = df[x].to_numpy(dtype=float, na_value=np.nan)  # [N]
    ys_all = df[y].to_numpy(dtype=float, na_value=np.nan)
    latest = select == "latest"
    sel_all = None if latest else df[select].to_numpy(dtype=float, na_value=np.nan)
    status_all, status_na = df["status"].to_numpy(dtype=object), df["status"].isna().to_numpy()
    keys = sorted(where)
    last = df.iloc[[where[k][-1] for k in keys]]  # each trial's last report
    out = []
    for i, (exp, tid) in enumerate(keys):
        idx = where[(exp, tid)]
        # A restarted trial may restart its clock; cost spent is never given back.
        xs = np.maximum.accumulate(xs_all[idx])
        stated = idx[~status_na[idx]]
        out.append(
            Trial(
                experiment=str(exp),
                trial_id=str(tid),
                group=last[by].iloc[i] if by else "all",
                seed=int(last["seed"].iloc[i]),
                status=str(status_all[stated[-1]]) if len(stated) else "running",
                x=xs,
                best=latest_values(ys_all[idx])
                if latest
                else held_values(sel_all[idx], ys_all[idx]),
            )
        )
    return out


def step_values(xs: np.ndarray, vals: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Previous-value interpolation: vals at the last xs <= each grid point; NaN before xs[0]."""
    idx = np.searchsorted(xs, grid, side="right") - 1  # [G]
    return np.where(idx >= 0, vals[np.clip(idx, 0, None)], np.nan)


def curve_matrix(
    group: list[Trial], grid: np.ndarray, fill: float = np.nan, carry_to: float = np.inf
) -> np.ndarray:
    """[T, G] best-so-far of each trial on `grid`.

    Before a trial's first value: `fill`. Past `carry_to`: NaN (a curve is not drawn beyond
    what its group ran); up to it a trial that stopped early keeps its final best.
    """
    m = np.stack([step_values(t.x, t.best, grid) for t in group])  # [T, G]
    m = np.where(np.isnan(m), fill, m)
    m[:, grid > carry_to] = np.nan
    return m


def reach_cost(trial: Trial, target: float) -> float:
    """First cost at which the best-so-far reaches `target`; inf if never (or diverged/failed)."""
    if trial.status in FAILED:
        return np.inf
    hit = np.flatnonzero(trial.best >= target)
    return float(trial.x[hit[0]]) if len(hit) else np.inf


def pareto_mask(cost: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """True for the non-dominated points (lower cost and higher accuracy are better).

    A point is dominated if another has cost <= and acc >= with one strict; identical
    points do not dominate each other. Points with NaN are never on the frontier.
    """
    cost, acc = np.asarray(cost, dtype=float), np.asarray(acc, dtype=float)
    ok = ~(np.isnan(cost) | np.isnan(acc))
    keep = np.zeros(len(cost), dtype=bool)
    order = [i for i in np.lexsort((-acc, cost)) if ok[i]]  # cost up, then acc down
    best_before = -np.inf  # best acc among strictly cheaper points
    i = 0
    while i < len(order):
        j = i
        while j < len(order) and cost[order[j]] == cost[order[i]]:
            j += 1
        top = acc[order[i]]  # the best at this cost; only it (and its ties) can survive
        if top > best_before:
            for k in order[i:j]:
                keep[k] = acc[k] == top
        best_before = max(best_before, top)
        i = j
    return keep


def hypervolume(cost: np.ndarray, acc: np.ndarray, ref: tuple[float, float]) -> float:
    """Area dominated by the points and bounded by `ref` = (worst cost, worst acc).

    The union of rectangles [cost, ref_cost] x [ref_acc, acc] (cost minimised, accuracy
    maximised); points beyond the reference contribute nothing.
    """
    cost, acc = np.asarray(cost, dtype=float), np.asarray(acc, dtype=float)
    front = pareto_mask(cost, acc) & (cost <= ref[0]) & (acc > ref[1])
    xs, ys = cost[front], acc[front]
    order = np.argsort(xs)
    xs, ys = xs[order], ys[order]  # on a frontier, acc rises with cost
    edges = np.append(xs, ref[0])
    return float(np.sum(np.diff(edges) * (ys - ref[1])))


def staircase_area(x: np.ndarray, m: np.ndarray, ref: tuple[float, float]) -> np.ndarray:
    """Hypervolume of non-decreasing staircases m [..., K] stepping at x [K] (sorted), to ref.

    Equals `hypervolume` of the corner points (x_k, m_k); vectorised over leading axes for
    bootstrap replicates. Steps past ref[0] are cut; values below ref[1] add nothing.
    """
    x = np.minimum(np.asarray(x, dtype=float), ref[0])
    widths = np.diff(np.append(x, ref[0]))  # [K]
    heights = np.clip(np.nan_to_num(m - ref[1], nan=0.0), 0.0, None)  # [..., K]
    return np.sum(heights * widths, axis=-1)
