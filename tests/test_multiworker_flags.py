"""Multi-worker flags of the sweep CLI, checked before Ray starts."""

import pytest

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
