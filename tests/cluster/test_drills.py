"""Fault drills on a cluster-up head, through the real CLI (`--address auto`, token auth).

Real processes are SIGKILLed: the sweep driver, and a Ray Train worker found through the
dashboard's Train API. Bad setups must fail fast with one clear message and leave nothing
behind; where they are caught before Ray, the cluster's job list proves no driver joined.
The one copy of each drill (tests/test_sweep_ray.py has no drill). Trials that lose a
worker run 2 workers (1 CPU each): the multi-worker path is the one that hangs.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures_ray import ROOT, Sweep, wait_for

from medflip.results import table as results
from medflip.sweep import raycompat

pytestmark = pytest.mark.slow


def cli(cluster, argv: list[str], env: dict | None = None, timeout_s: float = 120):
    """Run a sweep CLI to completion: (returncode, stdout + stderr, seconds)."""
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, str(ROOT / "sweeps" / "mask_ratio.py"), *argv],
        cwd=ROOT,
        env=env or cluster.driver_env(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return out.returncode, out.stdout + out.stderr, time.monotonic() - t0


def steps_by_trial(table) -> dict[str, list[int]]:
    return {t: sorted(g["step"]) for t, g in table.groupby("trial_id")}


def logged_steps(experiment: Path, trial: str) -> list[int]:
    """Every report Tune logged for a trial, in order (results.parquet is deduplicated)."""
    lines = (experiment / trial / "result.json").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines if line.strip()]


@pytest.mark.parametrize(
    "argv, fragment",
    [  # tests/test_sweep_plan.py has many more
        (["--set", "mask.text_ratio=0.9"], "mask.text_ratio: 0.9 is outside"),
        (["--set", "optim.learning_rate=1e-3"], "unknown config key 'optim.learning_rate'"),
        (["--bogus-flag"], "unrecognized arguments: --bogus-flag"),
    ],
)
def test_bad_input_fails_before_joining_the_cluster(ray_cluster, tmp_path, argv, fragment):
    jobs = ray_cluster.job_ids()
    rc, out, seconds = cli(
        ray_cluster,
        ["--address", "auto", "--smoke-test", "--storage", str(tmp_path / "runs"), *argv],
    )
    assert rc == 2 and fragment in out, out[-2000:]
    assert "Traceback" not in out
    assert ray_cluster.job_ids() == jobs  # no driver ever connected
    assert not (tmp_path / "runs").exists()


def test_cluster_too_small_for_one_trial_fails_at_start(ray_cluster, tmp_path):
    for argv in (
        ["--workers-per-trial", "4", "--gpus-per-worker", "1"],
        ["--cpus-per-worker", "3"],
    ):
        runs = len(ray_cluster.train_runs())
        rc, out, seconds = cli(
            ray_cluster,
            ["--address", "auto", "--smoke-test", "--storage", str(tmp_path / "runs"), *argv],
        )
        assert rc == 2 and "one trial needs" in out, out[-2000:]
        assert seconds < 90, f"took {seconds:.0f} s: should fail at start, not wait"
        assert len(ray_cluster.train_runs()) == runs  # no Train run was even started
        assert not (tmp_path / "runs").exists()


def _mount_tmpfs(point: Path, options: str) -> bool:
    point.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True
    )
    return done.returncode == 0


@pytest.mark.parametrize("kind", ["read-only", "full"])
def test_unusable_storage_fails_before_ray_and_writes_nothing(ray_cluster, tmp_path, kind):
    point = tmp_path / "mnt"
    options = "size=1g,ro" if kind == "read-only" else "size=2m"
    if not _mount_tmpfs(point, options):
        pytest.skip(
            "mounting a tmpfs needs root with CAP_SYS_ADMIN (test_preflight.py "
            "covers an unwritable path without it)"
        )
    try:
        jobs = ray_cluster.job_ids()
        rc, out, seconds = cli(
            ray_cluster, ["--address", "auto", "--smoke-test", "--storage", str(point / "runs")]
        )
        want = "not writable" if kind == "read-only" else "MiB free"
        assert rc == 2 and want in out and str(point / "runs") in out, out[-2000:]
        assert ray_cluster.job_ids() == jobs
        assert list(point.rglob("*")) == []  # not even the directory
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False)


def test_address_auto_without_any_cluster_says_how_to_start_one(tmp_path):
    """In a private PID and /tmp namespace no Ray is visible, as on a fresh machine."""
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to hide this machine's other Ray instances")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # Hide only Ray's default temp dir (where `auto` looks for a running cluster), not all
    # of /tmp: the checkout and its .venv may themselves live under /tmp.
    script = (
        f"mkdir -p /tmp/ray && mount -t tmpfs tmpfs /tmp/ray && exec {sys.executable} "
        f"{ROOT / 'sweeps' / 'mask_ratio.py'} --address auto --smoke-test "
        f"--storage {tmp_path / 'runs'}"
    )
    out = subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "unshare failed" in out.stderr or "Operation not permitted" in out.stderr:
        pytest.skip(f"namespaces not permitted here: {out.stderr.strip()[:200]}")
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "no running Ray cluster was found" in out.stderr
    assert "make cluster-up" in out.stderr and "Traceback" not in out.stderr


def test_driver_without_the_token_is_refused_with_a_clear_message(ray_cluster, tmp_path):
    env = ray_cluster.driver_env(HOME=str(tmp_path))  # no ~/.ray/auth_token either
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key)
    rc, out, seconds = cli(
        ray_cluster,
        ["--address", "auto", "--smoke-test", "--storage", str(tmp_path / "runs")],
        env=env,
    )
    assert rc == 2 and "rejected this driver's authentication token" in out, out[-2000:]
    assert "RAY_AUTH_MODE=token" in out


def _running_run_with_checkpoint(cluster, experiment: Path, logged: bool = False):
    """(Train run, rank-0 worker pid) of a running trial of `experiment` with a checkpoint
    on disk (and, if `logged`, at least one report that reached Tune), else None."""
    for run in cluster.train_runs():
        ckpts = list((experiment / "train" / run["name"]).glob("checkpoint_*"))
        result = experiment / run["name"] / "result.json"
        told = result.exists() and result.stat().st_size > 0
        if run["status"] == "RUNNING" and ckpts and run["attempts"] and (told or not logged):
            workers = run["attempts"][-1]["workers"]
            if workers and workers[0].get("pid"):
                return run, workers[0]["pid"]
    return None


TWO_WORKERS = ["--workers-per-trial", "2", "--cpus-per-worker", "1"]
# One trial of the tiny variant (20 steps, evaluated at 10 and 20): a drill on one trial
# proves what it proves on two, for half the Train start-ups and restarts.
ONE_TRIAL = ["--variant", "tiny", "--num-samples", "1", "--seeds", "1"]


def test_crash_on_rank_1_of_a_2_worker_trial_resumes_without_lost_or_duplicate_steps(
    ray_cluster, tmp_path
):
    sweep = Sweep(
        ray_cluster,
        "temperature.py",
        [*ONE_TRIAL, *TWO_WORKERS],
        tmp_path / "runs",
        "drill-crash",
        tmp_path / "sweep.log",
        env={"MEDFLIP_FAULT": "crash@15:rank=1"},
    )
    assert sweep.wait(600) == 0, sweep.output()[-4000:]
    assert "injected crash at step 15 on rank 1" in sweep.output()
    table = results.load(str(sweep.experiment))
    final = results.final_rows(table)
    # A restart from scratch would crash again at 15 until max_failures: completing proves
    # the trial continued from its step-10 checkpoint.
    assert len(final) == 1 and set(final["status"]) == {"completed"}
    assert steps_by_trial(table) == {t: [10, 20] for t in final["trial_id"]}
    assert (final["samples_seen"] == 20 * 16).all() and (final["num_workers"] == 2).all()
    assert not table.duplicated(["trial_id", "step"]).any()


def test_worker_killed_mid_trial_resumes_from_its_checkpoint(ray_cluster, tmp_path):
    sweep = Sweep(
        ray_cluster,
        "temperature.py",
        # 200 steps, evaluated every 50: the kill lands after the first registered checkpoint
        # with 150 steps (~8 s on a quiet machine, the poll is 0.3 s) still to go. 2 workers.
        [*ONE_TRIAL, *TWO_WORKERS, "--set", "optim.max_steps=200"]
        + ["--set", "eval.every_share=0.25"],
        tmp_path / "runs",
        "drill-worker",
        tmp_path / "sweep.log",
    )
    try:
        # a checkpoint Ray Train has registered (its report reached Tune), mid-trial
        run, pid = wait_for(
            lambda: _running_run_with_checkpoint(ray_cluster, sweep.experiment, logged=True),
            300,
            "a Train run with a checkpoint",
            every_s=0.3,
            sweep=sweep,
        )
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert b"RayTrainWorker" in cmdline, cmdline  # the Ray Train worker process itself
        before = logged_steps(sweep.experiment, run["name"])
        os.kill(pid, signal.SIGKILL)
        assert sweep.wait(600) == 0, sweep.output()[-4000:]
    finally:
        sweep.kill()
    table = results.load(str(sweep.experiment))
    final = results.final_rows(table)
    assert len(final) == 1 and set(final["status"]) == {"completed"}
    assert steps_by_trial(table) == {t: [50, 100, 150, 200] for t in final["trial_id"]}
    assert not table.duplicated(["trial_id", "step"]).any()
    killed = next(r for r in ray_cluster.train_runs() if r["id"] == run["id"])
    assert len(killed["attempts"]) == 2 and killed["status"] == "FINISHED", killed["attempts"]
    # after the kill the trial went on from its checkpoint: no step before it again
    after = logged_steps(sweep.experiment, run["name"])[len(before) :]
    assert before and after and after[0] > before[-1] and after[-1] == 200, (before, after)
    assert f"resumed from {sweep.experiment / 'train' / run['name']}/checkpoint_" in (
        sweep.output()
    )
    print(f"killed worker pid {pid} of {run['name']} after steps {before}; then {after}")


def _study(experiment: Path):
    state = sorted(experiment.glob("searcher-state-*.pkl"))[-1]
    return raycompat.optuna_study(pickle.loads(state.read_bytes())["inner"])


def test_driver_killed_mid_sweep_resumes_every_trial_once(ray_cluster, tmp_path):
    """SIGKILL the driver with one trial done, one in flight and one not yet suggested."""
    argv = ["--variant", "tiny", "--num-samples", "3", "--seeds", "1"]
    argv += ["--set", "optim.max_steps=40", "--set", "eval.every_share=0.25"]
    storage = tmp_path / "runs"
    first = Sweep(
        ray_cluster, "temperature.py", argv, storage, "drill-driver", tmp_path / "first.log"
    )
    try:

        def one_done_one_running():
            ours = [
                r
                for r in ray_cluster.train_runs()  # runs are named by trial id
                if (first.experiment / "train" / r["name"]).is_dir()
            ]
            done = [r for r in ours if r["status"] == "FINISHED"]
            busy = _running_run_with_checkpoint(ray_cluster, first.experiment)
            return (done, busy) if done and busy else None

        done, (busy, _) = wait_for(
            one_done_one_running, 400, "one trial done, one running", every_s=0.3, sweep=first
        )
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(30)
    finally:
        first.kill()
    finished_trial = done[0]["name"]
    before = results.load(str(first.experiment))
    done_rows = before[before["trial_id"] == finished_trial].reset_index(drop=True)
    params = {
        p.parent.name: json.loads(p.read_text()) for p in first.experiment.glob("*/params.json")
    }
    assert set(params) == {finished_trial, busy["name"]}  # the third was never suggested

    resumed = Sweep(
        ray_cluster,
        "temperature.py",
        [*argv, "--resume"],
        storage,
        "drill-driver",
        tmp_path / "resume.log",
    )
    assert resumed.wait(600) == 0, resumed.output()[-4000:]
    out = resumed.output()
    assert "Optuna study after resume: 3 configurations (3 planned)" in out, out[-3000:]
    table = results.load(str(first.experiment))
    final = results.final_rows(table)
    assert len(final) == 3 and set(final["status"]) == {"completed"}
    assert steps_by_trial(table) == {t: [10, 20, 30, 40] for t in final["trial_id"]}
    assert not table.duplicated(["trial_id", "step"]).any()
    # the finished trial was not run again: its rows are the ones written before the kill
    again = table[table["trial_id"] == finished_trial].reset_index(drop=True)
    assert again["wall_time_s"].tolist() == done_rows["wall_time_s"].tolist()
    assert logged_steps(first.experiment, finished_trial) == [10, 20, 30, 40]
    # the in-flight trial went on from its checkpoint, the third was suggested after
    assert logged_steps(first.experiment, busy["name"])[-1] == 40
    for trial, p in params.items():  # configurations chosen before the kill are kept
        assert json.loads((first.experiment / trial / "params.json").read_text()) == p
    study = _study(first.experiment)
    assert type(study.sampler).__name__ == "TPESampler"
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert sorted(t.params["loss.temperature"] for t in study.trials) == sorted(
        final["loss.temperature"]
    )
