"""The Tuner of a plan: param space, Optuna search (seeds replicated), scheduler, reporter.

Tune-level config comes from `ray.tune` (RunConfig, FailureConfig), Train-level from
`ray.train` (trial.py): different classes in Ray 2.60. Metric and mode are given to the
searcher and scheduler, not to TuneConfig, so single- and multi-objective spaces share one
path (Tune's TuneConfig takes one metric).
"""

from __future__ import annotations

import glob
import logging
import os

from ray import tune
from ray.tune import CLIReporter
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from medflip.results import table as results
from medflip.sweep import cluster, raycompat
from medflip.sweep.journal import journal_storage, study_path
from medflip.sweep.plan import Plan, PlanError
from medflip.sweep.recorder import ResultsRecorder
from medflip.sweep.replicate import Replicated
from medflip.sweep.trial import train_driver_fn

log = logging.getLogger("medflip.sweep")


def trial_name(trial) -> str:
    """Trial names and directories are the trial id (the results table's `trial_id`)."""
    return trial.trial_id


def trainable():
    """The Tune trainable: the driver holds no CPU/GPU (its workers do), a little memory."""
    return tune.with_resources(train_driver_fn, {"cpu": 0, "memory": cluster.DRIVER_MEMORY_BYTES})


def param_space(plan: Plan, res: cluster.Resources, entries: dict) -> dict:
    """Every trial's config; grids enumerate axes x seeds, searches fill axes and seed.
    `entries`: what every trial shares beyond the config (trial.experiment_entries)."""
    space = {
        "sweep": plan.space.name,
        "experiment": plan.name,
        "base": dict(plan.base),  # the flat base config; each trial adds its keys and seed
        "resources": {
            "num_workers": res.num_workers,
            "cpus_per_worker": res.cpus_per_worker,
            "gpus_per_worker": res.gpus_per_worker,
        },
        "max_failures": plan.max_failures,
        "train_storage": os.path.join(plan.experiment_dir, "train"),
        "report_poll_s": plan.report_poll_s,
        "objectives": list(plan.space.metrics),
        "report_hooks": list(plan.report_hooks),
        "collective_timeout_s": plan.collective_timeout_s,
        **entries,
    }
    if plan.space.kind == "grid":
        for key, axis in plan.axes.items():
            space[key] = tune.grid_search(list(axis.values))
        space["seed"] = tune.grid_search(list(plan.seeds))
    return space


def search_alg(plan: Plan) -> Searcher | None:
    """Optuna TPE over the space's define-by-run function, each suggestion run per seed."""
    if plan.space.kind == "grid":
        return None  # Tune's grid: exact enumeration, nothing to learn or to restore
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    s = plan.space
    metric, mode = (
        (list(s.metrics), list(s.modes)) if s.multi_objective else (s.metrics[0], s.modes[0])
    )
    inner = OptunaSearch(
        space=s.define,
        metric=metric,
        mode=mode,
        points_to_evaluate=[dict(p) for p in s.start] or None,
        sampler=optuna.samplers.TPESampler(seed=plan.seeds[0]),
        study_name=plan.name,
        storage=journal_storage(plan.experiment_dir),
    )
    return Replicated(inner, list(plan.seeds))


def make_scheduler(plan: Plan):
    if plan.scheduler != "asha":
        return None
    # One rung per few evaluations; max_t large: the trial's own budget ends it.
    return ASHAScheduler(
        time_attr="training_iteration",
        metric=plan.space.metrics[0],
        mode=plan.space.modes[0],
        max_t=10_000,
        grace_period=2,
        reduction_factor=3,
    )


def reporter(plan: Plan) -> CLIReporter:
    """A compact progress table: the searched keys, seed, and a few key metrics."""
    params = {k: k.split(".")[-1] for k in plan.space.axes}
    params["seed"] = "seed"
    metrics = {
        "step": "step",
        "train_time_s": "train_s",
        "zeroshot_acc": "zs_acc",
        "probe_acc": "probe",
        "status": "status",
    }
    if "device_hours" in plan.space.metrics:
        metrics["device_hours"] = "dev_h"
    return CLIReporter(
        parameter_columns=params,
        metric_columns=metrics,
        max_report_frequency=30,
        max_progress_rows=30,
        max_error_rows=10,
    )


def bounded_trial_files() -> None:
    """Tune's per-trial loggers cut to the JSON one (params.json/.pkl, result.json: what
    the results rebuild and Tune's restore read): no progress.csv, no TensorBoard events,
    3 files per trial instead of 5 (ray-project/ray#23451: inode quotas at scale). The
    JsonLoggerCallback is passed in RunConfig; this stops Tune adding the others."""
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"


def build_tuner(
    plan: Plan, res: cluster.Resources, concurrency: int, callbacks: list, entries: dict
):
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # else Tune ignores the CLIReporter
    bounded_trial_files()
    study = study_path(plan.experiment_dir)
    print(f"optuna study {study} (live view: optuna-dashboard {study})", flush=True)
    if plan.space.kind == "grid":  # no searcher writes the study: record the grid's trials
        from medflip.sweep.grid_journal import GridStudyRecorder

        callbacks = [GridStudyRecorder(plan), *callbacks]
    return tune.Tuner(
        trainable(),
        param_space=param_space(plan, res, entries),
        tune_config=tune.TuneConfig(
            num_samples=plan.num_samples * (len(plan.seeds) if plan.space.kind != "grid" else 1),
            search_alg=search_alg(plan),
            scheduler=make_scheduler(plan),
            max_concurrent_trials=concurrency,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=plan.name,
            storage_path=plan.storage,
            callbacks=[ResultsRecorder(plan.experiment_dir), JsonLoggerCallback(), *callbacks],
            progress_reporter=reporter(plan),
            verbose=1,
            # Worker failures are retried by Ray Train (trial.py); a driver failure is final.
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )


def restore_tuner(plan: Plan, callbacks: list):
    """Tuner.restore of the experiment: unfinished trials continue from their checkpoints,
    finished ones are kept, failed ones stay failed; the Optuna state must come back too."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    bounded_trial_files()
    tuner = tune.Tuner.restore(
        plan.experiment_dir,
        trainable(),
        resume_unfinished=True,
        resume_errored=False,
        restart_errored=False,
    )
    run_config = raycompat.restored_run_config(tuner)  # no public setter on restore
    for cb in run_config.callbacks:
        if isinstance(cb, ResultsRecorder):
            cb.experiment_dir = plan.experiment_dir  # the experiment may have moved
    if not any(isinstance(cb, JsonLoggerCallback) for cb in run_config.callbacks):
        callbacks = [JsonLoggerCallback(), *callbacks]  # an experiment from before the cut
    run_config.callbacks = [*run_config.callbacks, *callbacks]
    check_searcher_before(tuner, plan)
    return tuner


def _restored_searcher(tuner):
    alg = raycompat.restored_search_alg(tuner)
    while isinstance(alg, ConcurrencyLimiter):
        alg = alg.searcher
    return alg


def check_searcher_before(tuner, plan: Plan) -> None:
    """Refuse to resume a search without its Optuna state (never a silent fresh search)."""
    if plan.space.kind == "grid":
        return
    alg = _restored_searcher(tuner)
    if not isinstance(alg, Replicated) or type(alg.inner).__name__ != "OptunaSearch":
        raise PlanError(
            f"--resume: the experiment's search algorithm is {type(alg).__name__}, "
            "not the Optuna search it was started with; refusing to continue"
        )
    if not glob.glob(os.path.join(plan.experiment_dir, "searcher-state-*.pkl")):
        raise PlanError(
            f"--resume: no Optuna search state in {plan.experiment_dir}; "
            "resuming would restart the search from scratch"
        )


def check_searcher_after(tuner, plan: Plan) -> None:
    if plan.space.kind == "grid" or not plan.resume:
        return
    study = raycompat.optuna_study(_restored_searcher(tuner).inner)
    print(
        f"Optuna study after resume: {len(study.trials)} configurations "
        f"({plan.num_samples} planned)"
    )


def summarize(plan: Plan, grid) -> int:
    """Print each trial's final row; 0 when at least one trial finished its training."""
    path = os.path.join(plan.experiment_dir, results.FILENAME)
    try:
        final = results.final_rows(results.load(path))
    except (FileNotFoundError, results.ResultsError) as exc:
        print(f"no results: {exc}")
        return 1
    cols = [
        "trial_id",
        *plan.space.axes,
        "seed",
        "status",
        "step",
        "train_time_s",
        *[m for m in ("zeroshot_acc", "device_hours", "probe_acc")],
    ]
    print(final[[c for c in dict.fromkeys(cols) if c in final.columns]].to_string(index=False))
    counts = final["status"].value_counts().to_dict()
    print(f"{len(final)} trials {counts}; results: {path}")
    print(f"frontier: python analysis/frontier.py {plan.experiment_dir}")
    print(f"each trial's output: {plan.experiment_dir}/<trial_id>/worker-<rank>.log")
    errors = [r for r in grid if r.error is not None]
    for r in errors[:5]:
        first = (str(r.error).strip().splitlines() or [""])[0][:300]
        print(f"trial {os.path.basename(r.path)} failed: {type(r.error).__name__}: {first}")
        print(f"  traceback: {os.path.join(r.path, 'error.txt')}")
        print(f"  output:    {os.path.join(r.path, 'worker-0.log')}")
    return 0 if counts.get("completed", 0) + counts.get("diverged", 0) > 0 else 1
