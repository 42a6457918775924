"""Multi-worker flags of the sweep CLI, checked before Ray starts."""

import pytest
import torch

from medflip.sweep import launch
from medflip.sweep.spaces import get


def test_fractional_gpus_with_several_workers_is_refused_before_ray(capsys):
    argv = ["--workers-per-trial", "2", "--gpus-per-worker", "0.5", "--dry-run"]
    assert launch.main("mask_ratio", argv) == 2
    err = capsys.readouterr().err
    assert "--gpus-per-worker 0.5 with --workers-per-trial 2" in err and "NCCL" in err


def test_collective_timeout_is_in_help_and_reaches_the_plan(capsys):
    parser = launch.build_parser(get("mask_ratio"))
    assert "--collective-timeout-s" in parser.format_help()
    plan = launch.make_plan(get("mask_ratio"), parser.parse_args(["--collective-timeout-s", "90"]))
    assert plan.collective_timeout_s == 90
    with pytest.raises(launch.PlanError, match="--collective-timeout-s: must be > 0"):
        launch.make_plan(get("mask_ratio"), parser.parse_args(["--collective-timeout-s", "0"]))


def test_fault_spec_of_the_drills_targets_one_rank_and_crashes_only_once():
    from medflip.sweep.trial import fault_hook

    batch = {"image": torch.ones(2, 1, 4, 4)}
    assert fault_hook("", 0, resumed=False) is None
    assert fault_hook("nan@3:rank=1", 0, resumed=False) is None  # another rank
    poison = fault_hook("nan@3:rank=1", 1, resumed=True)  # a NaN repeats on every attempt
    assert poison(2, batch) is batch and torch.isnan(poison(3, batch)["image"]).all()
    crash = fault_hook("crash@5", 0, resumed=False)
    with pytest.raises(RuntimeError, match="injected crash at step 5 on rank 0"):
        crash(5, batch)
    assert fault_hook("crash@5", 0, resumed=True) is None  # the restart continues
    with pytest.raises(ValueError, match="MEDFLIP_FAULT='boom': expected crash@STEP"):
        fault_hook("boom", 0, resumed=False)
