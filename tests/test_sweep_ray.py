"""2-worker sweeps through the CLI, as a user runs them (slow).

Each runs as `python sweeps/<name>.py ...` in a subprocess: one joins the session's Ray
head (`--address auto`, tests/fixtures_ray.py), one starts a Ray of its own next to that
head, as on a shared machine. The drills on the head (a worker crash or kill, the driver
killed) live once, in tests/cluster/test_drills.py.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medflip.results import table as results

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
TWO_WORKERS = ("--workers-per-trial", "2", "--cpus-per-worker", "1")


def sweep(name, *argv, env, timeout=420):
    cmd = [sys.executable, str(ROOT / "sweeps" / f"{name}.py"), *argv]
    env = {**env, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def own_ray_env(**extra) -> dict[str, str]:
    """A plain shell's environment: no RAY_* variables, so the sweep starts its own Ray."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def trial_steps(df):
    return {t: list(g.sort_values("step").step) for t, g in df.groupby("trial_id")}


def test_time_budgeted_two_worker_partly_paired_sweep_completes_on_the_head(ray_cluster, tmp_path):
    """Each rank once decided alone when its budget ran out (and hung); now rank 0's clock
    is agreed every step. data.paired=0.5 leaves some ranks' batches without pairs. One
    trial (a hang is per trial), on the session's head: the budget agreement is the same on
    any Ray, and a Ray start is saved."""
    t0 = time.monotonic()
    out = sweep(
        "temperature", "--address", "auto", "--variant", "tiny", "--num-samples", "1",
        "--seeds", "1", "--storage", str(tmp_path), *TWO_WORKERS,
        "--set", "optim.max_steps=100000", "--set", "optim.time_budget_s=6",
        "--set", "eval.every_share=0.34", "--set", "data.paired=0.5",
        env=ray_cluster.driver_env(),
    )  # fmt: skip
    wall = time.monotonic() - t0
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    final = results.final_rows(results.load(tmp_path / "temperature"))
    assert len(final) == 1 and set(final.status) == {"completed"}, final.status
    assert (final.num_workers == 2).all() and (final["data.paired"] == 0.5).all()
    assert final.train_time_s.between(6.0, 12.0).all(), final.train_time_s
    assert (final.tokenizer_hash.str.len() == 12).all()  # the experiment's one tokenizer
    assert (tmp_path / "temperature" / "tokenizer.json").exists()
    # True cost: the time each trial held its workers counts start-up and evaluation, so it
    # exceeds the training time, and it cannot exceed the sweep's wall time.
    assert (final.held_time_s > final.train_time_s).all(), final[["held_time_s", "train_time_s"]]
    assert (final.held_time_s < wall).all(), (final.held_time_s, wall)
    print(f"time-budgeted 2-worker sweep: {wall:.0f} s wall for 1 trial x 6 s")


def test_smoke_sweep_nan_on_rank_1_only_diverges_and_the_sweep_goes_on(ray_cluster, tmp_path):
    """Without --address, next to the session's running head: the sweep starts a Ray of its
    own, without Ray's traceback noise about two instances on one machine."""
    out = sweep(
        "mask_ratio", "--smoke-test", "--storage", str(tmp_path), *TWO_WORKERS,
        env=own_ray_env(MEDFLIP_FAULT="nan@15:rank=1"),
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-6000:]
    assert "Traceback" not in text and "multiple active Ray instances" not in text, text[-6000:]
    assert "2 trials" in out.stdout  # the smoke sweep, on its own Ray
    assert str(tmp_path / "mask-ratio-smoke" / "results.parquet") in out.stdout
    df = results.load(tmp_path / "mask-ratio-smoke")
    final = results.final_rows(df)
    assert sorted(final["mask.image_ratio"]) == [0.0, 0.25]  # both trials ran
    assert set(final.status) == {"diverged"}
    for steps in trial_steps(df).values():  # an evaluation at 10, then the NaN step
        assert steps == [10, 16]  # the NaN step (15, 0-based) ends both ranks at once
    evaluated = df[df.step == 10]
    assert evaluated.zeroshot_acc.between(0, 1).all() and (evaluated.status == "running").all()
    assert (df["data.image_size"] == 32).all() and (df["mask.variant"] == "none").all()
    assert (df.ray_version.str.startswith("2.60")).all() and (df.num_workers == 2).all()
    assert "fault" not in " ".join(df.columns)  # fault injection is no config, no column
    # End to end: the analysis reads the sweep's real table (diverged = never reached).
    report = subprocess.run(
        [
            sys.executable,
            str(ROOT / "analysis" / "frontier.py"),
            str(tmp_path / "mask-ratio-smoke"),
            "--by",
            "mask.image_ratio",
            "--out",
            str(tmp_path / "analysis"),
            "--bootstrap",
            "200",
            "--target",
            "0.2",
        ],  # every trial diverged: no baseline median to default to
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stdout[-2000:] + report.stderr[-2000:]
    summary = json.loads((tmp_path / "analysis" / "summary.json").read_text())
    assert set(summary["groups"]) == {"0", "0.25"}
    assert all(g["reached"] == "0/1" for g in summary["groups"].values())  # diverged
    for name in ("frontier.png", "frontier.svg", "frontier.csv", "summary.md"):
        assert (tmp_path / "analysis" / name).stat().st_size > 0
