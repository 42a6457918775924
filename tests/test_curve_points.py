"""Cheap curve points (eval.curve_items) in the analysis: prefix rows pair item by item with
full ones, on noisy data an arm evaluated more often gains nothing, and a real gain shows.

The demo scores 60 test items at its curve points and 1,000 at each trial's last
evaluation, and reports each trial's latest evaluation as measured (`--select latest`).
"""

import numpy as np
import pytest
import tables

from analysis import curves, frontier, paired
from medflip.evaluation import items


def _cheap_points(rows: list[dict], m: int) -> list[dict]:
    """Every row but the last keeps only its first m items (a curve point); no val_*."""
    for row in rows:
        correct = items.unpack(row["zeroshot_items"])
        if row is not rows[-1]:
            correct = correct[:m]
            row["zeroshot_items"] = items.pack(correct)
            row["zeroshot_acc"] = float(correct.mean())
        row["zeroshot_n"] = len(correct)
        row.pop("val_zeroshot_acc")
    return rows


def _sweep(gain=0.0, every=(35.0, 17.5), seeds=3, m=60, n_items=1000, seed=0):
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 1.0, n_items)
    out = []
    for s in range(seeds):
        offset = rng.normal(0, 0.01)
        for level, dt, g in ((0.0, every[0], 0.0), (0.5, every[1], gain)):
            xs = np.arange(dt, 280.0 + 1e-9, dt)
            acc = np.clip(tables.rise(xs, 0.6 + g, 90) + offset, 0.05, 0.95)
            rows = tables.noisy_trial(xs, acc, difficulty, rng, level=level, seed=s)
            out.append(_cheap_points(rows, m))
    return tables.table(*out)


def test_a_prefix_row_is_the_weighted_mean_over_its_own_items():
    df = _sweep(seeds=1)
    trials = curves.trials(df, "train_time_s", "zeroshot_acc", "mask.image_ratio", "latest")
    runs = paired.runs(df, trials, "train_time_s", "zeroshot_acc", "latest")
    weights = paired.item_weights(np.random.default_rng(0), runs, 5)  # [5, 1000]
    for run in runs:
        got = paired.reported(run, weights)  # [5, R]
        for r in range(len(run.x)):
            bits = run.correct[r][~np.isnan(run.correct[r])]  # this row's own items
            for b in range(5):
                w = weights[b, : len(bits)]
                assert got[b, r] == pytest.approx(float((w * bits).sum() / w.sum()))
        assert (run.sel == np.arange(len(run.x))).all()  # latest: no selection


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cheap_points_and_an_arm_evaluated_twice_as_often_gain_nothing(seed):
    s = frontier.analyse(_sweep(seed=seed), by="mask.image_ratio", n_boot=1000)["summary"]
    assert s["selected_on"] == "latest" and not s["items_resampled"]  # t over 3 seeds
    assert s["test_items"].startswith("60 at curve points") and "1000" in s["test_items"]
    base, often = s["groups"]["0"], s["groups"]["0.5"]
    (lo, hi), (blo, bhi) = often["acc_at_budget_ci"], base["acc_at_budget_ci"]
    assert lo <= bhi and blo <= hi
    assert often["diff_ci"][0] <= 0 <= often["diff_ci"][1], often["diff_ci"]
    assert often["speedup_ci"][0] <= 1 <= often["speedup_ci"][1], often["speedup_ci"]
    # At equal time the final evaluations count (1,000 items: width ~0.07 under this noise
    # model, every evaluation an independent draw); the 60-item points would give ~0.25.
    assert often["diff_ci"][1] - often["diff_ci"][0] < 0.1


def test_a_real_gain_of_six_points_is_found_at_equal_time():
    s = frontier.analyse(_sweep(gain=0.06), by="mask.image_ratio", n_boot=1000)["summary"]
    lo, hi = s["groups"]["0.5"]["diff_ci"]
    assert 0 < lo and 0.03 < s["groups"]["0.5"]["diff"] < 0.09 and hi < 0.12


def test_equal_time_is_the_latest_final_cost_of_trials_with_one_time_budget():
    df = _sweep(seeds=1)
    df["optim.time_budget_s"] = 270.0  # every trial stopped at its first step past 270 s
    s = frontier.analyse(df, by="mask.image_ratio", n_boot=10)["summary"]
    assert s["budget"] == 280.0 and "budgeted 270" in s["budget_rule"]
    df["optim.time_budget_s"] = 0.0  # step budgets: the baseline's median final cost
    assert frontier.analyse(df, by="mask.image_ratio", n_boot=10)["summary"]["budget"] == 280.0
