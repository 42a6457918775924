"""A sweep's plan: the CLI's choices resolved and validated before Ray starts.

Everything that can be wrong with a sweep (a config key, a value out of range for some
trial, ASHA on a Pareto search, a name that already exists) is reported here, naming the
flag or key, before any cluster resource is touched. `trial_points` lists the trials a
grid would run (or the first ones a search would run) for `--dry-run`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from medflip import variants
from medflip.config import Config, ConfigError, apply_overrides, flatten, unflatten
from medflip.sweep.spaces import Choice, Float, Space

SCHEDULERS = ("fifo", "asha")
# Head-node memory each concurrent trial holds: its Tune trial process and Ray Train's
# controller actor run beside the GCS whatever node the workers use (ray-project/ray#65443
# reports ~600 MB). Measured here by benchmarks/head_memory.py; --head-memory-per-run-mb.
HEAD_MEMORY_PER_RUN_MB = 600.0
HEAD = "node:__internal_head__"  # the resource Ray gives the head node only
TUNER_STATE = "tuner.pkl"  # Tune's file in an experiment dir: there is something to resume


class PlanError(ValueError):
    """A bad flag or flag combination; the message names it."""


@dataclass(frozen=True)
class Plan:
    space: Space
    name: str
    storage: str  # absolute
    variant: str
    fixed: dict[str, Any]  # overrides every trial shares: space defaults, budget, --set
    axes: dict[str, Float | Choice]  # what is searched (smoke tests trim grids)
    seeds: tuple[int, ...]
    num_samples: int  # configurations (grid: 1 pass over the grid; search: suggestions)
    scheduler: str = "fifo"
    address: str | None = None
    resume: bool = False
    smoke: bool = False
    workers_per_trial: int = 1
    cpus_per_worker: float | None = None  # None: from the cluster (cluster.default_resources)
    gpus_per_worker: float | None = None
    max_concurrent: int | None = None
    max_failures: int = 2
    report_poll_s: float = 0.5
    collective_timeout_s: int = 300  # the trial's TorchConfig timeout (a hung rank fails)
    report_hooks: tuple[str, ...] = field(default_factory=tuple)
    head_memory_per_run_mb: float = HEAD_MEMORY_PER_RUN_MB
    # the flat config every trial starts from (variant + fixed), built once by `validated`;
    # flat because Ray ships it to every trial (tuning.param_space)
    base: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        """The base config every trial shares (before its searched keys and seed)."""
        if not self.base:
            raise PlanError("the plan has no base config: build it with plan.validated")
        return unflatten(self.base)

    @property
    def experiment_dir(self) -> str:
        return os.path.join(self.storage, self.name)

    @property
    def num_trials(self) -> int:
        """Tune trials the sweep runs: every configuration once per seed."""
        if self.space.kind == "grid":
            points = 1
            for axis in self.axes.values():
                points *= len(axis.values)
            return points * len(self.seeds)
        return self.num_samples * len(self.seeds)


def seeds_for(count: int, fixed: dict[str, Any]) -> tuple[int, ...]:
    """`--seeds K`: K consecutive seeds from `seed` (--set seed=S, default 0)."""
    if count < 1:
        raise PlanError(f"--seeds: must be >= 1, got {count}")
    base = int(fixed.pop("seed", 0))
    return tuple(range(base, base + count))


def fixed_overrides(space: Space, variant: str, sets: dict[str, Any]) -> dict[str, Any]:
    """Space defaults, the demo-size budget (demo variant only), then --set (which wins)."""
    clash = sorted(set(sets) & set(space.axes))
    if clash:
        raise PlanError(
            f"--set {clash[0]}: the {space.name} sweep searches this key; "
            "drop it from --set or use another sweep"
        )
    budget = space.demo_budget if variant == "demo" else {}
    return {**space.defaults, **budget, **sets}


def check_scheduler(space: Space, scheduler: str) -> None:
    if scheduler not in SCHEDULERS:
        raise PlanError(f"--scheduler: {scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    if scheduler == "asha" and space.multi_objective:
        raise PlanError(
            f"--scheduler asha: the {space.name} sweep has {len(space.metrics)} objectives "
            f"({', '.join(space.metrics)}) and Tune schedulers rank trials by one metric; "
            "the trials ASHA stops would reach Optuna as finished and look Pareto-optimal. "
            "Use --scheduler fifo."
        )


def trial_points(plan: Plan, limit: int | None = None) -> list[dict[str, Any]]:
    """The searched keys + seed of each trial: the whole grid, or a search's first points."""
    if plan.space.kind == "grid":
        points = [{}]
        for key, axis in plan.axes.items():
            points = [{**p, key: v} for p in points for v in axis.values]
    else:
        points = [dict(p) for p in plan.space.start] or [{}]
    out = [{**p, "seed": s} for p in points for s in plan.seeds]
    return out[:limit] if limit else out


def validation_points(plan: Plan) -> list[dict[str, Any]]:
    """Overrides that cover every value any trial can take: grid points, or each axis' ends."""
    points = trial_points(plan)
    if plan.space.kind != "grid":
        for key, axis in plan.axes.items():
            points += [{key: v, "seed": plan.seeds[0]} for v in axis.extremes()]
    return points


def validated(plan: Plan) -> Plan:
    """`plan` checked (`validate`) and carrying its built base config."""
    return replace(plan, base=flatten(validate(plan)))


def validate(plan: Plan) -> Config:
    """Check the variant, every trial's config, resume state and flags; returns the base
    config every trial shares (variant + fixed)."""
    try:
        base = apply_overrides(variants.get(plan.variant), plan.fixed)
    except ConfigError as exc:
        raise PlanError(f"--variant/--set: {exc}") from None
    for point in validation_points(plan):
        try:
            apply_overrides(base, point)
        except ConfigError as exc:
            raise PlanError(f"{plan.space.name} sweep, trial {point}: {exc}") from None
    check_scheduler(plan.space, plan.scheduler)
    if plan.space.kind == "grid" and plan.num_samples != 1:
        raise PlanError(
            f"--num-samples: the {plan.space.name} sweep is a grid and runs every "
            "point once per seed; use --seeds K for replicates"
        )
    for flag, value, low in (
        ("--num-samples", plan.num_samples, 1),
        ("--workers-per-trial", plan.workers_per_trial, 1),
        ("--max-failures", plan.max_failures, 0),
    ):
        if value < low:
            raise PlanError(f"{flag}: must be >= {low}, got {value}")
    if plan.max_concurrent is not None and plan.max_concurrent < 1:
        raise PlanError(f"--max-concurrent: must be >= 1, got {plan.max_concurrent}")
    if plan.cpus_per_worker is not None and plan.cpus_per_worker <= 0:
        raise PlanError(f"--cpus-per-worker: must be > 0, got {plan.cpus_per_worker}")
    if plan.gpus_per_worker is not None and plan.gpus_per_worker < 0:
        raise PlanError(f"--gpus-per-worker: must be >= 0, got {plan.gpus_per_worker}")
    if plan.head_memory_per_run_mb < 0:
        raise PlanError(
            "--head-memory-per-run-mb: must be >= 0 (0: no limit), "
            f"got {plan.head_memory_per_run_mb}"
        )
    if plan.report_poll_s <= 0:
        raise PlanError(f"--report-poll-s: must be > 0, got {plan.report_poll_s}")
    if plan.collective_timeout_s <= 0:
        raise PlanError(f"--collective-timeout-s: must be > 0, got {plan.collective_timeout_s}")
    check_gpu_sharing(plan)
    check_resume(plan)
    return base


def check_gpu_sharing(plan: Plan) -> None:
    gpus = plan.gpus_per_worker
    if plan.workers_per_trial > 1 and gpus is not None and 0 < gpus < 1:
        raise PlanError(
            f"--gpus-per-worker {gpus} with --workers-per-trial {plan.workers_per_trial}: two "
            "DDP ranks would share one GPU, which NCCL refuses; use whole GPUs per worker "
            "(or one worker per trial)"
        )


def check_resume(plan: Plan) -> None:
    exists = os.path.exists(os.path.join(plan.experiment_dir, TUNER_STATE))
    if plan.resume and not exists:
        raise PlanError(
            f"--resume: no sweep to resume at {plan.experiment_dir} "
            f"(no {TUNER_STATE}); check --name and --storage"
        )
    if not plan.resume and exists:
        raise PlanError(
            f"--name {plan.name}: {plan.experiment_dir} already holds a sweep; "
            "pass --resume to continue it, or choose another --name"
        )


def head_memory_mb(nodes: list[dict[str, float]]) -> float | None:
    """The head node's Ray `memory` resource in MB (None when the nodes do not say)."""
    heads = [n for n in nodes if n.get(HEAD)] or (nodes if len(nodes) == 1 else [])
    mem = heads[0].get("memory") if heads else None
    return mem / 2**20 if mem else None


def head_limit(plan: Plan, nodes: list[dict[str, float]], fit: int) -> tuple[int, str]:
    """`fit` trials at once, fewer when the head's memory holds fewer concurrent Train runs;
    and the sentence saying so (for --dry-run and the sweep's first lines)."""
    per_run, head = plan.head_memory_per_run_mb, head_memory_mb(nodes)
    if not per_run or head is None:
        return fit, ""
    holds = max(1, int(head // per_run))
    text = (
        f"head memory {head:,.0f} MB holds {holds} concurrent Train run(s) at "
        f"{per_run:,.0f} MB each (--head-memory-per-run-mb)"
    )
    if holds < fit:
        return holds, f"; limited by the head: {text}"
    return fit, f"; {text}"
