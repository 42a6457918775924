"""What a sweep was started with, kept in its experiment so `--resume` can be checked.

`Tuner.restore` continues every trial with the config Tune stored for it: `--set`,
`--variant`, `--seeds` or resource flags given on resume would be ignored while `--dry-run`
and the sweep's banner showed them. So a resume whose settings differ from the recorded
ones is refused before Ray starts, naming each key (medflip.training.resume's rule, with no key
safe to change: none would reach the restored trials).
"""

from __future__ import annotations

import json
import os
from typing import Any

from medflip.sweep.plan import Plan, PlanError
from medflip.training import resume

FILENAME = "medflip_settings.json"


def record(plan: Plan) -> dict[str, Any]:
    """Every setting that shapes the trials: each config key, then the sweep's own flags."""
    config = dict(plan.base)
    config.pop("seed", None)  # the seeds are the --seeds entry
    flags = {
        "sweep": plan.space.name,
        "variant": plan.variant,
        "searched axes": {k: repr(a) for k, a in plan.axes.items()},
        "--seeds": list(plan.seeds),
        "--num-samples": plan.num_samples,
        "--scheduler": plan.scheduler,
        "--workers-per-trial": plan.workers_per_trial,
        "--cpus-per-worker": plan.cpus_per_worker,
        "--gpus-per-worker": plan.gpus_per_worker,
        "--max-concurrent": plan.max_concurrent,
        "--max-failures": plan.max_failures,
        "--report-poll-s": plan.report_poll_s,
    }
    # JSON round trip: what is compared is exactly what the file holds (tuples -> lists).
    return json.loads(json.dumps({**config, **flags}))


def save(plan: Plan) -> str:
    """Write the record of a new sweep (atomically) into its experiment directory."""
    path = os.path.join(plan.experiment_dir, FILENAME)
    os.makedirs(plan.experiment_dir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record(plan), f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def check(plan: Plan) -> str | None:
    """Raise PlanError when `plan` would resume under other settings than it started with.

    Returns a note when the experiment predates these records (nothing to compare).
    """
    path = os.path.join(plan.experiment_dir, FILENAME)
    try:
        with open(path) as f:
            saved = json.load(f)
    except FileNotFoundError:
        return (
            f"note: {plan.experiment_dir} has no {FILENAME} (started by an older medflip): "
            "its settings cannot be compared; the restored trials keep their stored configs"
        )
    try:
        resume.check(
            saved,
            record(plan),
            f"the sweep {plan.experiment_dir}",
            safe=set(),
            fresh="another --name; Tune restores each trial's stored config, so no setting "
            "can change on a sweep resume",
        )
    except resume.ResumeMismatch as exc:
        raise PlanError(str(exc)) from None
    return None
