"""The cost a sweep prints before launch: the arithmetic against hand sums, the constants
against the README's measured demo, and the warning for a plan that will not fit."""

from __future__ import annotations

import dataclasses
import math

import pytest

from medflip import variants
from medflip.config import apply_overrides
from medflip.models import flops
from medflip.sweep import estimate, launch
from medflip.sweep.cluster import Resources

ONE_CORE = Resources(num_workers=1, cpus_per_worker=1.0, gpus_per_worker=0.0)


def demo_configs(n: int, budget_s: float = 280.0):
    cfg = apply_overrides(variants.get("demo"), {"optim.time_budget_s": budget_s})
    return [cfg] * n


def test_time_budgets_fill_the_slots_in_rounds():
    e = estimate.estimate(demo_configs(6), ONE_CORE, concurrency=2)
    trial = 280.0 * (1 + estimate.EVAL_SHARE) + estimate.STARTUP_S
    assert e.trial_s == (pytest.approx(trial),) * 6
    assert e.wall_s == pytest.approx(3 * trial + estimate.RAY_START_S)  # 3 rounds of 2
    assert e.device_hours == pytest.approx(6 * trial / 3600.0)
    assert e.step_s is None  # the time budget ends training, not the steps
    odd = estimate.estimate(demo_configs(5), ONE_CORE, concurrency=2)
    assert odd.wall_s == pytest.approx(3 * trial + estimate.RAY_START_S)  # 2 + 2 + 1


def test_the_constants_reproduce_the_readme_demo():
    """README: `make demo` (6 x 280 s, 2 at a time, 1 core each) took 1,107 s of wall."""
    e = estimate.estimate(demo_configs(6), ONE_CORE, concurrency=2)
    assert abs(e.wall_s - 1107) / 1107 < 0.05


def test_step_budgets_cost_the_model_flops():
    cfg = apply_overrides(
        variants.get("demo"), {"optim.time_budget_s": 0.0, "optim.max_steps": 1000}
    )
    two_cores = Resources(num_workers=1, cpus_per_worker=2.0, gpus_per_worker=0.0)
    e = estimate.estimate([cfg], two_cores, concurrency=1)
    per_pair = flops.train_flops_per_pair(cfg, cfg.mask.image_ratio, cfg.data.max_text_len)
    step = per_pair * cfg.optim.batch_size / (2 * estimate.CPU_GFLOPS_PER_CORE * 1e9)
    assert e.step_s == pytest.approx(step)
    assert e.train_s == pytest.approx(1000 * step)
    gpu = Resources(num_workers=2, cpus_per_worker=8.0, gpus_per_worker=1.0)
    g = estimate.estimate([cfg], gpu, concurrency=1)
    assert g.step_s == pytest.approx(per_pair * cfg.optim.batch_size / (2 * 250e12))
    assert g.per_device == "GPU" and g.devices_per_trial == 2


def test_a_pretrained_text_tower_is_unknown_not_guessed(tmp_path):
    cfg = apply_overrides(variants.get("demo"), {"optim.time_budget_s": 0.0})
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, text=str(tmp_path)))
    e = estimate.estimate([cfg], ONE_CORE, concurrency=1)
    assert math.isinf(e.train_s)
    assert estimate.describe(e)[0].startswith("estimate   unknown: no optim.time_budget_s")


def test_durations_read_as_orders_of_magnitude():
    got = [estimate.duration(s) for s in (45, 600, 7200, 5 * 86400, math.inf)]
    assert got == ["45 s", "10 min", "2.0 h", "5.0 days", "unknown"]


def dry_run(tmp_path, capsys, *argv) -> list[str]:
    assert launch.main("mask_ratio", ["--storage", str(tmp_path), "--dry-run", *argv]) == 0
    return capsys.readouterr().out.splitlines()


def test_the_dry_run_prints_the_estimate(tmp_path, capsys):
    lines = dry_run(tmp_path, capsys, "--variant", "tiny", "--max-concurrent", "1")
    [line] = [ln for ln in lines if ln.startswith("estimate")]
    assert "wall" in line and "CPU core-hours" in line and "5 trial(s)" in line
    assert "README's measured demo figures" in line
    assert not any(ln.startswith("warning:") for ln in lines)


def test_the_paper_variant_on_cpu_is_warned_about(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    lines = dry_run(tmp_path, capsys, "--variant", "paper", "--set", "optim.precision=fp32")
    [warning] = [ln for ln in lines if ln.startswith("warning:")]
    assert "days on CPU-only workers" in warning
