"""What running trials as a Ray sweep costs over running them back to back in one process.

The same mask-ratio trials (same variant, same training time budget) run twice: first by
calling `engine.fit` in this process one after another, then as a sweep (`launch.run`:
local Ray, one Tune trial = one Ray Train TorchTrainer run each). Printed: the overhead
ratio (sweep wall / in-process wall) and where the sweep's extra time goes per trial:

- worker start: Tune trial start to `fit` starting (trial actor, Train controller, worker
  group, imports), minus what the in-process run also spends building data and model;
- reports: extra wall-clock inside `fit` (each report waits for the controller's poll,
  checkpoints are copied into the run's storage);
- between trials: Tune scheduling and tear-down, plus Ray's own start-up once per sweep.

Usage: python benchmarks/orchestration.py [--trials 5] [--budget-s 120] [--variant demo]
Ends with one line of JSON with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medflip.config import apply_overrides  # noqa: E402
from medflip.sweep import launch  # noqa: E402
from medflip.sweep.plan import Plan, fixed_overrides, trial_points, validated  # noqa: E402
from medflip.sweep.spaces import Choice, get  # noqa: E402


def make_plan(args, storage: str) -> Plan:
    space = get("mask_ratio")
    ratios = space.axes["mask.image_ratio"].values[: args.trials]
    fixed = fixed_overrides(
        space,
        args.variant,
        {
            "optim.time_budget_s": args.budget_s,
            **({"eval.every_share": args.every_share} if args.every_share else {}),
        },
    )
    plan = Plan(
        space=space,
        name="orchestration",
        storage=storage,
        variant=args.variant,
        fixed=fixed,
        axes={"mask.image_ratio": Choice(tuple(ratios))},
        seeds=(0,),
        num_samples=1,
        report_poll_s=args.report_poll_s,
    )
    return validated(plan)  # checked, and carrying its base config


def in_process(plan: Plan) -> list[dict]:
    """engine.fit for each trial, back to back in this process."""
    import torch

    from medflip.training import engine

    torch.set_num_threads(os.cpu_count() or 1)
    out = []
    for point in trial_points(plan):
        cfg = apply_overrides(plan.config, point)
        evals = []
        t0 = time.perf_counter()
        final = engine.fit(cfg, report=lambda m, _dir, e=evals: e.append(m["eval_time_s"]))
        out.append({**final, "call_s": time.perf_counter() - t0, "evals_s": sum(evals)})
        print(f"in-process {point}: {out[-1]['call_s']:.1f} s", flush=True)
    return out


def tune_times(experiment_dir: str) -> dict[str, dict]:
    """Each trial's last Tune result (time_total_s: since the trial's driver started)."""
    out = {}
    for path in Path(experiment_dir).glob("*/result.json"):
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        if lines:
            out[lines[-1]["trial_id"]] = lines[-1]
    return out


def in_fit_overhead(wall_s: float, train_s: float, evals_s: float) -> float:
    """Seconds inside fit that are neither training nor evaluation: reporting, checkpoints."""
    return wall_s - train_s - evals_s


def figures(plan: Plan, base: list[dict], base_wall: float, sweep_wall: float) -> dict:
    from medflip.results import table as results  # pandas: after argparse

    final = results.final_rows(results.load(plan.experiment_dir))
    evals = {t: _eval_times(plan, t) for t in final.trial_id}
    tune = tune_times(plan.experiment_dir)
    n = len(base)
    build = statistics.median(b["call_s"] - b["wall_time_s"] for b in base)
    starts = [tune[t]["time_total_s"] - tune[t]["wall_time_s"] - build for t in final.trial_id]
    sweep_extra = statistics.median(
        in_fit_overhead(r.wall_time_s, r.train_time_s, evals[r.trial_id])
        for r in final.itertuples()
    )
    base_extra = statistics.median(
        in_fit_overhead(b["wall_time_s"], b["train_time_s"], b["evals_s"]) for b in base
    )
    report = sweep_extra - base_extra
    between = (sweep_wall - sum(r["time_total_s"] for r in tune.values())) / n
    return {
        "trials": n,
        "budget_s": plan.fixed.get("optim.time_budget_s"),
        "in_process_s": round(base_wall, 1),
        "sweep_s": round(sweep_wall, 1),
        "ratio": round(sweep_wall / base_wall, 3),
        "fixed_cost_per_trial_s": round((sweep_wall - base_wall) / n, 1),
        # The same ratio from the measured costs alone: on a shared machine the two walls
        # see different loads (evaluation time swings most), the cost terms much less.
        "ratio_from_costs": round(
            (base_wall + n * (statistics.median(starts) + report + between)) / base_wall, 3
        ),
        "worker_start_s": round(statistics.median(starts), 1),
        "report_overhead_per_trial_s": round(report, 1),
        "between_trials_and_ray_start_s": round(between, 1),
        "reports_per_trial": int(round(1 / plan_every(plan))),
        "load_avg_1m_end": round(os.getloadavg()[0], 2),
        "zeroshot_acc_in_process": [round(b.get("zeroshot_acc", float("nan")), 3) for b in base],
        "zeroshot_acc_sweep": [
            round(a, 3) for a in final.sort_values("mask.image_ratio").zeroshot_acc
        ],
    }


def _eval_times(plan: Plan, trial_id: str) -> float:
    """Evaluation seconds of one sweep trial, from Tune's result.json (eval_time_s is not a
    results column)."""
    path = Path(plan.experiment_dir) / trial_id / "result.json"
    return sum(
        json.loads(x).get("eval_time_s", 0.0) for x in path.read_text().splitlines() if x.strip()
    )


def plan_every(plan: Plan) -> float:
    return plan.config.eval.every_share


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=5, help="mask ratios (first K of the grid)")
    p.add_argument("--budget-s", type=float, default=120.0, help="training seconds per trial")
    p.add_argument("--variant", default="demo")
    p.add_argument("--every-share", type=float, default=0.0, help="eval/report cadence override")
    p.add_argument("--report-poll-s", type=float, default=0.5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="medflip-orch-") as storage:
        plan = make_plan(args, storage)
        t0 = time.perf_counter()
        base = in_process(plan)
        base_wall = time.perf_counter() - t0
        t0 = time.perf_counter()
        code = launch.run(plan)
        sweep_wall = time.perf_counter() - t0
        if code != 0:
            print(f"sweep failed (exit {code})", file=sys.stderr)
            return code
        out = figures(plan, base, base_wall, sweep_wall)
    for key, value in out.items():
        print(f"{key:>32}: {value}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
