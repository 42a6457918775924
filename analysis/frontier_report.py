"""Writes a frontier analysis: frontier.png/.svg (plots.py), frontier.csv, summary.md/.json."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analysis import common, paired, plots


def _speedup_text(g: dict) -> str:
    """'2.10× [1.60, 2.70]' (the interval only with 2 or more seeds)."""
    sp, (lo, hi) = g["speedup"], g["speedup_ci"]
    if sp is None or math.isnan(sp):
        return "n/a"
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
                "—" if base else _points(g["detectable"], math.nan, math.nan, scale=scale),
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
        f"detectable (80% power){', points' if scale == 100 else ''}",
        "area over chance [95% CI]",
    ]
    return common.markdown_table(header, rows)


def _seeds(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}"


def headline(summary: dict) -> list[str]:
    """One line per arm: the speedup and the paired difference at equal time, an honest
    'no difference' when the interval covers zero, no verdict at all with one seed."""
    lines, by = [], summary["by"] or "group"
    scale, _ = _scale(summary)
    unit = " points" if scale == 100 else f" {summary['y']}"
    for name, g in summary["groups"].items():
        if name == summary["baseline"]:
            continue
        lo, hi = g["diff_ci"]
        diff = _points(g["diff"], lo, hi, sign=True, scale=scale) + unit
        n = min(g["n"], summary["groups"][summary["baseline"]]["n"])
        sp_lo, sp_hi = g["speedup_ci"]
        if n < 2:
            text = (
                f"cannot tell ({_seeds(n)}): speedup {_speedup_text(g)}, at equal time "
                f"{diff} ({g['interval']})"
            )
        else:
            speed = (
                f"no measurable speedup ({_speedup_text(g)})"
                if sp_lo <= 1 <= sp_hi
                else f"learns {'faster' if g['speedup'] > 1 else 'slower'}: time-scaling "
                f"{_speedup_text(g)}"
            )
            at_time = (
                f"no difference at equal time: {diff}" if lo <= 0 <= hi else f"at equal time {diff}"
            )
            text = f"{speed}; {at_time}"
        lines.append(
            f"{by}={name} vs {summary['baseline']}: {text} "
            f"(P(improvement) {common.fmt(g['p_improvement'], '.2f')}, {_seeds(g['n'])})"
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


def _method_lines(summary: dict, x_label: str, y_label: str) -> list[str]:
    """What each number is, in the words of the numbers (README "Statistics")."""
    ref_x, ref_y = summary["reference_point"]
    how = (
        "given with --target"
        if summary["target_from"] == "given"
        else f"{paired.TARGET_SHARE:.0%} of the baseline's mean gain over chance at equal time"
    )
    sel = summary["selected_on"]
    held = (
        "each trial's latest evaluation, as measured (no checkpoint selection)"
        if sel == paired.LATEST
        else f"the checkpoint best on `{sel}` (validation half) so far"
    )
    seeds = "/".join(map(str, summary["seeds_per_arm"]))
    items = summary.get("test_items") or "not recorded"
    base = summary["groups"][summary["baseline"]]
    return [
        f"- checkpoint: {held} ({summary.get('selection_rule', '')}); every number is its "
        f"`{summary['y']}` on the held-out test half; test items per evaluation: {items}",
        f"- seeds per arm: {seeds}; each seed of an arm is paired with the baseline's run of "
        "the same seed (same data order and initialisation)",
        f"- equal time: {summary.get('budget_rule', 'the budget')} = "
        f"{common.fmt(summary['budget'], '.4g')} {x_label}; each run's curve is linear "
        "between its evaluations and holds its final value after its last; a diverged or "
        "failed run counts at chance in every figure, P(improvement) included",
        f"- intervals: {summary['ci']}; P(improvement) = P(a seed of the group beats a seed "
        "of the baseline) (rliable)",
        "- smallest difference this design detects (80 % power, two-sided 5 % paired t over "
        "the seeds, at the spread the per-seed differences showed): the `detectable` column",
        "- speedup: time-scaling κ with the arm's curve at t ≈ the baseline's at κt, fitted "
        "per seed over the whole overlap of the two curves (monotone fits, PCHIP); geometric "
        f"mean over seeds; `reached` = seeds whose own curve reaches {summary['y']} "
        f"{common.fmt(summary['target'], '.4f')} ({how}; the baseline's mean curve at "
        f"{common.fmt(base['reach'], '.4g')} {x_label})",
        f"- area over chance: the mean over seeds of each run's area between its curve and "
        f"{y_label} {common.fmt(ref_y, '.3g')}, up to {common.fmt(ref_x, '.4g')} {x_label}",
    ]


def summary_markdown(summary: dict, trials: pd.DataFrame) -> str:
    """The researcher's summary: the method and the design stated, one row per group, cost."""
    x_label = common.AXIS_LABELS.get(summary["x"], summary["x"])
    y_label = common.METRIC_LABELS.get(summary["y"], summary["y"])
    failed = trials["status"].isin(("diverged", "failed"))
    lines = [
        f"# {y_label} vs {x_label}",
        "",
        *[f"**{h}**" for h in headline(summary)],
        "",
        f"- inputs: {', '.join(summary.get('inputs', []))}",
        f"- device type(s): {', '.join(summary.get('device_types', [])) or 'unknown'}",
        f"- groups: `{summary['by']}`; baseline: `{summary['baseline']}`",
        *_method_lines(summary, x_label, y_label),
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
            "accuracy in every figure and never reach the target."
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
