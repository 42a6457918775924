"""The training loop: schedule, reports, checkpoints, exact resume, divergence, budgets."""

import math
import os
import shutil

import pytest
import torch

from medflip import variants
from medflip.config import ConfigError, apply_overrides
from medflip.data import eval_sets as benchmark
from medflip.evaluation import items
from medflip.training import checkpoint, engine, schedule

DESIGN_METRICS = (
    "step samples_seen train_time_s wall_time_s device_hours device_type throughput loss "
    "loss_contrastive loss_svd loss_mlm loss_mim temperature zeroshot_acc zeroshot_f1 "
    "zeroshot_binary_acc retrieval_i2t_p1 retrieval_i2t_p2 retrieval_i2t_p5 retrieval_i2t_p10 "
    "retrieval_t2i_p1 retrieval_t2i_p2 retrieval_t2i_p5 retrieval_t2i_p10 probe_acc status"
).split()


def tiny(**overrides):
    base = {"optim.precision": "fp32", "optim.max_steps": 20, "eval.every_share": 0.5}
    return apply_overrides(variants.get("tiny"), {**base, **overrides})


class Recorder:
    """A report callback that keeps every metrics dict and copies each checkpoint."""

    def __init__(self, root):
        self.root, self.reports, self.checkpoints = root, [], []

    def __call__(self, metrics, checkpoint_dir):
        self.reports.append(dict(metrics))
        if checkpoint_dir:
            kept = os.path.join(self.root, f"step-{metrics['step']}")
            shutil.copytree(checkpoint_dir, kept)
            self.checkpoints.append(kept)


def test_lr_factor_warmup_then_cosine_closed_form():
    cfg = apply_overrides(
        variants.get("tiny"),
        {"optim.warmup_share": 0.04, "optim.max_steps": 100, "mask.image_ratio": 0.0},
    )  # no patch dropping: one phase
    lr = schedule.lr_factor
    assert [lr(s, 0.0, cfg) for s in range(5)] == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert lr(52, 0.0, cfg) == pytest.approx(0.5)  # half way from p = 0.04 to 1
    assert lr(28, 0.0, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.24 / 0.96)))
    assert lr(100, 0.0, cfg) == pytest.approx(0.0)
    assert [schedule.phase(p, cfg) for p in (0.0, 0.039, 0.04, 1.0)] == ["warmup"] * 2 + [
        "main"
    ] * 2
    timed = apply_overrides(cfg, {"optim.time_budget_s": 10.0, "optim.max_steps": 100000})
    # Half the time budget spent at a few steps: the time progress governs, warmup included.
    assert lr(10, 5.2, timed) == pytest.approx(0.5)
    assert lr(3, 0.2, timed) == pytest.approx(0.5)  # p = 0.02: half way through warmup
    flops = apply_overrides(cfg, {"optim.flops_budget": 1e12, "optim.max_steps": 100000})
    assert lr(3, 99.0, flops, flops=0.52e12) == pytest.approx(0.5)  # FLOPs budget: its clock
    with pytest.raises(ConfigError, match="optim.warmup_share"):
        apply_overrides(cfg, {"optim.warmup_steps": 4})  # the removed key names its successor


def test_unmasked_tuning_is_its_own_phase_at_a_meaningful_lr():
    cfg = apply_overrides(
        variants.get("tiny"),
        {"mask.image_ratio": 0.5, "mask.unmasked_tune_share": 0.1, "optim.max_steps": 100,
         "optim.warmup_share": 0.0, "mask.unmasked_tune_lr": 0.2},
    )  # fmt: skip
    assert [schedule.unmasked(s, 0.0, cfg) for s in (0, 89, 90, 99)] == [0, 0, 1, 1]
    assert schedule.phase(0.9, cfg) == "unmasked_tune" and schedule.phase(0.0, cfg) == "main"
    # the main cosine reaches 0 where tuning starts; tuning restarts at 0.2 x lr, cosine to 0
    assert schedule.lr_factor(45, 0.0, cfg) == pytest.approx(0.5)
    assert schedule.lr_factor(90, 0.0, cfg) == pytest.approx(0.2)
    assert schedule.lr_factor(95, 0.0, cfg) == pytest.approx(0.1)
    timed = apply_overrides(cfg, {"optim.time_budget_s": 10.0, "optim.max_steps": 100000})
    assert not schedule.unmasked(50, 8.9, timed) and schedule.unmasked(50, 9.0, timed)
    # the phase trains nothing masked: no patch dropping, no MLM
    plan = engine._plan(checkpoint.Progress(step=95), cfg)
    assert (plan.image_ratio, plan.text_ratio, plan.lr) == (0.0, 0.0, pytest.approx(0.1 * 1e-3))
    # without patch dropping there is no tuning phase
    plain = apply_overrides(cfg, {"mask.image_ratio": 0.0})
    assert not schedule.unmasked(99, 0.0, plain)


def test_eval_cadence_is_a_grid_of_budget_shares():
    cfg = apply_overrides(variants.get("tiny"), {"optim.time_budget_s": 100.0})
    cfg = apply_overrides(cfg, {"mask.image_ratio": 0.0, "optim.max_steps": 100000})
    assert cfg.eval.every_share == 0.5  # tiny: two points, the second the final one
    cfg = apply_overrides(cfg, {"eval.every_share": 0.1})
    cadence = engine._Cadence(checkpoint.Progress(step=3, train_time_s=0.4), cfg)
    assert not cadence.due(checkpoint.Progress(step=5000, train_time_s=9.9))  # steps: no say
    assert cadence.due(checkpoint.Progress(step=5, train_time_s=10.5))  # past the 10 % mark
    cadence.mark(checkpoint.Progress(step=5, train_time_s=10.5))
    assert not cadence.due(checkpoint.Progress(step=7, train_time_s=19.9))
    assert cadence.due(checkpoint.Progress(step=7, train_time_s=20.1))  # 9.6 s later: the grid
    # Steps of 3.7 s to a 100 s budget: one evaluation past each of the marks 10 ... 90 %,
    # then the final one: 10 points on a 100 s budget.
    cadence, times, t = engine._Cadence(checkpoint.Progress(), cfg), [], 0.0
    while t < 100.0:
        t += 3.7
        progress = checkpoint.Progress(step=len(times), train_time_s=t)
        if t < 100.0 and cadence.due(progress):
            times.append(t)
            cadence.mark(progress)
    assert [int(x // 10) for x in times] == list(range(1, 10))
    with pytest.raises(ConfigError, match="eval.every_share"):
        apply_overrides(cfg, {"eval.every_steps": 100})


def test_curve_points_are_cheap_and_the_last_evaluation_is_full_and_tuning_gets_a_before():
    """eval.curve_items: the running reports score that many test items (5-class only);
    the final report scores the whole test half with binary and retrieval; an evaluation
    lands just before FLIP's unmasked tuning starts (step 15 of 20 at share 0.25) with
    eval.before_tuning."""
    cfg = tiny(**{"mask.image_ratio": 0.5, "mask.unmasked_tune_share": 0.25})
    cfg = apply_overrides(
        cfg, {"eval.curve_items": 10, "eval.val_items": 5, "eval.before_tuning": True}
    )
    reports = []
    engine.fit(cfg, report=lambda m, c: reports.append(dict(m)))
    assert [r["step"] for r in reports] == [10, 15, 20]
    assert schedule.unmasked(15, 0.0, cfg) and not schedule.unmasked(14, 0.0, cfg)
    test_half = len(benchmark.val_test_split(benchmark.build_eval_sets(cfg).fiveclass_targets)[1])
    for r in reports[:2]:
        assert r["zeroshot_n"] == 10 and len(items.unpack(r["zeroshot_items"])) == 10
        assert "zeroshot_binary_auroc" not in r and "retrieval_i2t_p1" not in r
    final = reports[-1]
    assert final["zeroshot_n"] == test_half > 10 and "retrieval_i2t_p1" in final
    assert final["zeroshot_binary_n_pos"] + final["zeroshot_binary_n_neg"] > 0


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """tiny() trained uninterrupted: 20 steps, reports and checkpoints at 10 and 20. One run
    for the two tests that read it (its reports; the resume test's reference)."""
    rec = Recorder(str(tmp_path_factory.mktemp("plain")))
    return engine.fit(tiny(), report=rec), rec


def test_fit_reports_every_metric_and_a_checkpoint(plain_run):
    final, rec = plain_run
    assert [r["step"] for r in rec.reports] == [10, 20]
    assert [r["status"] for r in rec.reports] == ["running", "completed"]
    for name in DESIGN_METRICS:
        assert name in final, name
    assert final == rec.reports[-1]
    assert final["samples_seen"] == 20 * 16 and final["device_type"] == "cpu"
    assert 0 < final["train_time_s"] <= final["wall_time_s"]
    assert final["device_hours"] == pytest.approx(final["train_time_s"] / 3600)
    assert 0.0 <= final["zeroshot_acc"] <= 1.0 and math.isfinite(final["loss"])
    assert all(os.path.exists(os.path.join(c, checkpoint.STATE_FILE)) for c in rec.checkpoints)


def crash_at(step):
    def before_step(s, batch):
        if s == step:
            raise RuntimeError(f"injected crash at step {s}")
        return batch

    return engine.Hooks(before_step=before_step)


def nan_at(step):
    def before_step(s, batch):
        return {**batch, "image": batch["image"] * float("nan")} if s == step else batch

    return engine.Hooks(before_step=before_step)


def test_resume_after_crash_matches_uninterrupted_run(plain_run, tmp_path):
    """Crash at step 15, resume from the step-10 checkpoint: the same final metrics as the
    uninterrupted run of the same config (plain_run). The resumed half still trains 10
    steps (restored weights, optimizer, RNG and loader position) and evaluates at the end.

    Same ops in the same order on CPU in fp32 give identical floats; the tolerance (1e-5)
    only absorbs thread-scheduling differences in parallel reductions.
    """
    full, _ = plain_run
    cfg = tiny()  # steps 10, 20
    rec = Recorder(str(tmp_path))
    with pytest.raises(RuntimeError, match="injected crash"):
        engine.fit(cfg, report=rec, hooks=crash_at(15))
    assert rec.reports[-1]["step"] == 10
    resumed = engine.fit(cfg, report=rec, resume_from=rec.checkpoints[-1])
    assert resumed["step"] == 20 and resumed["samples_seen"] == full["samples_seen"]
    for key in ("loss", "temperature", "zeroshot_acc", "retrieval_i2t_p1", "probe_acc"):
        assert resumed[key] == pytest.approx(full[key], abs=1e-5), key


def test_nan_loss_stops_with_diverged(tmp_path):
    rec = Recorder(str(tmp_path))
    final = engine.fit(tiny(), report=rec, hooks=nan_at(12))
    assert final["status"] == "diverged" and final["step"] == 13
    assert rec.checkpoints and rec.reports[-1]["status"] == "diverged"
    assert [r["step"] for r in rec.reports] == [10, 13]


def test_time_budget_stops_training(tmp_path):
    final = engine.fit(
        tiny(**{"optim.max_steps": 100000, "optim.time_budget_s": 2.0, "eval.every_share": 1.0})
    )
    assert final["status"] == "completed"
    assert 2.0 <= final["train_time_s"] < 2.0 + 5.0  # one step at most past the budget
    assert final["step"] < 100000


def test_prepare_model_hook_is_used():
    wrapped = []

    def prepare(model):
        wrapped.append(model)
        return model

    engine.fit(
        tiny(**{"optim.max_steps": 2, "eval.every_share": 1.0}),
        hooks=engine.Hooks(prepare_model=prepare),
    )
    assert len(wrapped) == 1 and isinstance(wrapped[0], torch.nn.Module)


def test_auto_precision_is_bf16_only_where_native_and_rows_record_what_ran():
    from medflip.device.precision import native_bf16, resolve_precision

    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"  # asked for explicitly: obeyed
    want = "bf16" if native_bf16("cpu") else "fp32"
    assert resolve_precision("auto", "cpu") == want
    cfg = apply_overrides(variants.get("tiny"), {"optim.precision": "auto", "optim.max_steps": 2})
    assert engine.fit(cfg)["precision"] == want
