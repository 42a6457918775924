"""What a frontier compares at and what it cost: the equal-time budget, the test items
scored, and the sweep's true cost next to the winning recipe's (analysis/frontier.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import common, curves


def test_items(df: pd.DataFrame, y: str) -> str:
    """How many test items each evaluation scored ('' when the table does not say)."""
    if y != "zeroshot_acc" or "zeroshot_n" not in df:
        return ""
    ns = sorted(int(n) for n in df["zeroshot_n"].dropna().unique())
    if len(ns) == 2:
        return f"{ns[0]} at curve points (eval.curve_items), {ns[1]} at each trial's last"
    return ", ".join(map(str, ns))


# x axis -> (the config key that budgets it, its unit in words)
BUDGET_KEYS = {
    "train_time_s": ("optim.time_budget_s", "training s"),
    "train_flops": ("optim.flops_budget", "training FLOPs"),
}


def equal_time_budget(df: pd.DataFrame, x: str, groups: dict, base_level) -> tuple[float, str]:
    """The cost at which arms are compared ("at equal time").

    When every trial ran the same budget on the x axis (`optim.time_budget_s` on training
    time, `optim.flops_budget` on training FLOPs), each stops at its first step past it, so
    final costs spread over one step (a masked step is shorter): the budget is the latest
    final cost, so every run's final evaluation counts (the baseline gets at most one step
    more: conservative). Otherwise the baseline's median final cost. Returns (budget, the
    rule in words).
    """
    key, unit = BUDGET_KEYS.get(x, ("", ""))
    nominal = df[key].dropna().unique() if key in df else []
    finals = [r.trial.final_x for arm in groups.values() for r in arm if len(r.x)]
    if len(nominal) == 1 and nominal[0] > 0 and min(finals) >= nominal[0]:
        rule = f"the latest final cost of trials all budgeted {nominal[0]:g} {unit}"
        return float(max(finals)), rule
    median = float(np.median([r.trial.final_x for r in groups[base_level]]))
    return median, "the baseline's median final cost"


def true_cost(df: pd.DataFrame, trials: list[curves.Trial], summary: dict) -> dict:
    """What the sweep held in total (held_time_s: start-up, evaluation, retries, stopped
    trials) next to its training time, and what the winning arm costs to train."""
    last = df.groupby(["experiment", "trial_id"]).agg(
        held=("held_time_s", "max"),
        train=("train_time_s", "max"),
        dev=("device_hours", "max"),
        workers=("num_workers", "max"),
    )
    per_s = (last["dev"] / last["train"]).where(last["train"] > 0)  # device-hours per second
    per_s = per_s.fillna(last["workers"].astype(float).fillna(1.0) / 3600)
    groups = summary["groups"]
    winner = max(
        groups,
        key=lambda k: (
            -np.inf if np.isnan(groups[k]["acc_at_budget"]) else groups[k]["acc_at_budget"]
        ),
    )
    won = [(t.experiment, t.trial_id) for t in trials if common.label(t.group) == winner]
    return {
        "trials": len(last),
        "trials_without_held": int(last["held"].isna().sum()),
        "held_device_hours": float((last["held"] * per_s).sum(min_count=1)),
        "train_device_hours": float(last["dev"].sum(min_count=1)),
        "winner": winner,
        "winner_train_device_hours": float(last.loc[won, "dev"].mean()),
    }
