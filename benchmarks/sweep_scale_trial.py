"""One sweep of benchmarks/sweep_scale.py, in its own process: the real Tuner, a synthetic trial.

Timing wrappers are patched onto the classes (not instances): Tune pickles the recorder
and the searcher into its experiment state, and a class attribute is not pickled.
"""

from __future__ import annotations

if __name__ == "__main__":  # a helper, not a benchmark: say so instead of printing nothing
    raise SystemExit(
        "benchmarks/sweep_scale_trial.py is part of a benchmark:"
        " run benchmarks/sweep_scale.py (--help lists the options)"
    )

import functools
import math
import os
import resource
import time
import types

from ray import tune
from ray.tune.search.basic_variant import BasicVariantGenerator

from medflip.sweep import cluster, launch, monitor, recorder, replicate, tuning
from medflip.sweep.spaces import get
from medflip.sweep.trial import experiment_entries

SPENT = {"recorder": 0.0, "searcher": 0.0, "suggestions": 0}


def synthetic_trial(config: dict) -> None:
    """Reports like engine.fit does (names from results.METRICS), in milliseconds."""
    reports = int(os.environ.get("SWEEP_SCALE_REPORTS", "20"))
    tau = float(config.get("loss.temperature", 0.07))
    ratio = float(config.get("mask.image_ratio", 0.0))
    seed = int(config.get("seed", 0))
    for i in range(1, reports + 1):
        acc = 0.5 - 0.05 * abs(math.log(tau / 0.07)) - 0.1 * ratio + 0.01 * (seed % 7) + i / 1e3
        tune.report(
            {
                "step": 10 * i,
                "samples_seen": 640 * i,
                "train_time_s": 0.5 * i,
                "wall_time_s": 0.6 * i,
                "device_hours": 0.5 * i / 3600,
                "device_type": "cpu",
                "loss": 3.0 / i,
                "zeroshot_acc": acc,
                "val_zeroshot_acc": acc,  # what the searcher reads (older trees: zeroshot_acc)
                "status": "completed" if i == reports else "running",
            }
        )


def _timed(cls, name: str, bucket: str, count: bool = False) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(self, *a, **kw):
        t0 = time.perf_counter()
        try:
            return original(self, *a, **kw)
        finally:
            SPENT[bucket] += time.perf_counter() - t0
            if count:
                SPENT["suggestions"] += 1

    setattr(cls, name, wrapper)


def instrument() -> None:
    for name in ("setup", "on_trial_result", "on_trial_complete", "on_experiment_end"):
        _timed(recorder.ResultsRecorder, name, "recorder")
    _timed(replicate.Replicated, "suggest", "searcher", count=True)
    _timed(replicate.Replicated, "on_trial_complete", "searcher")
    _timed(BasicVariantGenerator, "next_trial", "searcher", count=True)
    # The trainable: a function trial instead of the Train driver (same Tuner otherwise).
    tuning.trainable = lambda: tune.with_resources(synthetic_trial, {"cpu": 0.1})


def reuse_actors() -> None:
    """Trials reuse Tune's trial processes: a process start per trial (~2 s on 2 busy cores,
    constant per trial, part of orchestration.py's worker start-up) would otherwise hide the
    per-trial costs that grow with the sweep, and make 5,000 trials take hours."""
    config = tune.TuneConfig

    def with_reuse(**kw):
        return config(**{**kw, "reuse_actors": True})

    names = {k: getattr(tune, k) for k in dir(tune) if not k.startswith("__")}
    tuning.tune = types.SimpleNamespace(**{**names, "TuneConfig": with_reuse})


def make_plan(kind: str, n: int, storage: str):
    if kind == "grid":
        space = get("mask_ratio")  # 5 points x n/5 seeds
        argv = ["--seeds", str(max(1, n // 5))]
    else:
        space = get("temperature")  # n TPE suggestions x 1 seed (the CLI's default is 5)
        argv = ["--num-samples", str(n), "--seeds", "1"]
    argv += ["--storage", storage, "--name", f"scale-{kind}-{n}", "--variant", "tiny"]
    return launch.make_plan(space, launch.build_parser(space).parse_args(argv))


def disk(path: str) -> tuple[int, int]:
    files = size = 0
    for root, _, names in os.walk(path):
        for name in names:
            files += 1
            size += os.path.getsize(os.path.join(root, name))
    return files, size


def run_one(kind: str, n: int, args) -> dict:
    import psutil
    import ray

    instrument()
    if args.reuse_actors:
        reuse_actors()
    plan = make_plan(kind, n, args.storage)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    cluster.connect(None, {"SWEEP_SCALE_REPORTS": str(args.reports), "PYTHONPATH": path})
    res = cluster.Resources(1, 1.0, 0.0)
    metric, mode = plan.space.metrics[0], plan.space.modes[0]
    view = monitor.ProgressView(plan.num_trials, metric, mode, args.concurrency)
    entries = experiment_entries(plan.config, plan.experiment_dir)
    tuner = tuning.build_tuner(plan, res, args.concurrency, [view], entries)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    grid = tuner.fit()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    ray_rss = sum(_rss(p) for p in psutil.Process().children(recursive=True))
    ray.shutdown()
    trials = len(grid)
    files, size = disk(plan.experiment_dir)
    return {
        "trials": trials,
        "errors": sum(r.error is not None for r in grid),
        "driver_cpu_s": cpu / trials,
        "wall_s": wall / trials,
        "recorder_s": SPENT["recorder"] / trials,
        "searcher_s_per_suggestion": SPENT["searcher"] / max(1, SPENT["suggestions"]),
        "files": files / trials,
        "bytes": size / trials,
        "driver_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "ray_processes_rss_mb": ray_rss / 2**20,
        "total_wall_s": wall,
    }


def _rss(proc) -> int:
    try:
        return proc.memory_info().rss
    except Exception:  # exited meanwhile
        return 0
