"""Progress view and live-metric selection, checked against hand-worked examples."""

import pytest
from ray.tune.experiment import Trial

from medflip.sweep.monitor import (
    GAUGES,
    Progress,
    ProgressView,
    estimate_remaining,
    format_progress,
    gauge_values,
)


def test_gauge_values_keep_finite_numbers_only():
    report = {
        "throughput": 812.5,
        "loss": 2.25,
        "zeroshot_acc": float("nan"),
        "device_hours": 0.01,
        "step": 40,
        "status": "running",
        "device_type": "cpu",
    }
    got = gauge_values(report)
    assert got == {
        "medflip_throughput": 812.5,
        "medflip_loss": 2.25,
        "medflip_device_hours": 0.01,
        "medflip_step": 40.0,
    }
    # a report without an evaluation leaves the accuracy gauge at its last value
    assert "medflip_zeroshot_acc" not in gauge_values({"loss": 1.0})
    assert gauge_values({"zeroshot_acc": 0.4})["medflip_zeroshot_acc"] == 0.4
    assert gauge_values({"step": True}) == {}  # bools are not readings
    assert set(GAUGES) >= {
        "medflip_throughput",
        "medflip_loss",
        "medflip_zeroshot_acc",
        "medflip_device_hours",
    }


def test_estimate_remaining_by_hand():
    # mean of finished = 10 s; running trials at 4 s and 12 s need 6 s and 0 s more.
    # 3 waiting on 2 slots: slot A free at 0 -> 10 -> 20, slot B free at 6 -> 16; end = 20.
    assert estimate_remaining([8.0, 12.0], [4.0, 12.0], waiting=3, slots=2) == 20.0
    assert estimate_remaining([], [1.0], waiting=2, slots=1) is None  # nothing to go on
    assert estimate_remaining([5.0], [], waiting=0, slots=4) == 0.0  # all done
    # more slots than work: 2 waiting trials start now in parallel
    assert estimate_remaining([30.0], [], waiting=2, slots=8) == 30.0


def _trial(trial_id, status, result=None):
    t = Trial("__fake", trial_id=trial_id, stub=True)
    if result is not None:
        t.update_last_result(dict(result))
    t.set_status(status)
    return t


def test_progress_view_counts_best_and_line():
    lines = []
    view = ProgressView(
        total=6, metric="zeroshot_acc", mode="max", slots=2, every_s=1e9, write=lines.append
    )
    trials = [
        _trial("t0", Trial.TERMINATED, {"zeroshot_acc": 0.31, "time_total_s": 10.0}),
        _trial("t1", Trial.ERROR, {"zeroshot_acc": 0.52, "time_total_s": 20.0}),
        _trial("t2", Trial.RUNNING, {"zeroshot_acc": 0.44}),
        _trial("t3", Trial.PENDING),
    ]  # 2 more trials not yet suggested by the searcher
    view.on_trial_result(0, trials, trials[2], {"zeroshot_acc": 0.61})  # a better live result
    p = view.snapshot(trials)
    assert (p.total, p.done, p.failed, p.running, p.pending) == (6, 2, 1, 1, 3)
    assert (p.best, p.best_trial) == (0.61, "t2")
    # mean 15 s; t2 just started (needs 15 s), 3 waiting on 2 slots -> 15, 30 | 15, 30 -> 30
    assert p.remaining_s == pytest.approx(30.0, abs=0.5)
    view.on_trial_complete(0, trials, trials[0])  # forces a line despite every_s
    assert len(lines) == 1 and lines[0].startswith("[medflip] 2/6 done (1 failed) | 1 running")
    assert "best zeroshot_acc 0.6100 (trial t2)" in lines[0]
    view.on_step_end(0, trials)  # throttled: no second line
    view.on_experiment_end(trials)  # nothing changed since the last line: not repeated
    assert len(lines) == 1
    trials[2].set_status(Trial.TERMINATED)
    view.on_trial_complete(0, trials, trials[2])  # a trial ended: a new line at once
    assert len(lines) == 2 and lines[1].startswith("[medflip] 3/6 done (1 failed) | 0 running")


def test_progress_view_min_mode_and_restored_trials():
    view = ProgressView(total=2, metric="loss", mode="min", write=lambda line: None)
    trials = [
        _trial("a", Trial.TERMINATED, {"loss": 2.0, "time_total_s": 5.0}),
        _trial("b", Trial.TERMINATED, {"loss": 1.5, "time_total_s": 7.0}),
    ]
    p = view.snapshot(trials)  # results seen only through last_result, as after --resume
    assert (p.best, p.best_trial, p.done, p.remaining_s) == (1.5, "b", 2, 0.0)
    with pytest.raises(ValueError, match="mode"):
        ProgressView(total=1, mode="maximize")


def test_format_progress_before_any_trial_ends():
    p = Progress(
        total=8,
        done=0,
        failed=0,
        running=2,
        pending=6,
        best=None,
        best_trial=None,
        elapsed_s=3725.0,
        remaining_s=None,
    )
    line = format_progress(p, "zeroshot_acc")
    assert line == (
        "[medflip] 0/8 done | 2 running | 6 pending | best: none yet | "
        "elapsed 1h02m | left: after the first trial ends"
    )
