"""frontier.py's tables: the arms' mean curves (frontier.csv) and one row per trial."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import common, curves


def curves_frame(out: dict, grid: np.ndarray) -> pd.DataFrame:
    parts = []
    for lv, g in out.items():
        med, (lo, hi) = g["curve"], g["curve_ci"]
        keep = ~np.isnan(med)
        parts.append(
            pd.DataFrame(
                {
                    "group": common.label(lv),
                    "x": grid[keep],
                    "mean": med[keep],
                    "lo": lo[keep],
                    "hi": hi[keep],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def trials_frame(trials: list[curves.Trial], target: float, budget: float) -> pd.DataFrame:
    tf = pd.DataFrame(
        {
            "experiment": [t.experiment for t in trials],
            "trial_id": [t.trial_id for t in trials],
            "group": [common.label(t.group) for t in trials],
            "seed": [t.seed for t in trials],
            "status": [t.status for t in trials],
            "final_x": [t.final_x for t in trials],
            "final_best": [t.final_best for t in trials],
            "reach_cost": [curves.reach_cost(t, target) for t in trials],
            "at_budget": [curves.step_values(t.x, t.best, np.array([budget]))[0] for t in trials],
        }
    )
    # The frontier is over usable models: diverged/failed trials are left off it.
    ok = ~tf["status"].isin(curves.FAILED).to_numpy()
    pareto = np.zeros(len(tf), dtype=bool)
    pareto[ok] = curves.pareto_mask(tf["final_x"].to_numpy()[ok], tf["final_best"].to_numpy()[ok])
    tf["pareto"] = pareto
    return tf
