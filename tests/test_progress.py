"""What a run prints: where it is against its budget, the ETA, the final summary table."""

import math

import pytest

from medflip import variants
from medflip.config import apply_overrides
from medflip.training import progress


def _cfg(**sets):
    return apply_overrides(variants.get("tiny"), sets)


def _m(**kw):
    base = {"step": 10, "train_time_s": 5.0, "throughput": 32.0, "loss": 2.5}
    return {**base, "temperature": 0.07, "status": "running", "eval_time_s": 1.0, **kw}


def test_eta_for_a_step_budget_is_steps_left_at_the_pace_plus_evaluations():
    cfg = _cfg(**{"optim.max_steps": 50, "optim.batch_size": 16, "eval.every_share": 0.2})
    # 40 steps left at 32 pairs/s of 16-pair steps = 20 s; 4 evaluations of 1 s each.
    assert progress.eta_s(_m(), cfg) == pytest.approx(20.0 + 4 * 1.0)


def test_eta_for_a_time_budget_stops_at_the_budget():
    cfg = _cfg(**{"optim.max_steps": 100000, "optim.time_budget_s": 60.0, "eval.every_share": 0.1})
    # 55 s of training left; 5 of 60 s spent (p = 0.083): 10 evaluations ahead, whatever the pace.
    assert progress.eta_s(_m(), cfg) == pytest.approx(55.0 + 10 * 1.0)
    assert progress.eta_s(_m(throughput=320.0), cfg) == pytest.approx(55.0 + 10 * 1.0)
    assert math.isnan(progress.eta_s(_m(throughput=float("nan")), _cfg()))


def test_eta_for_a_flops_budget_runs_at_the_flops_rate_so_far():
    cfg = _cfg(**{"optim.max_steps": 100000, "optim.flops_budget": 4e12, "eval.every_share": 0.5})
    # 1e12 of 4e12 FLOPs in 5 s: 15 s left; p = 0.25: the 0.5 mark and the final ahead.
    assert progress.eta_s(_m(train_flops=1e12), cfg) == pytest.approx(15.0 + 2 * 1.0)
    assert progress.where(_m(train_flops=1.2e12), cfg) == "step 10 1.2e+12/4e+12 FLOPs"


def test_steps_are_shown_against_max_steps_only_when_it_is_a_budget():
    """The default optim.max_steps is a no-limit sentinel under a time or FLOPs budget."""
    timed = _cfg(**{"optim.max_steps": 100000, "optim.time_budget_s": 60.0})
    assert progress.where(_m(), timed) == "step 10 train 5/60s"
    both = _cfg(**{"optim.max_steps": 500, "optim.time_budget_s": 60.0})  # set: a budget
    assert progress.where(_m(), both) == "step 10/500 train 5/60s"
    steps_only = _cfg(**{"optim.max_steps": 100000, "optim.time_budget_s": 0.0})
    assert progress.where(_m(), steps_only) == "step 10/100000"  # the only budget there is


def test_line_says_where_eta_lr_pace_and_the_latest_evaluation():
    cfg = _cfg(**{"optim.max_steps": 50, "optim.time_budget_s": 60.0})
    text = progress.line(_m(zeroshot_acc=0.4, probe_acc=float("nan")), cfg, lr=1.5e-4)
    assert text.startswith("step 10/50 train 5/60s ETA ")
    assert "lr 1.50e-04" in text and "32 pairs/s" in text and "zeroshot_acc=0.400" in text
    assert "probe_acc" not in text and text.endswith("[running]")
    assert "ETA" not in progress.line(_m(status="completed"), cfg, lr=0.0)


def test_duration_and_summary_table():
    assert [progress.duration(s) for s in (4.4, 245, 3720)] == ["4s", "4m05s", "1h02m"]
    table = progress.summary(
        {"status": "completed", "step": 20, "zeroshot_acc": 0.25, "probe_acc": float("nan")},
        {"results": "runs/x/results.parquet"},
    )
    rows = [line.split(None, 1)[0] for line in table.splitlines()]
    assert rows == ["status", "steps", "zero-shot", "results"]  # NaN and missing skipped
