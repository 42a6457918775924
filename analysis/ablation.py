"""Ablation tables: factor x level -> mean ± 95% CI over seeds, and paired gains over a baseline.

    python analysis/ablation.py [RUN ...] --factor mask.variant [--baseline none]
                                [--metrics zeroshot_acc probe_acc] [--out DIR]

Every trial is compared at one budget: trials that ended before it (ASHA-stopped, or
short of the common `optim.time_budget_s` / `optim.max_steps`) are left out, counted and
said. Each remaining trial contributes, per metric, the test value of the checkpoint the
`--select` rule holds at its end (frontier.py's default: validation only with enough
validation items; else its last reported value). Per level: the mean over seeds with a
95% Student-t interval; the difference from the baseline level paired by seed (mean ±
t-interval); and how many seeds beat the baseline (strictly). Diverged/failed trials are
left out and counted in a note. Outputs ablation.md/.csv/.tex.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import ablation_format, common, curves, paired, stats
from medflip.results import table as results

DEFAULT_METRICS = (
    "zeroshot_acc",
    "zeroshot_f1",
    "zeroshot_binary_acc",
    "zeroshot_binary_bacc",
    "zeroshot_binary_auroc",
    "retrieval_i2t_p1",
    "retrieval_i2t_p2",
    "retrieval_i2t_p5",
    "retrieval_i2t_p10",
    "probe_acc",
)

COLUMNS = [
    "factor",
    "level",
    "metric",
    "n",
    "mean",
    "ci_lo",
    "ci_hi",
    "diff",
    "diff_lo",
    "diff_hi",
    "n_paired",
    "wins",
]


def pick_metrics(final: pd.DataFrame, metrics: list[str] | None) -> list[str]:
    """The asked metrics (each must have values), or the defaults that have values."""
    if metrics:
        for m in metrics:
            common.require_metric(final, m, "--metrics")
        return list(metrics)
    found = [m for m in DEFAULT_METRICS if final[m].notna().any()]
    if not found:
        raise common.AnalysisError(
            f"none of the default metrics has values; available: "
            f"{', '.join(common.available_metrics(final))}"
        )
    return found


def per_seed(final: pd.DataFrame, factor: str, metric: str) -> pd.DataFrame:
    """[seed, level] of the metric; trials sharing a (level, seed) are averaged."""
    grid = final.pivot_table(
        index="seed", columns=factor, values=metric, aggfunc="mean", dropna=False
    )
    return grid.reindex(columns=common.sorted_levels(final[factor], factor))


def _row(factor, level, metric, values: pd.Series, base: pd.Series | None) -> dict:
    mean, lo, hi, n = stats.t_interval(values.to_numpy(dtype=float, na_value=np.nan))
    out = {
        "factor": factor,
        "level": common.label(level),
        "metric": metric,
        "n": n,
        "mean": mean,
        "ci_lo": lo,
        "ci_hi": hi,
    }
    if base is None:
        return out
    diff = (values - base).dropna()  # paired: only seeds present at both levels
    d_mean, d_lo, d_hi, n_pair = stats.t_interval(diff.to_numpy(dtype=float))
    out.update(
        {
            "diff": d_mean,
            "diff_lo": d_lo,
            "diff_hi": d_hi,
            "n_paired": n_pair,
            "wins": int((diff > 0).sum()),
        }
    )
    return out


def _short(final: pd.DataFrame) -> pd.Series:
    """True for trials that ended before the common budget: stopped by the scheduler, or
    short of the one `optim.time_budget_s` (training seconds; when some trial reached it)
    / `optim.max_steps` all ran."""
    short = final["status"].eq("stopped")
    budgets = final.get("optim.time_budget_s", pd.Series(dtype=float)).dropna().unique()
    spent = final.get("train_time_s", pd.Series(dtype=float))
    if len(budgets) == 1 and budgets[0] > 0 and (spent >= budgets[0]).any():  # the budget bound
        return short | (spent < budgets[0])
    steps = final.get("optim.max_steps", pd.Series(dtype=float)).dropna().unique()
    if len(steps) == 1 and final["step"].max() >= steps[0]:
        return short | (final["step"] < steps[0])
    return short


def _floats(col: pd.Series) -> np.ndarray:
    return col.to_numpy(dtype=float, na_value=np.nan)


def _selected(df: pd.DataFrame, final: pd.DataFrame, metrics, select: str) -> pd.DataFrame:
    """`final` with each metric replaced by the held checkpoint's value where `select` is
    validation and the metric has its own `val_` column (curves.held_values)."""
    if select == paired.LATEST:
        return final
    out = final.set_index(["experiment", "trial_id"])
    rows = df.sort_values(["experiment", "trial_id", "step"], kind="stable")
    for m in metrics:
        if f"val_{m}" not in rows or not rows[f"val_{m}"].notna().any():
            continue
        held = rows.groupby(["experiment", "trial_id"]).apply(
            lambda g, m=m: curves.held_values(_floats(g[f"val_{m}"]), _floats(g[m]))[-1],
            include_groups=False,
        )
        out[m] = held.reindex(out.index)
    return out.reset_index()


def table(
    df: pd.DataFrame,
    factor: str,
    baseline: str | None = None,
    metrics: list[str] | None = None,
    select: str = "auto",
) -> tuple[pd.DataFrame, list[str]]:
    """The ablation table in long form and notes for the reader.

    Columns: factor, level, metric, n, mean, ci_lo, ci_hi (95% t-interval over seeds),
    diff, diff_lo, diff_hi, n_paired, wins (level minus baseline, paired by seed; wins =
    seeds where the level is strictly better). The baseline's own diff columns are NaN.
    """
    final = results.final_rows(df)
    failed = final["status"].isin(curves.FAILED)
    short = _short(final) & ~failed
    notes = _left_out(final, failed, factor, "diverged/failed trial(s) left out")
    notes += _left_out(
        final,
        short,
        factor,
        "trial(s) that ended before the common budget "
        "(ASHA-stopped or short of it) left out: compared at one budget",
    )
    final = final[~failed & ~short]
    if len(final) == 0:
        raise common.AnalysisError("no results: every trial diverged, failed or stopped early")
    metrics = pick_metrics(final, metrics)
    lead = "zeroshot_acc" if "zeroshot_acc" in metrics else metrics[0]
    rule, why = paired.selection_rule(df, lead, select)
    final = _selected(df, final, metrics, rule)
    held = "each trial's last evaluation" if rule == paired.LATEST else "validation-selected"
    notes.append(f"checkpoint: {held} ({why})")
    levels = common.sorted_levels(final[factor], factor)
    base = common.pick_baseline(levels, baseline)
    levels = [base] + [lv for lv in levels if lv != base]  # the baseline row first
    if final.groupby([factor, "seed"]).size().max() > 1:
        notes.append("several trials share a (level, seed): their values were averaged")
    rows = []
    for metric in metrics:
        grid = per_seed(final, factor, metric)
        for lv in levels:
            paired_ = None if lv == base else grid[base]
            rows.append(_row(factor, lv, metric, grid[lv], paired_))
    long = pd.DataFrame(rows).reindex(columns=COLUMNS)
    long[["n_paired", "wins"]] = long[["n_paired", "wins"]].astype("Int64")
    long.attrs["baseline"] = common.label(base)
    if long["n"].min() < 2:
        notes.append("levels with one seed have no interval: CIs need >= 2 seeds")
    return long, notes


def _left_out(final: pd.DataFrame, mask: pd.Series, factor: str, what: str) -> list[str]:
    if not mask.any():
        return []
    counts = final[mask][factor].value_counts(sort=False).items()
    listed = ", ".join(f"{common.label(lv)}: {k}" for lv, k in counts)
    return [f"{int(mask.sum())} {what}: {listed}"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "runs",
        nargs="*",
        help="run dirs or results.parquet files (default: the newest run under ./runs)",
    )
    p.add_argument(
        "--factor", help="config key whose levels are compared (default: the varied one)"
    )
    p.add_argument("--baseline", help="baseline level (default: none, else 0, else the first)")
    p.add_argument(
        "--metrics", nargs="+", help=f"default: those of {' '.join(DEFAULT_METRICS)} with values"
    )
    p.add_argument(
        "--select",
        default="auto",
        choices=("auto", "val", "latest"),
        help="the checkpoint each trial contributes, as frontier.py --select (default auto: "
        f"validation only with >= {paired.MIN_VAL_ITEMS} validation items per evaluation)",
    )
    common.add_row_filters(p)
    p.add_argument("--out", help="output dir (default: <first run>/analysis)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    df, paths = common.load_inputs(args.runs)
    df = common.select_device(df, None, args.device_type)
    df = common.where(df, args.where)
    factor, note = common.pick_by(df, args.factor, "--factor")
    common.check_pooling(df, factor, "--factor")
    if factor is None:
        raise common.AnalysisError("no config key varies: nothing to ablate (pass --factor)")
    print(f"loaded {len(df)} reports from {', '.join(paths)}; {note.replace('grouping', 'factor')}")
    long, notes = table(df, factor, args.baseline, args.metrics, args.select)
    out = Path(args.out) if args.out else common.results_dir(paths[0]) / "analysis"
    written = ablation_format.write(long, notes, out)
    for n in notes:
        print(f"note: {n}")
    print(f"wrote {', '.join(p.name for p in written)} to {out} in {time.perf_counter() - t0:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(common.cli("ablation.py", main))
