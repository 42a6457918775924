"""Accuracy-vs-cost frontiers: time-to-accuracy curves, speedups, budgets and hypervolumes.

    python analysis/frontier.py [RUN_DIR or results.parquet ...] [--by mask.image_ratio]

Per group of `--by`: each trial's best-so-far `--y` against `--x`, the median over seeds
with a bootstrap 95% band (trials resampled within the group); the speedup to reach a
target accuracy against the baseline group; the accuracy at the baseline's budget; and the
hypervolume under the group's median staircase. Outputs frontier.png/.svg/.csv and
summary.md/.json in `--out` (default `<run>/analysis`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # run as a script: make the `analysis` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis import common, curves, stats  # noqa: E402

GRID = 256  # points of the common cost grid for the curves
_HV_CELLS = 600_000_000  # above this, the hypervolume bootstrap thins its steps (~6 s)
_CHUNK_CELLS = 2_000_000  # values per bootstrap gather for the hypervolume (~16 MB)


def default_target(group: list[curves.Trial]) -> float:
    """The baseline's median final accuracy; the lower median for an even number of seeds,
    so at least half the baseline seeds reach it (the upper middle one would give an
    infinite median cost for the baseline itself)."""
    finals = np.sort(
        [
            t.final_best
            for t in group
            if t.status not in curves.FAILED and not np.isnan(t.final_best)
        ]
    )
    if len(finals) == 0:
        raise common.AnalysisError(
            "the baseline group has no finished trial with a value for the target: pass --target"
        )
    return float(finals[(len(finals) - 1) // 2])


def band(m: np.ndarray, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median over trials of m [T, G] and its bootstrap 95% band (NaN without resamples)."""
    med = stats.nanmedian(m, axis=0)  # [G]
    if idx is None:
        return med, np.full_like(med, np.nan), np.full_like(med, np.nan)
    chunk = max(1, _CHUNK_CELLS // m.size)  # replicates per gather: memory stays bounded
    boot = np.concatenate(
        [
            stats.nanmedian(m[idx[i : i + chunk]], axis=1)  # [b, T, G] -> [b, G]
            for i in range(0, len(idx), chunk)
        ]
    )  # [B, G]
    lo, hi = stats.interval(boot, axis=0)
    return med, lo, hi


def hv_band(group, ref, idx) -> tuple[float, float, float]:
    """Hypervolume of the median best-so-far staircase, on the group's report costs.

    Exact (every step of every trial) unless the bootstrap would touch more than
    `_HV_CELLS` values; then on an evenly thinned subset of the steps (a lower bound).
    """
    xs = np.unique(np.concatenate([t.x for t in group]))  # [K] every step of any trial
    n_boot = 1 if idx is None else len(idx)
    if len(xs) * len(group) * n_boot > _HV_CELLS:
        keep = max(256, _HV_CELLS // (len(group) * n_boot))
        xs = np.unique(xs[np.linspace(0, len(xs) - 1, keep).astype(int)])
    h = curves.curve_matrix(group, xs, fill=ref[1])  # no model yet counts as the reference
    point = float(curves.staircase_area(xs, stats.nanmedian(h, axis=0), ref))
    if idx is None:
        return point, np.nan, np.nan
    chunk = max(1, _CHUNK_CELLS // h.size)  # replicates per gather: memory stays bounded
    boot = np.concatenate(
        [
            curves.staircase_area(xs, stats.nanmedian(h[idx[i : i + chunk]], axis=1), ref)
            for i in range(0, len(idx), chunk)
        ]
    )  # [B]
    lo, hi = stats.interval(boot)
    return point, float(lo), float(hi)


def _resample(rng, n: int, n_boot: int) -> np.ndarray | None:
    return stats.boot_indices(rng, n, n_boot) if n >= 2 else None  # one seed: no CI


def _median_ci(values: np.ndarray, idx) -> tuple[float, float, float]:
    point = float(stats.nanmedian(values))
    if idx is None:
        return point, np.nan, np.nan
    lo, hi = stats.interval(stats.nanmedian(values[idx], axis=1))
    return point, float(lo), float(hi)


def _speedup(base_cost, base_idx, cost, idx) -> tuple[float, float, float]:
    point = float(stats.ratio(stats.nanmedian(base_cost), stats.nanmedian(cost)))
    if base_idx is None or idx is None:
        return point, np.nan, np.nan
    boot = stats.ratio(
        stats.nanmedian(base_cost[base_idx], axis=1), stats.nanmedian(cost[idx], axis=1)
    )  # [B]
    lo, hi = stats.interval(boot)
    return point, float(lo), float(hi)


def _group_stats(group, grid, target, budget, ref, rng, n_boot, base) -> dict:
    """Curve, reach costs, speedup, accuracy at budget and hypervolume of one group."""
    idx = _resample(rng, len(group), n_boot)
    span = max(t.final_x for t in group)
    med, lo, hi = band(curves.curve_matrix(group, grid, carry_to=span), idx)
    cost = np.array([curves.reach_cost(t, target) for t in group])  # [T], inf = never
    at_budget = np.array([curves.step_values(t.x, t.best, np.array([budget]))[0] for t in group])
    speed = _speedup(base["cost"], base["idx"], cost, idx) if base else (1.0, np.nan, np.nan)
    return {
        "curve": (med, lo, hi),
        "cost": cost,
        "idx": idx,
        "reached": f"{int(np.isfinite(cost).sum())}/{len(group)}",
        "speedup": speed,
        "acc_at_budget": _median_ci(at_budget, idx),
        "hypervolume": hv_band(group, ref, idx),
        "n": len(group),
    }


def analyse(
    df: pd.DataFrame,
    x: str = "train_time_s",
    y: str = "zeroshot_acc",
    by: str | None = None,
    target: float | None = None,
    baseline: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    ref_y: float | None = None,
) -> dict:
    """The whole frontier analysis of a results frame (one device type).

    Returns {"summary": the dict of summary.json with floats (inf/NaN kept),
    "curves": DataFrame(group, x, median, lo, hi), "trials": DataFrame(one row per trial:
    experiment, trial_id, group, seed, status, final_x, final_best, reach_cost, at_budget,
    pareto)}.
    """
    for name, flag in ((x, "--x"), (y, "--y")):
        common.require_metric(df, name, flag)
    trials = curves.trials(df, x, y, by)
    levels = common.sorted_levels((t.group for t in trials), by)
    base_level = common.pick_baseline(levels, baseline)
    groups = {lv: [t for t in trials if t.group == lv] for lv in levels}
    given = target is not None
    target = float(target) if given else default_target(groups[base_level])
    budget = float(np.median([t.final_x for t in groups[base_level]]))
    ref = (max(t.final_x for t in trials), common.CHANCE.get(y, 0.0) if ref_y is None else ref_y)
    grid = np.linspace(min(t.x[0] for t in trials), ref[0], GRID)  # [G]
    rng = np.random.default_rng(seed)
    out = {}
    base = _group_stats(groups[base_level], grid, target, budget, ref, rng, n_boot, None)
    for lv in levels:
        out[lv] = (
            base
            if lv == base_level
            else _group_stats(groups[lv], grid, target, budget, ref, rng, n_boot, base)
        )
    summary = _summary(out, base_level, target, budget, ref, x, y, by, n_boot, seed)
    summary["target_from"] = "given" if given else "baseline median final"
    return {
        "summary": summary,
        "curves": _curves_frame(out, grid),
        "trials": _trials_frame(trials, target, budget),
    }


def _curves_frame(out: dict, grid: np.ndarray) -> pd.DataFrame:
    parts = []
    for lv, g in out.items():
        med, lo, hi = g["curve"]
        keep = ~np.isnan(med)
        parts.append(
            pd.DataFrame(
                {
                    "group": common.label(lv),
                    "x": grid[keep],
                    "median": med[keep],
                    "lo": lo[keep],
                    "hi": hi[keep],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _trials_frame(trials: list[curves.Trial], target: float, budget: float) -> pd.DataFrame:
    tf = pd.DataFrame(
        {
            "experiment": [t.experiment for t in trials],
            "trial_id": [t.trial_id for t in trials],
            "group": [common.label(t.group) for t in trials],
            "seed": [t.seed for t in trials],
            "status": [t.status for t in trials],
            "final_x": [t.final_x for t in trials],
            "final_best": [t.final_best for t in trials],
            "reach_cost": [curves.reach_cost(t, target) for t in trials],
            "at_budget": [curves.step_values(t.x, t.best, np.array([budget]))[0] for t in trials],
        }
    )
    # The frontier is over usable models: diverged/failed trials are left off it.
    ok = ~tf["status"].isin(curves.FAILED).to_numpy()
    pareto = np.zeros(len(tf), dtype=bool)
    pareto[ok] = curves.pareto_mask(tf["final_x"].to_numpy()[ok], tf["final_best"].to_numpy()[ok])
    tf["pareto"] = pareto
    return tf


def _summary(out, base_level, target, budget, ref, x, y, by, n_boot, seed) -> dict:
    groups = {}
    for lv, g in out.items():
        (sp, sp_lo, sp_hi), (ab, ab_lo, ab_hi) = g["speedup"], g["acc_at_budget"]
        hv, hv_lo, hv_hi = g["hypervolume"]
        groups[common.label(lv)] = {
            "speedup": sp,
            "speedup_ci": [sp_lo, sp_hi],
            "reached": g["reached"],
            "acc_at_budget": ab,
            "acc_at_budget_ci": [ab_lo, ab_hi],
            "hypervolume": hv,
            "hypervolume_ci": [hv_lo, hv_hi],
            "n": g["n"],
        }
    return {
        "baseline": common.label(base_level),
        "target": target,
        "groups": groups,
        "x": x,
        "y": y,
        "by": by,
        "budget": budget,
        "reference_point": [float(ref[0]), float(ref[1])],
        "n_bootstrap": n_boot,
        "seed": seed,
        "ci": "bootstrap percentile 95%, trials resampled",
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
        choices=("train_time_s", "device_hours", "samples_seen"),
        help="compute axis: training seconds, device-hours or pairs seen (default train_time_s)",
    )
    p.add_argument("--y", default="zeroshot_acc", help="metric to maximise")
    p.add_argument("--by", help="config key whose levels are compared (default: the varied one)")
    p.add_argument(
        "--target",
        type=float,
        help="accuracy for the speedup (default: the baseline's median final accuracy)",
    )
    p.add_argument("--baseline", help="baseline level (default: none, else 0, else the first)")
    p.add_argument("--device-type", help="keep only rows of this device type")
    p.add_argument(
        "--ref-y",
        type=float,
        help="hypervolume reference accuracy (default: chance for zero-shot accuracies, else 0)",
    )
    p.add_argument("--out", help="output dir (default: <first run>/analysis)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
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
    by, note = common.pick_by(df, args.by)
    print(note)
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
    if any(g["n"] < 2 for g in result["summary"]["groups"].values()):
        print("note: groups with one seed have no confidence interval: CIs need >= 2 seeds")
    print(f"wrote {', '.join(p.name for p in written)} to {out} in {time.perf_counter() - t2:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(common.cli("frontier.py", main))
