"""The training loop at world size 2 (gloo): one agreement per step keeps ranks together."""

import math

import dist_engine
import pytest

pytestmark = pytest.mark.slow  # two processes training: ~20 s on 2 cores

BASE = {"optim.precision": "fp32", "optim.max_steps": 12, "eval.every_share": 0.5}


@pytest.fixture(scope="module")
def runs():
    """Both runs in one spawn of 2 ranks: the spawn, not the 12 tiny steps, is the cost."""
    return dist_engine.fit_2_ranks(
        {
            "nan_on_rank_1": (BASE, 1, 8),
            "partly_paired": ({**BASE, "data.paired": 0.5}, -1, -1),
        }
    )


def test_non_finite_loss_on_rank_1_only_ends_both_ranks_at_the_same_step(runs):
    ranks = runs["nan_on_rank_1"]
    for r in ranks:
        assert r["final"]["status"] == "diverged" and r["final"]["step"] == 9
        assert math.isnan(r["final"]["loss"])
    assert [m["step"] for m in ranks[0]["reports"]] == [6, 9]


def test_partly_paired_two_rank_run_completes_with_equal_progress(runs):
    ranks = runs["partly_paired"]
    finals = [r["final"] for r in ranks]
    assert all(f["status"] == "completed" and f["step"] == 12 for f in finals)
    assert math.isfinite(finals[0]["loss"]) and finals[0]["loss"] == finals[1]["loss"]
    # rank 0's clock is every rank's: the same training time and the same decisions
    assert finals[0]["train_time_s"] == finals[1]["train_time_s"]
    assert 0.0 <= finals[0]["zeroshot_acc"] <= 1.0  # rank 0 evaluated
