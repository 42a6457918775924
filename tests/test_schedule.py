"""One clock: warmup, decay, the tuning phase and the evaluation cadence follow the share of
the budget spent, so two arms that differ only in step rate train under the same schedule."""

import pytest
import torch

from medflip import variants
from medflip.config import apply_overrides
from medflip.models import flops
from medflip.training import engine, run_parts, schedule
from medflip.training.step import StepPlan, train_step

PEAK = 1e-3
TIMED = {
    "optim.precision": "fp32",
    "optim.lr": PEAK,
    "optim.max_steps": 100000,
    "optim.time_budget_s": 1.0,  # seconds of a fake clock: each step costs exactly STEP_S
    "optim.warmup_share": 0.5,  # long on purpose: a step-counted warmup would show at once
    "mask.image_ratio": 0.5,
    "mask.unmasked_tune_share": 0.25,
    "eval.every_share": 0.25,
    "eval.probe": False,
}


class _Clock:
    """time.perf_counter for engine.py and run_parts.py: advanced only by training steps,
    so the two runs' step rates are exact whatever else the machine is doing."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def _run(monkeypatch, step_s: float) -> tuple[list[dict], list[float]]:
    """Train TIMED with every step taking `step_s` training seconds; returns the reports
    and the learning rate each step ran under."""
    lrs, clock = [], _Clock()

    def timed(model, criterion, optimizer, batch, plan, **kw):
        lrs.append(plan.lr)
        clock.now += step_s
        return train_step(model, criterion, optimizer, batch, plan, **kw)

    monkeypatch.setattr(engine, "train_step", timed)
    monkeypatch.setattr(engine, "time", clock)
    monkeypatch.setattr(run_parts, "time", clock)
    reports = []
    engine.fit(_cfg(), report=lambda m, c: reports.append(m))
    return reports, lrs


def _cfg(**sets):
    return apply_overrides(variants.get("tiny"), {**TIMED, **sets})


def test_two_step_rates_same_time_budget_same_lr_and_evaluations_at_the_same_shares(monkeypatch):
    fast, fast_lrs = _run(monkeypatch, 0.0173)
    slow, slow_lrs = _run(monkeypatch, 0.0531)
    assert (len(fast_lrs), len(slow_lrs)) == (58, 19)  # ceil(1 / step_s): 3x apart
    for reports, lrs, step_s in ((fast, fast_lrs, 0.0173), (slow, slow_lrs, 0.0531)):
        # one report at the first step past each quarter of the budget, whatever the pace
        shares = [r["budget_share"] for r in reports]
        assert [int(s // 0.25) for s in shares] == [1, 2, 3, 4] and shares[-1] == 1.0
        assert all(0 <= s - k * 0.25 < step_s for k, s in zip((1, 2, 3), shares, strict=False))
        for r in reports[:-1]:
            # the lr column is what the next step trained under, and the schedule's at p
            assert lrs[r["step"]] == pytest.approx(r["lr"])
            assert r["lr"] == pytest.approx(PEAK * schedule.lr_at(r["budget_share"], _cfg()))
        phases = ["warmup", "main", "unmasked_tune", "unmasked_tune"]
        assert [r["phase"] for r in reports] == phases
        # a quarter of the budget in: half way through warmup (a step-counted warmup of
        # the same length would put the runs 3x apart here)
        assert reports[0]["lr"] == pytest.approx(PEAK * 0.5, abs=PEAK * 2 * step_s)
    # the same learning rate at the same budget share, step counts 3x apart
    for f, s in zip(fast, slow, strict=True):
        gap = abs(f["budget_share"] - s["budget_share"])
        assert abs(f["lr"] - s["lr"]) <= PEAK * 2 * gap + 1e-12  # lr moves <= 2 lr per share
        assert f["step"] > 2 * s["step"]


def test_flops_budget_runs_on_flops_stops_schedules_and_evaluates_on_it():
    """A FLOPs budget stops the run at the first step past it, and its phases and
    evaluations fall at shares of FLOPs (~80 tiny steps, whatever they cost in seconds)."""
    budget = 2e10
    cfg = _cfg(**{"optim.time_budget_s": 0.0, "optim.flops_budget": budget})
    reports = []
    engine.fit(cfg, report=lambda m, c: reports.append(m))
    final, per_step = reports[-1], reports[-1]["train_flops"] / reports[-1]["step"]
    assert budget <= final["train_flops"] < budget + 2 * per_step and final["budget_share"] == 1
    shares = [min(1.0, r["train_flops"] / budget) for r in reports]
    assert [r["budget_share"] for r in reports] == pytest.approx(shares)
    marks = zip((0.25, 0.5, 0.75), shares, strict=False)
    assert all(0 <= s - mark < 2 * per_step / budget for mark, s in marks)
    assert [r["phase"] for r in reports] == ["warmup", "main", "unmasked_tune", "unmasked_tune"]


def test_step_flops_count_each_image_at_its_kept_patches_and_each_text_at_its_tokens():
    cfg = _cfg()
    batch = {"image": torch.zeros(3, 1, 32, 32), "attention_mask": torch.tensor(
        [[1] * 5 + [0] * 3, [1] * 8, [1] * 2 + [0] * 6, [0] * 8]
    )}  # fmt: skip
    plan = StepPlan(lr=0.0, image_ratio=0.75)
    want = 6 * (3 * flops.image_macs(cfg, 0.75) + sum(flops.text_macs(cfg, n) for n in (5, 8, 2)))
    assert engine._step_flops(batch, plan, cfg) == want
    full = engine._step_flops(batch, StepPlan(lr=0.0, image_ratio=0.0), cfg)
    assert full - want == 6 * 3 * (flops.image_macs(cfg, 0.0) - flops.image_macs(cfg, 0.75)) > 0
    # a text budget of 4 tokens: rows of 5 and 8 count 4 each
    cut = engine._step_flops(batch, StepPlan(lr=0.0, image_ratio=0.75, text_tokens=4), cfg)
    texts = sum(flops.text_macs(cfg, n) for n in (4, 4, 2))
    assert cut == 6 * (3 * flops.image_macs(cfg, 0.75) + texts)
