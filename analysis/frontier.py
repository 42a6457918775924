"""Accuracy-vs-cost frontiers: time-to-accuracy curves, speedups, budgets and hypervolumes.

    python analysis/frontier.py [RUN_DIR or results.parquet ...] [--by mask.image_ratio]

Per group of `--by`: each trial's curve is the held-out test `--y` of the checkpoint
selected on `val_<y>` so far, or of its latest evaluation as measured (`--select`; the
default rule is paired.selection_rule's) -- never a running maximum over test
evaluations -- interpolated linearly between evaluations; the group's curve is the mean
over seeds. Against the baseline group, seed by seed (analysis/compare.py): the accuracy
at equal time with its paired difference, P(improvement) and the smallest difference the
design detects, the speedup as a time-scaling fitted over the whole curve, and the area
over chance, each with a 95% t interval over seeds; trials that differ in another config
key are refused, not pooled.
Outputs frontier.png/.svg/.csv and summary.md/.json in `--out` (default `<run>/analysis`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import common, compare, curves, frames, inference, paired
from analysis.budgets import equal_time_budget, test_items, true_cost

GRID = 256  # points of the common cost grid for the curves (plus every evaluation's cost)
_MAX_GRID = 2048  # above this many distinct costs the grid is the even one only


def _grid(trials: list[curves.Trial], budget: float) -> np.ndarray:
    # from cost 0: the curve rises from chance there (paired.curve), and its area counts
    lo, hi = min([0.0] + [t.x[0] for t in trials]), max(t.final_x for t in trials)
    xs = np.unique(np.concatenate([t.x for t in trials]))
    extra = xs if len(xs) <= _MAX_GRID else np.array([])
    return np.unique(np.concatenate([np.linspace(lo, hi, GRID), extra, [budget]]))  # [G]


def analyse(df: pd.DataFrame, y: str = "zeroshot_acc", **kw) -> dict:
    """`_analyse` for any metric: a lower-is-better one (common.LOWER_IS_BETTER, a loss)
    is analysed negated, so selection, targets and speedups minimise it, and every number
    is turned back into the metric's own units (intervals re-ordered)."""
    if y not in common.LOWER_IS_BETTER:
        return _analyse(df, y=y, **kw)
    flipped = df.copy()
    for col in (y, f"val_{y}"):
        if col in flipped:
            flipped[col] = -flipped[col]
    if kw.get("target") is not None:
        kw["target"] = -kw["target"]
    worst = -float(df[y].max())
    kw["ref_y"] = -kw["ref_y"] if kw.get("ref_y") is not None else worst
    return _unflip(_analyse(flipped, y=y, **kw))


def _unflip(result: dict) -> dict:
    s = result["summary"]
    s["target"] = -s["target"]
    s["reference_point"][1] = -s["reference_point"][1]
    s["minimised"] = True
    for g in s["groups"].values():
        g["values"] = [-v for v in g["values"]]
        for key in ("acc_at_budget", "diff"):
            g[key] = -g[key]
            lo, hi = g[f"{key}_ci"]
            g[f"{key}_ci"] = [-hi, -lo]
    c = result["curves"]
    c["mean"], c["lo"], c["hi"] = -c["mean"], -c["hi"], -c["lo"]
    t = result["trials"]
    t["final_best"], t["at_budget"] = -t["final_best"], -t["at_budget"]
    return result


def _analyse(
    df: pd.DataFrame,
    x: str = "train_time_s",
    y: str = "zeroshot_acc",
    by: str | None = None,
    target: float | None = None,
    baseline: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    ref_y: float | None = None,
    select: str = "auto",
    level: float = inference.LEVEL,
) -> dict:
    """The whole frontier analysis of a results frame (one device type).

    Returns {"summary": the dict of summary.json with floats (inf/NaN kept), "curves":
    DataFrame(group, x, mean, lo, hi) (the arm's mean curve over seeds and its pointwise
    band), "trials": DataFrame(one row per trial: experiment, trial_id, group, seed,
    status, final_x, final_best, reach_cost, at_budget, pareto)}. `level`: of every
    interval (report.py passes a family's Bonferroni level).
    """
    for name, flag in ((x, "--x"), (y, "--y")):
        common.require_metric(df, name, flag)
    select, why = paired.selection_rule(df, y, select)
    trials = curves.trials(df, x, y, by, select=select)
    levels = common.sorted_levels((t.group for t in trials), by)
    base_level = common.pick_baseline(levels, baseline)
    all_runs = paired.runs(df, trials, x, y, select)
    groups = {lv: [r for r in all_runs if r.trial.group == lv] for lv in levels}
    budget, budget_rule = equal_time_budget(df, x, groups, base_level)
    chance = common.CHANCE.get(y)
    ref = (max(t.final_x for t in trials), chance if ref_y is None else ref_y)
    ref = (ref[0], 0.0 if ref[1] is None else ref[1])
    grid = _grid(trials, budget)
    cmp = compare.compare(
        groups,
        base_level,
        grid,
        budget,
        target,
        ref,
        chance,
        n_boot=n_boot,
        seed=seed,
        level=level,
    )
    summary = _summary(cmp, base_level, budget, ref, x, y, by, n_boot, seed)
    summary["target_from"] = "given" if target is not None else "baseline's accuracy at its budget"
    summary["selected_on"], summary["selection_rule"] = select, why
    summary["test_items"] = test_items(df, y)
    summary["budget_rule"] = budget_rule
    summary["cost"] = true_cost(df, trials, summary)
    return {
        "summary": summary,
        "curves": frames.curves_frame(cmp["groups"], cmp["grid"]),
        "trials": frames.trials_frame(trials, cmp["target"], budget),
    }


_KEEP = (
    "acc_at_budget",
    "diff",
    "diff_p",
    "p_improvement",
    "speedup",
    "speedup_p",
    "reached",
    "reach",
    "hypervolume",
    "area_diff",
    "area_diff_p",
    "detectable",
    "diff_sd",
    "values",
    "paired",
    "seeds",
    "interval",
)
_CIS = ("acc_at_budget_ci", "diff_ci", "speedup_ci", "hypervolume_ci", "area_diff_ci")


def _summary(cmp, base_level, budget, ref, x, y, by, n_boot, seed) -> dict:
    groups = {}
    for lv, g in cmp["groups"].items():
        groups[common.label(lv)] = {
            **{k: g[k] for k in _KEEP},
            **{k: [float(v) for v in g[k]] for k in _CIS},
            "n": len(g["seeds"]),
        }
    ns = sorted({g["n"] for g in groups.values()})
    one = ns[0] < inference.MIN_SEEDS
    return {
        "baseline": common.label(base_level),
        "target": cmp["target"],
        "groups": groups,
        "x": x,
        "y": y,
        "by": by,
        "budget": budget,
        "reference_point": [float(ref[0]), float(ref[1])],
        "n_bootstrap": n_boot,
        "seed": seed,
        "seeds_per_arm": ns,
        "level": cmp["level"],
        "items_resampled": cmp["items_resampled"],
        "ci": f"{cmp['level']:.1%} Student-t intervals over seeds (per-seed paired differences; "
        "Welch's where arms do not share seeds)"
        + (f"; arms with one seed: {compare.ONE_SEED}, items resampled" if one else ""),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "runs",
        nargs="*",
        help="run dirs or results.parquet files (default: the newest run under ./runs)",
    )
    p.add_argument(
        "--x",
        default="train_time_s",
        choices=("train_time_s", "device_hours", "samples_seen", "train_flops"),
        help="compute axis: training seconds, device-hours, pairs seen or training FLOPs "
        "(kept tokens, both towers: the same on any hardware; default train_time_s)",
    )
    p.add_argument("--y", default="zeroshot_acc", help="metric to maximise")
    p.add_argument("--by", help="config key whose levels are compared (default: the varied one)")
    p.add_argument(
        "--target",
        type=float,
        help="accuracy whose reach time is shown beside the speedup (default: 90%% of the "
        "baseline's mean gain over chance at the equal-time budget)",
    )
    p.add_argument("--baseline", help="baseline level (default: none, else 0, else the first)")
    p.add_argument(
        "--select",
        default="auto",
        choices=("auto", "val", "latest"),
        help="checkpoint each trial holds: best on val_<y> so far (val), its latest "
        "evaluation as measured (latest), or (auto, default) val when the table has it "
        f"with >= {paired.MIN_VAL_ITEMS} validation items per evaluation, else latest",
    )
    common.add_row_filters(p)
    p.add_argument(
        "--ref-y",
        type=float,
        help="hypervolume reference accuracy (default: chance for zero-shot accuracies, else 0)",
    )
    p.add_argument("--out", help="output dir (default: <first run>/analysis)")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="item resamples for arms with one seed (evaluation noise only)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = p.parse_args(argv)
    if args.bootstrap < 1:
        p.error("--bootstrap must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    df, paths = common.load_inputs(args.runs)
    df = common.select_device(df, args.x, args.device_type)
    n_trials = df.groupby(["experiment", "trial_id"]).ngroups
    print(
        f"loaded {len(df)} reports of {n_trials} trials from {', '.join(paths)} "
        f"in {time.perf_counter() - t0:.2f}s"
    )
    df = common.where(df, args.where)
    by, note = common.pick_by(df, args.by)
    common.check_pooling(df, by, "--by")
    print(f"{note}; every other config key is the same in all trials (seeds are replicates)")
    t1 = time.perf_counter()
    result = analyse(
        df,
        x=args.x,
        y=args.y,
        by=by,
        target=args.target,
        baseline=args.baseline,
        n_boot=args.bootstrap,
        seed=args.seed,
        ref_y=args.ref_y,
        select=args.select,
    )
    print(
        f"curves, speedups and hypervolumes ({args.bootstrap} bootstrap resamples) "
        f"in {time.perf_counter() - t1:.2f}s"
    )
    out = Path(args.out) if args.out else common.results_dir(paths[0]) / "analysis"
    result["summary"]["inputs"] = [str(p) for p in paths]
    result["summary"]["device_types"] = sorted(df["device_type"].dropna().unique().tolist())
    t2 = time.perf_counter()
    from analysis import frontier_report  # seaborn/matplotlib load only when writing

    written = frontier_report.write(result, out)
    print(frontier_report.groups_table(result["summary"]))
    for line in frontier_report.headline(result["summary"]):
        print(f"headline: {line}")
    print(f"wrote {', '.join(p.name for p in written)} to {out} in {time.perf_counter() - t2:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(common.cli("frontier.py", main))
