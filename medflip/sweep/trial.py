"""One sweep trial = one Ray Train `TorchTrainer` run (the Ray Train V2 + Tune pattern).

`train_driver_fn(config)` is the Tune trial: it builds and fits a TorchTrainer whose
workers run `train_fn_per_worker`, and Train's `TuneReportCallback` forwards rank 0's
metrics (and the persisted checkpoint's path) to Tune. Passing a Trainer to the Tuner is
gone in Ray 2.60, and `ray.train.report` cannot be called from a plain Tune function.

The trial config (Tune's param_space, see tuning.py) carries: `base` (the flat config every
trial shares, built by the plan), the searched dotted keys and `seed` at the top level,
`resources`, `max_failures`, `train_storage`, `report_poll_s`, `objectives` and
`report_hooks`.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import time
from collections.abc import Callable

import ray.train
import ray.train.torch
import ray.tune
import torch
from ray.tune.integration.ray_train import TuneReportCallback

from medflip.config import KEYS, Config, apply_overrides, unflatten
from medflip.sweep import raycompat, trial_logs

ReportHook = Callable[[dict, dict], None]

# Fault drills only (tests/cluster/test_drills.py, tests/test_sweep_ray.py): "crash@STEP" raises
# at STEP on the first attempt, "nan@STEP" makes that step's loss NaN; ":rank=R" limits it to
# one rank. Read in the sweep's process (fault_from_env) and carried in the trial config, so
# it reaches workers on any node. Never a config key: it is not a training setting.
FAULT_ENV = "MEDFLIP_FAULT"
# Collective timeout on the trial's TorchConfig: a rank that stops answering fails the
# attempt after this long (Ray Train then restarts it from its checkpoint) instead of
# torch's 30-minute default. Evaluation on rank 0 runs while the others wait: keep it longer.
DEFAULT_COLLECTIVE_TIMEOUT_S = 300


def fault_from_env() -> str:
    return os.environ.get(FAULT_ENV, "")


def fault_hook(spec: str, rank: int, resumed: bool) -> Callable[[int, dict], dict] | None:
    """engine.Hooks.before_step for a MEDFLIP_FAULT spec (None: no fault on this rank)."""
    if not spec:
        return None
    what, _, rest = spec.partition("@")
    step_text, _, only = rest.partition(":rank=")
    if what not in ("crash", "nan") or not step_text.isdigit():
        raise ValueError(f"{FAULT_ENV}={spec!r}: expected crash@STEP or nan@STEP[:rank=R]")
    if (only and int(only) != rank) or (what == "crash" and resumed):
        return None
    at = int(step_text)

    def before_step(step: int, batch: dict) -> dict:
        if step != at:
            return batch
        if what == "crash":
            raise RuntimeError(f"{FAULT_ENV}: injected crash at step {step} on rank {rank}")
        return {**batch, "image": batch["image"] * float("nan")}

    return before_step


def experiment_entries(cfg: Config, experiment_dir: str) -> dict:
    """Trial-config entries every trial of an experiment shares, made before any starts:
    the one tokenizer (built into the experiment dir) and the drill's fault spec."""
    from medflip.data.dataset import build_tokenizer
    from medflip.data.tokenizer import experiment_tokenizer

    path, digest = experiment_tokenizer(cfg, experiment_dir, lambda: build_tokenizer(cfg))
    return {"tokenizer": {"path": path, "hash": digest}, "fault": fault_from_env()}


def build_config(config: dict) -> Config:
    """The trial's full Config: the plan's base + its own searched keys and seed."""
    own = {k: v for k, v in config.items() if k in KEYS}
    return apply_overrides(unflatten(config["base"]), own)


def load_hooks(names: list[str]) -> list[ReportHook]:
    """ "module:function" names -> callables called as hook(metrics, context) at each report.

    The seam for per-trial telemetry in the worker (e.g. ray.util.metrics gauges).
    """
    hooks = []
    for name in names:
        module, _, attr = name.partition(":")
        if not attr:
            raise ValueError(f"report hook {name!r}: expected 'module:function'")
        hooks.append(getattr(importlib.import_module(module), attr))
    return hooks


def make_report(objectives: list[str], hooks: list[ReportHook], context: dict):
    """The `report` engine.fit calls at each evaluation, on every rank.

    Objectives missing from a report (a diverged run's last report has no evaluation) are
    filled with NaN: Tune rejects results without the searched metric, and Optuna records a
    NaN objective as a failed configuration.
    """

    def report(metrics: dict, checkpoint_dir: str | None) -> None:
        metrics = dict(metrics)
        if "driver_start" in context:  # true cost: worker start-up and retries included
            metrics["held_time_s"] = time.time() - context["driver_start"]
        for key in objectives:
            metrics.setdefault(key, math.nan)
        for hook in hooks:
            hook(metrics, context)
        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        # Persists the checkpoint into the run's storage before returning (engine then
        # deletes its temporary directory).
        ray.train.report(metrics, checkpoint=checkpoint)

    return report


def _quiet_report_logging() -> None:
    """Ray 2.60 logs each report's whole metrics dict at INFO from a logger named by file
    path (`getLogger(__file__)`), which escapes RunConfig's LoggingConfig: quiet that one."""
    logging.getLogger(raycompat.train_report_logger_name()).setLevel(logging.WARNING)


def train_fn_per_worker(config: dict) -> None:
    """Runs on each Ray Train worker: build the config, prepare DDP, train, report."""
    _quiet_report_logging()
    # Imported here: the Tune driver and the results recorder need this module, not the
    # training stack.
    from medflip.training import engine

    cfg = build_config(config)
    ctx = ray.train.get_context()
    res = config["resources"]
    if not res["gpus_per_worker"]:
        torch.set_num_threads(max(1, int(res["cpus_per_worker"])))
    checkpoint = ray.train.get_checkpoint()
    rank, tokenizer = ctx.get_world_rank(), config.get("tokenizer", {})
    # this worker's stdout/stderr also in <experiment>/<trial>/worker-<rank>.log
    experiment_dir = os.path.dirname(config["train_storage"])
    trial_logs.tee_output(trial_logs.log_path(experiment_dir, config.get("trial_id", ""), rank))
    fault = fault_hook(config.get("fault", ""), rank, resumed=checkpoint is not None)
    hooks = engine.Hooks(
        prepare_model=ray.train.torch.prepare_model,
        rank=rank,
        world_size=ctx.get_world_size(),
        tokenizer_file=tokenizer.get("path", ""),
        tokenizer_hash=tokenizer.get("hash", ""),
        **({"before_step": fault} if fault else {}),
    )
    context = {
        "trial_id": config.get("trial_id", ""),
        "rank": hooks.rank,
        "experiment": config.get("experiment", ""),
        "driver_start": config.get("driver_start", time.time()),
    }
    report = make_report(
        list(config.get("objectives", ())),
        load_hooks(list(config.get("report_hooks", ()))),
        context,
    )
    try:
        if checkpoint is None:
            engine.fit(cfg, report=report, hooks=hooks)
            return
        # A restart (worker failure or a resumed sweep): continue from the last checkpoint.
        with checkpoint.as_directory() as directory:
            engine.fit(cfg, report=report, resume_from=directory, hooks=hooks)
    except BaseException:
        trial_logs.print_failure(rank)  # the traceback beside the trial's output
        raise


def train_driver_fn(config: dict) -> None:
    """The Tune trial: one TorchTrainer run named by the trial id.

    The run's storage is `<experiment>/train/<trial_id>`; a re-run of the same trial (after
    `--resume`) finds the run's checkpoints there and continues from the latest.
    """
    # Each report waits for the controller's poll (default 2 s): small trials lower it.
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = str(config["report_poll_s"])
    trial_id = ray.tune.get_context().get_trial_id()
    res = config["resources"]
    per_worker = {"CPU": float(res["cpus_per_worker"])}
    if res["gpus_per_worker"]:
        per_worker["GPU"] = float(res["gpus_per_worker"])
    trainer = ray.train.torch.TorchTrainer(
        train_fn_per_worker,
        train_loop_config={**config, "trial_id": trial_id, "driver_start": time.time()},
        scaling_config=ray.train.ScalingConfig(
            num_workers=int(res["num_workers"]),
            use_gpu=bool(res["gpus_per_worker"]),
            resources_per_worker=per_worker,
        ),
        torch_config=ray.train.torch.TorchConfig(
            timeout_s=int(config.get("collective_timeout_s", DEFAULT_COLLECTIVE_TIMEOUT_S))
        ),
        run_config=ray.train.RunConfig(
            name=trial_id,
            storage_path=config["train_storage"],
            failure_config=ray.train.FailureConfig(max_failures=int(config["max_failures"])),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=[TuneReportCallback()],
            # Ray Train's INFO lines would bury Tune's progress table.
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
        ),
    )
    trainer.fit()
