"""Writes a frontier analysis: frontier.png/.svg (plots.py), frontier.csv, summary.md/.json."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analysis import common, plots


def _speedup_text(g: dict) -> str:
    sp, (lo, hi) = g["speedup"], g["speedup_ci"]
    text = common.fmt(sp, ".2f") + ("" if math.isnan(sp) else "×")
    if math.isnan(lo) or math.isnan(hi):
        return text
    return f"{text} [{common.fmt(lo, '.2f')}, {common.fmt(hi, '.2f')}]"


def groups_table(summary: dict) -> str:
    rows = []
    for name, g in summary["groups"].items():
        mark = " (baseline)" if name == summary["baseline"] else ""
        rows.append(
            [
                f"{name}{mark}",
                str(g["n"]),
                g["reached"],
                _speedup_text(g),
                common.fmt_ci(g["acc_at_budget"], *g["acc_at_budget_ci"]),
                common.fmt_ci(g["hypervolume"], *g["hypervolume_ci"], ".4g"),
            ]
        )
    header = [
        summary["by"] or "group",
        "n seeds",
        "reached",
        "speedup [95% CI]",
        "acc at budget [95% CI]",
        "hypervolume [95% CI]",
    ]
    return common.markdown_table(header, rows)


def _frontier_table(trials: pd.DataFrame, x_label: str) -> str:
    front = trials[trials["pareto"]].sort_values("final_x")
    rows = [
        [
            r.group,
            str(r.seed),
            r.experiment,
            r.trial_id,
            common.fmt(r.final_x, ".4g"),
            common.fmt(r.final_best),
        ]
        for r in front.itertuples()
    ]
    return common.markdown_table(
        ["group", "seed", "experiment", "trial", x_label, "best accuracy"], rows
    )


def summary_markdown(summary: dict, trials: pd.DataFrame) -> str:
    """The researcher's summary: settings stated, one row per group, the Pareto trials."""
    x_label = common.AXIS_LABELS.get(summary["x"], summary["x"])
    y_label = common.METRIC_LABELS.get(summary["y"], summary["y"])
    ref_x, ref_y = summary["reference_point"]
    how = (
        "given with --target"
        if summary["target_from"] == "given"
        else "the baseline's median final value; the lower median for an even number of seeds"
    )
    failed = trials["status"].isin(("diverged", "failed"))
    lines = [
        f"# {y_label} vs {x_label}",
        "",
        f"- inputs: {', '.join(summary.get('inputs', []))}",
        f"- device type(s): {', '.join(summary.get('device_types', [])) or 'unknown'}",
        f"- groups: `{summary['by']}`; baseline: `{summary['baseline']}`",
        f"- target {summary['y']} = {common.fmt(summary['target'], '.4f')} ({how})",
        f"- speedup = median baseline {x_label} to reach the target / the group's; seeds that "
        "never reach it, or diverged/failed, count as infinite cost (`reached` = k/n)",
        f"- accuracy at equal budget: best-so-far at the baseline's median final cost "
        f"({common.fmt(summary['budget'], '.4g')} {x_label})",
        f"- hypervolume: area between the group's median best-so-far staircase and the "
        f"reference point ({common.fmt(ref_x, '.4g')} {x_label}, {y_label} "
        f"{common.fmt(ref_y, '.3g')}), in {x_label} × {summary['y']}",
        f"- 95% CIs: bootstrap percentile, {summary['n_bootstrap']} resamples of trials "
        f"within each group (seed {summary['seed']})",
        "",
        groups_table(summary),
        "",
        f"## Pareto frontier (trials: final {x_label}, best {summary['y']}; "
        "diverged/failed left off)",
        "",
        _frontier_table(trials, x_label),
        "",
    ]
    if failed.any():
        lines.append(
            f"Note: {int(failed.sum())} trial(s) diverged or failed: "
            "counted as never reaching the target."
        )
    if any(g["n"] < 2 for g in summary["groups"].values()):
        lines.append("Note: groups with one seed have no confidence interval: CIs need >= 2 seeds.")
    return "\n".join(lines).rstrip() + "\n"


def write(result: dict, out: Path) -> list[Path]:
    """All outputs of `frontier.analyse` into `out` (created); returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    summary, curves, trials = result["summary"], result["curves"], result["trials"]
    paths = [out / "frontier.png", out / "frontier.svg"]
    plots.frontier_figure(curves, trials, summary, paths)
    curves.to_csv(out / "frontier.csv", index=False)
    (out / "summary.md").write_text(summary_markdown(summary, trials))
    common.write_json(out / "summary.json", common.jsonable(summary))
    return paths + [out / "frontier.csv", out / "summary.md", out / "summary.json"]
