"""analysis/frontier.py on the hardware-free axis: --x train_flops and the FLOPs budget rule."""

import pytest
import tables

from analysis import frontier


def _table(flops_budget: float):
    base = [[40, 80, f] for f in (101.0, 103.0, 102.0)]  # each stops at its first step past
    fast = [[30, 70, f] for f in (100.5, 100.2, 100.9)]  # shorter (masked) steps: less over
    df = tables.table(
        *[tables.trial(xs, [0.3, 0.5, 0.6], level=0.0, seed=s, x="train_flops")
          for s, xs in enumerate(base)],
        *[tables.trial(xs, [0.3, 0.6, 0.7], level=0.75, seed=s, x="train_flops")
          for s, xs in enumerate(fast)],
    )  # fmt: skip
    df["optim.time_budget_s"], df["optim.flops_budget"] = 0.0, flops_budget
    return df


def test_equal_flops_budget_is_the_latest_final_cost_when_every_trial_shared_one():
    s = frontier.analyse(_table(100.0), x="train_flops", by="mask.image_ratio", n_boot=50)
    s = s["summary"]
    assert s["x"] == "train_flops" and s["budget"] == 103.0  # every final evaluation counts
    assert s["budget_rule"] == "the latest final cost of trials all budgeted 100 training FLOPs"
    assert s["groups"]["0.75"]["acc_at_budget"] == pytest.approx(0.7)
    assert s["groups"]["0"]["acc_at_budget"] == pytest.approx(0.6)
    # no shared FLOPs budget in the table: the baseline's median final cost, as on time
    other = frontier.analyse(_table(0.0), x="train_flops", by="mask.image_ratio", n_boot=50)
    assert other["summary"]["budget"] == 102.0


def test_frontier_cli_accepts_x_train_flops():
    args = frontier.parse_args(["runs/x", "--x", "train_flops"])
    assert args.x == "train_flops"
    with pytest.raises(SystemExit):
        frontier.parse_args(["runs/x", "--x", "gflops"])
