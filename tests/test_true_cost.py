"""summary.md's true cost (analysis/budgets.true_cost) against sums done by hand: what the
sweep held in total (start-up, evaluation and retries included) beside its training time,
and what the winning arm costs to train."""

import math

import pandas as pd

from analysis import common
from analysis.budgets import true_cost


def test_true_cost_matches_hand_sums():
    rows = []
    # trial a: 2 workers, 100 s training, held 130 s; b: 1 worker, 100 s, held 150 s;
    # c: 1 worker, stopped early at 40 s, held 60 s.
    for trial, workers, train, held in (("a", 2, 100.0, 130.0), ("b", 1, 100.0, 150.0),
                                        ("c", 1, 40.0, 60.0)):  # fmt: skip
        for frac in (0.5, 1.0):  # two reports each: the max is the trial's total
            rows.append({
                "experiment": "e", "trial_id": trial, "num_workers": workers,
                "train_time_s": train * frac, "held_time_s": held * frac,
                "device_hours": train * frac * workers / 3600,
            })  # fmt: skip
    df = pd.DataFrame(rows)

    class T:  # the curves.Trial fields true_cost reads
        def __init__(self, trial_id, group):
            self.experiment, self.trial_id, self.group = "e", trial_id, group

    trials = [T("a", {"mask.image_ratio": 0.5}), T("b", {"mask.image_ratio": 0.0}),
              T("c", {"mask.image_ratio": 0.0})]  # fmt: skip
    masked, unmasked = (common.label(trials[k].group) for k in (0, 1))
    summary = {"groups": {masked: {"acc_at_budget": 0.6}, unmasked: {"acc_at_budget": 0.5}}}
    cost = true_cost(df, trials, summary)
    assert cost["trials"] == 3 and cost["trials_without_held"] == 0
    held = (130 * 2 + 150 * 1 + 60 * 1) / 3600  # held seconds x workers
    train = (100 * 2 + 100 * 1 + 40 * 1) / 3600
    assert math.isclose(cost["held_device_hours"], held)
    assert math.isclose(cost["train_device_hours"], train)
    assert cost["winner"] == masked  # the higher accuracy at the budget
    assert math.isclose(cost["winner_train_device_hours"], 200 / 3600)  # trial a alone
