"""The shared sweep CLI: parse, validate, then build and run (or restore) the Tuner.

Every `sweeps/<name>.py` calls `main("<name>")`. Validation (plan.py) finishes before Ray
starts. Each Tune trial is `trial.train_driver_fn`, a driver that reserves no CPU/GPU and
starts a Ray Train worker group; `max_concurrent_trials` comes from how many worker groups
the cluster holds at once (cluster.py), so trials never wait on each other's workers.
Results go to `<storage>/<name>/results.parquet` while the sweep runs (recorder.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from medflip import variants
from medflip.config import ConfigError, overrides_from_cli
from medflip.sweep import cli_checks
from medflip.sweep.plan import (
    HEAD,
    HEAD_MEMORY_PER_RUN_MB,
    SCHEDULERS,
    Plan,
    PlanError,
    fixed_overrides,
    head_limit,
    seeds_for,
    trial_points,
    validated,
)
from medflip.sweep.spaces import Space, get

if TYPE_CHECKING:  # Ray (cluster.py) loads after argparse: `--help` answers at once
    from medflip.sweep import cluster

SMOKE_TRIALS = 2
# --seeds: one seed gives no seed-level interval and no verdict; at 5 a paired t has 4 df
# (README Statistics)
DEFAULT_SEEDS = 5


def build_parser(space: Space, prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog or f"sweeps/{space.name}.py",
        description=f"{space.name} sweep: {space.figure}. Each trial is a Ray Train run.",
    )
    add = p.add_argument
    add(
        "--address",
        default=None,
        help="Ray cluster to join ('auto': the one `ray start --head` started); "
        "default: start local Ray sized to this machine",
    )
    add("--name", default=None, help="experiment name (default: the sweep's name)")
    add("--storage", default="./runs", help="where experiments live (default ./runs)")
    add(
        "--num-samples",
        type=int,
        default=None,
        help=f"configurations a search tries (default {space.num_samples}); grids: 1",
    )
    add(
        "--seeds",
        type=int,
        default=None,  # None: not given, so --smoke-test can tell and run 1
        help=f"replicates of every configuration (default {DEFAULT_SEEDS}; --smoke-test: 1)",
    )
    add(
        "--max-concurrent",
        type=int,
        default=None,
        help="cap on trials at once (default: as many worker groups as the cluster holds)",
    )
    add("--workers-per-trial", type=int, default=1, help="Ray Train workers (DDP ranks)")
    add("--gpus-per-worker", type=float, default=None, help="default: 1 if the cluster has GPUs")
    add(
        "--cpus-per-worker",
        type=float,
        default=None,
        help="default: a node's CPUs per GPU, or a whole node shared by a trial's workers",
    )
    add("--variant", default=None, help=f"base config ({', '.join(variants.NAMES)}); default demo")
    add(
        "--config",
        default=None,
        metavar="FILE",
        help="TOML file of dotted config keys for every trial; --set overrides it "
        "(python -m medflip.config lists the keys)",
    )
    add(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for every trial (repeatable)",
    )
    add(
        "--scheduler",
        default="fifo",
        choices=SCHEDULERS,
        help="asha stops weak trials early (single-objective sweeps only)",
    )
    add(
        "--max-failures",
        type=int,
        default=2,
        help="worker-group restarts per trial, each from the last checkpoint",
    )
    add(
        "--report-poll-s",
        type=float,
        default=0.5,
        help="Ray Train controller poll interval: each report waits for it (Ray's default 2)",
    )
    add(
        "--head-memory-per-run-mb",
        type=float,
        default=HEAD_MEMORY_PER_RUN_MB,
        help="head-node memory each concurrent Train run holds; caps trials at once (0: off)",
    )
    add(
        "--collective-timeout-s",
        type=int,
        default=300,
        help="a worker's collectives fail after this long without an answer (a hung rank); "
        "Ray Train then restarts the trial from its checkpoint (default 300)",
    )
    add("--resume", action="store_true", help="continue the experiment --name")
    add(
        "--smoke-test",
        action="store_true",
        help=f"tiny variant, {SMOKE_TRIALS} trials, 1 seed unless --seeds is given: checks the "
        "whole path in minutes",
    )
    add("--dry-run", action="store_true", help="print the trials and exit; Ray is not started")
    return p


def make_plan(space: Space, args: argparse.Namespace) -> Plan:
    """The validated plan for `args` (raises PlanError naming the flag or key)."""
    if args.smoke_test and args.variant not in (None, "tiny"):
        raise PlanError("--smoke-test runs the tiny variant; drop --variant")
    variant = "tiny" if args.smoke_test else (args.variant or "demo")
    try:
        sets = overrides_from_cli(args.config, args.set)
    except ConfigError as exc:
        raise PlanError(str(exc)) from None
    cli_checks.searched_in_config_file(space, args.config)
    fixed = fixed_overrides(space, variant, sets)
    seeds = seeds_for(cli_checks.seeds_count(args, DEFAULT_SEEDS), fixed)
    grid = space.kind == "grid"
    num_samples = args.num_samples or (1 if grid else space.num_samples)
    if args.smoke_test and not grid:
        num_samples = SMOKE_TRIALS
    plan = Plan(
        space=space,
        name=args.name or (space.name.replace("_", "-") + ("-smoke" if args.smoke_test else "")),
        # a URI is kept as given, for preflight.check_storage to refuse by name
        storage=args.storage if "://" in args.storage else os.path.abspath(args.storage),
        variant=variant,
        fixed=fixed,
        axes=space.smoke_axes() if (args.smoke_test and grid) else dict(space.axes),
        seeds=seeds,
        num_samples=num_samples,
        scheduler=args.scheduler,
        address=args.address,
        resume=args.resume,
        smoke=args.smoke_test,
        workers_per_trial=args.workers_per_trial,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker,
        max_concurrent=args.max_concurrent,
        max_failures=args.max_failures,
        report_poll_s=args.report_poll_s,
        head_memory_per_run_mb=args.head_memory_per_run_mb,
        collective_timeout_s=args.collective_timeout_s,
    )
    plan = validated(plan)
    from medflip.data import checks  # the data root, eval sets, tokenizer: before Ray starts

    try:
        gpus = cli_checks.worker_gpus(plan.gpus_per_worker, plan.address)  # fp16 on a CPU
        checks.check_sweep(plan.config, gpus)
    except ConfigError as exc:
        raise PlanError(str(exc)) from None
    if plan.resume:
        from medflip.sweep import settings

        note = settings.check(plan)
        if note:
            print(note, file=sys.stderr)
    return plan


def describe(plan: Plan, res: cluster.Resources | None, concurrency: int | None, nodes=None) -> str:
    """What will run, for the terminal (and all of --dry-run's output)."""
    s = plan.space
    objectives = ", ".join(f"{m} ({d})" for m, d in zip(s.metrics, s.modes, strict=True))
    lines = [
        f"sweep {s.name}: {s.figure}",
        f"experiment {plan.experiment_dir} ({'resume' if plan.resume else 'new'})",
        f"results    {os.path.join(plan.experiment_dir, 'results.parquet')}",
        f"variant {plan.variant}; every trial: {plan.fixed or '{}'}",
        f"objective  {objectives}; scheduler {plan.scheduler}",
    ]
    if s.kind == "grid":
        lines.append(f"{plan.num_trials} trials (grid x {len(plan.seeds)} seed(s)):")
        lines += [f"  {i:>3}  {p}" for i, p in enumerate(trial_points(plan))]
    else:
        axes = ", ".join(f"{k} in {_axis_text(a)}" for k, a in plan.axes.items())
        lines.append(
            f"{plan.num_trials} trials: {plan.num_samples} Optuna TPE suggestions x "
            f"{len(plan.seeds)} seed(s) {list(plan.seeds)} over {axes}"
        )
        if s.start:
            lines.append(f"  evaluated first: {list(s.start)}")
    if res is not None:
        lines.append(
            f"each trial: {res.num_workers} worker(s) x {res.per_worker()}; "
            f"{concurrency} trial(s) at once" + head_limit(plan, nodes or [], concurrency)[1]
        )
        from medflip.sweep import estimate  # wall time and device-hours before launch

        lines += estimate.plan_lines(plan, res, concurrency)
    return "\n".join(lines)


def _axis_text(axis) -> str:
    if hasattr(axis, "low"):
        return f"[{axis.low}, {axis.high}]" + (" log" if axis.log else "")
    return "{" + ", ".join(map(str, axis.values)) + "}"


def _local_nodes() -> list[dict[str, float]]:
    import importlib

    import ray  # noqa: F401  (puts ray/thirdparty_files, where psutil lives, on sys.path)
    import torch

    psutil = importlib.import_module("psutil")  # only importable once Ray is
    # Ray's default `memory` resource: 70% of what is available when it starts.
    memory = 0.7 * psutil.virtual_memory().available
    cpus, gpus = float(os.cpu_count() or 1), float(torch.cuda.device_count())
    return [{"CPU": cpus, "GPU": gpus, "memory": memory, HEAD: 1.0}]


def resolve_resources(plan: Plan, nodes) -> tuple[cluster.Resources, int]:
    from medflip.sweep import cluster

    try:
        res = cluster.default_resources(
            nodes, plan.workers_per_trial, plan.cpus_per_worker, plan.gpus_per_worker
        )
        fit = cluster.trial_concurrency(nodes, res, plan.max_concurrent)
        return res, head_limit(plan, nodes, fit)[0]
    except ValueError as exc:
        raise PlanError(str(exc)) from None


def run(plan: Plan, callbacks: Sequence = ()) -> int:
    """Start or join Ray, run or resume the sweep, print where the results are."""
    from medflip.sweep import cluster, monitor, preflight, settings, tuning
    from medflip.sweep.trial import experiment_entries

    # Storage and address are checked before Ray starts: a clear error, nothing written.
    preflight.check_storage(plan.storage)
    address = preflight.resolve_address(plan.address)
    try:
        cluster.connect(address)
    except ConnectionError as exc:  # ray.init's "Failed to connect": say why
        raise preflight.connect_error(plan.address, exc) from None
    try:
        if plan.address:
            leftovers = cluster.wait_for_leftovers(plan.experiment_dir)
            if leftovers:
                print(cluster.clear_hint(plan.experiment_dir, leftovers), file=sys.stderr)
                return 2
        nodes = cluster.node_resources()
        res, concurrency = resolve_resources(plan, nodes)
        print(describe(plan, res, concurrency, nodes), flush=True)
        from medflip.data import prepare  # a real source: read once here, not per worker
        from medflip.sweep.prepare import mapper

        prepare.ensure(plan.config, mapper(address) if address else None)
        s = plan.space
        view = monitor.ProgressView(plan.num_trials, s.metrics[0], s.modes[0], concurrency)
        callbacks = [view, *callbacks]
        os.makedirs(plan.experiment_dir, exist_ok=True)
        if not plan.resume:
            settings.save(plan)
        cluster.record_job(plan.experiment_dir)
        if plan.resume:
            tuner = tuning.restore_tuner(plan, list(callbacks))
        else:
            # the experiment's one tokenizer, built now (before any trial), and a drill's fault
            entries = experiment_entries(plan.config, plan.experiment_dir)
            tuner = tuning.build_tuner(plan, res, concurrency, list(callbacks), entries)
        grid = tuner.fit()
        tuning.check_searcher_after(tuner, plan)
        return tuning.summarize(plan, grid)
    finally:
        import ray

        ray.shutdown()


def main(
    space_name: str,
    argv: Sequence[str] | None = None,
    callbacks: Sequence = (),
    report_hooks: Sequence[str] = ("medflip.sweep.monitor:record_metrics",),
    prog: str | None = None,
) -> int:
    """The CLI of every sweeps/*.py.

    `callbacks`: extra Tune callbacks (driver side, e.g. a progress view);
    `report_hooks`: "module:function" names each worker calls at every report as
    hook(metrics, {"experiment", "trial_id", "rank"}) (default: the live Prometheus gauges);
    `prog`: the name usage lines show (default sweeps/<name>.py).
    """
    space = get(space_name)
    args = build_parser(space, prog).parse_args(argv)
    from medflip.sweep import preflight  # Ray's helpers: after argparse
    from medflip.sweep.preflight import PreflightError

    try:
        plan = dataclasses.replace(make_plan(space, args), report_hooks=tuple(report_hooks))
        if args.dry_run:
            preflight.check_storage(plan.storage)  # a dry run refuses what the real run would
            nodes = None if plan.address else _local_nodes()
            res, conc = resolve_resources(plan, nodes) if nodes else (None, None)
            print(describe(plan, res, conc, nodes))
            return 0
        return run(plan, callbacks)
    except (PlanError, PreflightError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
