"""Writes a frontier analysis: frontier.png/.svg (plots.py), frontier.csv, summary.md/.json."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analysis import common, paired, plots


def _speedup_text(g: dict) -> str:
    """'2.10× [1.60, 2.70]'; 'not reached' when the arm's mean curve never gets there."""
    sp, (lo, hi) = g["speedup"], g["speedup_ci"]
    if sp == 0 or math.isnan(sp):
        return "not reached" if sp == 0 else "n/a"
    text = f"{common.fmt(sp, '.2f')}×"
    if math.isnan(lo) or math.isnan(hi):
        return text
    return f"{text} [{_times(lo)}, {_times(hi)}]"


def _times(v: float) -> str:
    return "not reached" if v == 0 else ("∞" if math.isinf(v) else common.fmt(v, ".2f"))


def _points(v, lo, hi, sign: bool = False, scale: float = 100.0) -> str:
    """Accuracies as percentage points: '+8.2 [5.9, 10.4]' (scale 1: the value as is)."""
    spec = ("+" if sign else "") + (".1f" if scale == 100 else ".4g")
    if v is None or math.isnan(v):
        return "n/a"
    if math.isnan(lo) or math.isnan(hi):
        return format(scale * v, spec)
    return f"{scale * v:{spec}} [{scale * lo:{spec}}, {scale * hi:{spec}}]"


def _scale(summary: dict) -> tuple[float, str]:
    """(scale, unit): accuracies in percent and points; other metrics as they are."""
    if summary["y"] in common.LOWER_IS_BETTER:
        return 1.0, f"{summary['y']} (lower is better)"
    return 100.0, "%"


def groups_table(summary: dict) -> str:
    scale, unit = _scale(summary)
    rows = []
    for name, g in summary["groups"].items():
        base = name == summary["baseline"]
        rows.append(
            [
                f"{name}{' (baseline)' if base else ''}",
                str(g["n"]),
                g["reached"],
                _speedup_text(g),
                _points(g["acc_at_budget"], *g["acc_at_budget_ci"], scale=scale),
                "—" if base else _points(g["diff"], *g["diff_ci"], sign=True, scale=scale),
                "—" if base else common.fmt(g["p_improvement"], ".2f"),
                common.fmt_ci(g["hypervolume"], *g["hypervolume_ci"], ".1f"),
            ]
        )
    header = [
        summary["by"] or "group",
        "seeds",
        "reached",
        "speedup [95% CI]",
        f"at equal time, {unit} [95% CI]",
        f"difference from baseline{', points' if scale == 100 else ''} [95% CI]",
        "P(improvement)",
        "area over chance [95% CI]",
    ]
    return common.markdown_table(header, rows)


def headline(summary: dict) -> list[str]:
    """One line per arm: the speedup to the target and the paired difference at equal time,
    or an honest 'no difference' when the interval covers zero."""
    lines, by = [], summary["by"] or "group"
    scale, _ = _scale(summary)
    for name, g in summary["groups"].items():
        if name == summary["baseline"]:
            continue
        lo, hi = g["diff_ci"]
        diff = _points(g["diff"], lo, hi, sign=True, scale=scale)
        if not (math.isnan(lo) or math.isnan(hi)) and lo <= 0 <= hi:
            at_time = f"no difference at equal time: {diff}"
        else:
            at_time = f"at equal time {diff}"
        at_time += " points" if scale == 100 else f" {summary['y']}"
        sp_lo, sp_hi = g["speedup_ci"]
        if g["speedup"] == 0:
            speed = "does not reach the target"
        elif sp_lo <= 1 <= sp_hi:
            speed = f"no measurable speedup to the target ({_speedup_text(g)})"
        else:
            speed = f"reaches the target {_speedup_text(g)} faster"
        lines.append(
            f"{by}={name} vs {summary['baseline']}: {speed}; {at_time} "
            f"(P(improvement) {common.fmt(g['p_improvement'], '.2f')}, "
            f"{g['n']} seed{'' if g['n'] == 1 else 's'})"
        )
    return lines


def _cost_lines(summary: dict) -> list[str]:
    cost = summary.get("cost")
    if not cost:
        return []
    held = cost["held_device_hours"]
    return [
        "## What it cost",
        "",
        f"- the whole sweep held {common.fmt(held, '.4f')} device-hours "
        f"({cost['trials']} trials; worker start-up, evaluation, retries and stopped "
        f"trials included; {cost['trials_without_held']} trial(s) did not record it) for "
        f"{common.fmt(cost['train_device_hours'], '.4f')} device-hours of training",
        f"- the winning arm (`{cost['winner']}`, best accuracy at equal time) costs "
        f"{common.fmt(cost['winner_train_device_hours'], '.4f')} device-hours to train one "
        "seed (training time only)",
        "",
    ]


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
        ["group", "seed", "experiment", "trial", x_label, "test accuracy"], rows
    )


def summary_markdown(summary: dict, trials: pd.DataFrame) -> str:
    """The researcher's summary: settings and splits stated, one row per group, the cost."""
    x_label = common.AXIS_LABELS.get(summary["x"], summary["x"])
    y_label = common.METRIC_LABELS.get(summary["y"], summary["y"])
    ref_x, ref_y = summary["reference_point"]
    how = (
        "given with --target"
        if summary["target_from"] == "given"
        else f"{paired.TARGET_SHARE:.0%} of the baseline's gain over chance at its budget"
    )
    sel = summary["selected_on"]
    split = (
        f"each trial's latest evaluation, as measured (no checkpoint selection); every "
        f"number below is its `{summary['y']}` on the held-out test half"
        if sel == paired.LATEST
        else f"the checkpoint each trial holds is the best on `{sel}` (validation half) so "
        f"far; every number below is that checkpoint's `{summary['y']}` on the held-out "
        "test half"
    )
    n_items = summary.get("test_items")
    if n_items:
        split += f"; test items scored: {n_items}"
    failed = trials["status"].isin(("diverged", "failed"))
    lines = [
        f"# {y_label} vs {x_label}",
        "",
        *[f"**{h}**" for h in headline(summary)],
        "",
        f"- inputs: {', '.join(summary.get('inputs', []))}",
        f"- device type(s): {', '.join(summary.get('device_types', [])) or 'unknown'}",
        f"- groups: `{summary['by']}`; baseline: `{summary['baseline']}`",
        f"- splits: {split}",
        f"- target {summary['y']} = {common.fmt(summary['target'], '.4f')} ({how}); "
        "speedup = the baseline's time for its mean-over-seeds curve to reach it / the "
        "group's; `reached` = seeds whose own curve reaches it (diverged/failed never do)",
        f"- accuracy at equal time: at {summary.get('budget_rule', 'the budget')} "
        f"({common.fmt(summary['budget'], '.4g')} {x_label}), mean over seeds; the "
        "difference is paired (same test items, same seeds); P(improvement) = P(a seed of "
        "the group beats a seed of the baseline) (rliable)",
        f"- area over chance: between the group's mean curve and {y_label} "
        f"{common.fmt(ref_y, '.3g')}, up to {common.fmt(ref_x, '.4g')} {x_label}",
        f"- 95% CIs: {summary['ci']}, {summary['n_bootstrap']} resamples (seed {summary['seed']})",
        "",
        groups_table(summary),
        "",
        *_cost_lines(summary),
        f"## Pareto frontier (trials: final {x_label}, test {summary['y']}; "
        "diverged/failed left off)",
        "",
        _frontier_table(trials, x_label),
        "",
    ]
    if failed.any():
        lines.append(
            f"Note: {int(failed.sum())} trial(s) diverged or failed: they hold chance "
            "accuracy and never reach the target."
        )
    if not summary["items_resampled"] and any(g["n"] < 2 for g in summary["groups"].values()):
        lines.append("Note: groups with one seed and no per-item results have no interval.")
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
