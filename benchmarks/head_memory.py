"""Head-node memory per concurrent Ray Train run (what `plan.HEAD_MEMORY_PER_RUN_MB` holds).

Each sweep trial is a Tune trial process (`train_driver_fn`) plus Ray Train's controller
actor; both run beside the head's GCS and raylet, whatever node the workers land on
(ray-project/ray#65443: ~600 MB per concurrent run). Here: K = 1..--runs concurrent
TorchTrainer runs, each one worker that sleeps, started through the sweep's own trial
function; measured: the RSS of the processes Ray names `ray::TrainController` and
`ray::ImplicitFunc` (the trial), summed, and the growth of GCS + raylet + dashboard, per run.

Usage: python benchmarks/head_memory.py [--runs 2] [--hold-s 25]. JSON last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HEAD = ("gcs_server", "raylet", "dashboard")
PER_RUN = ("ray::TrainController", "ray::ImplicitFunc", "ray::_Inner")


def sleeper(config: dict) -> None:
    time.sleep(float(config["hold_s"]))


def trial(config: dict) -> None:
    import ray.train
    from ray.train.torch import TorchTrainer

    trainer = TorchTrainer(
        sleeper,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 0.1}),
        run_config=ray.train.RunConfig(storage_path=config["storage"], name=config["name"]),
    )
    trainer.fit()


def rss_by_role() -> dict[str, float]:
    import psutil

    out = {"head": 0.0, "per_run": 0.0}
    for p in psutil.process_iter(["cmdline", "memory_info"]):
        line = " ".join(p.info["cmdline"] or [])
        mem = p.info["memory_info"].rss / 2**20 if p.info["memory_info"] else 0.0
        if any(line.startswith(r) for r in PER_RUN):
            out["per_run"] += mem
        elif any(h in line for h in HEAD) and "ray" in line:
            out["head"] += mem
    return out


def measure(k: int, hold_s: float) -> dict[str, float]:
    import ray
    from ray import tune

    storage = tempfile.mkdtemp(prefix="head-mem-")
    ray.init(num_cpus=2, include_dashboard=True)
    idle = rss_by_role()
    space = {
        "hold_s": hold_s,
        "storage": storage,
        "name": tune.grid_search(list(map(str, range(k)))),
    }
    fn = tune.with_resources(trial, {"cpu": 0.01})
    tuner = tune.Tuner(
        fn,
        param_space=space,
        tune_config=tune.TuneConfig(max_concurrent_trials=k),
        run_config=tune.RunConfig(storage_path=storage, name="head-mem"),
    )
    import threading

    runner = threading.Thread(target=tuner.fit)
    runner.start()
    time.sleep(hold_s * 0.7)  # every run up, its worker sleeping
    busy = rss_by_role()
    runner.join()
    ray.shutdown()
    return {
        "runs": k,
        "per_run_processes_mb": busy["per_run"] / k,
        "head_growth_mb": (busy["head"] - idle["head"]) / k,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--hold-s", type=float, default=25.0)
    args = p.parse_args()
    load = Path("/proc/loadavg").read_text().split()[:3] if os.path.exists("/proc/loadavg") else []
    figures = [measure(k, args.hold_s) for k in range(1, args.runs + 1)]
    for f in figures:
        print(f)
    per_run = max(f["per_run_processes_mb"] + max(0.0, f["head_growth_mb"]) for f in figures)
    print(json.dumps({"by_runs": figures, "head_mb_per_run": round(per_run), "loadavg": load}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
