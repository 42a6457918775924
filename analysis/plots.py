"""The frontier figure: one mean-over-seeds line and band per group, frontier marked."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from analysis import common  # noqa: E402


def _numeric(names: list[str]) -> bool:
    try:
        [float(n) for n in names]
    except ValueError:
        return False
    return True


def palette(groups: list[str]) -> dict[str, tuple]:
    """Ordered colours for numeric levels (a ratio reads as a gradient), distinct otherwise."""
    name = "viridis" if _numeric(groups) and len(groups) > 2 else "deep"
    colours = sns.color_palette(name, len(groups))
    return dict(zip(groups, colours, strict=True))


def _group_lines(ax, curves: pd.DataFrame, trials: pd.DataFrame, colours: dict) -> None:
    for group, colour in colours.items():
        c = curves[curves["group"] == group]
        t = trials[trials["group"] == group]
        ax.step(c["x"], c["mean"], where="post", color=colour, lw=2, label=f"{group} (n={len(t)})")
        if c["lo"].notna().any():
            ax.fill_between(c["x"], c["lo"], c["hi"], step="post", color=colour, alpha=0.22, lw=0)
        ax.scatter(t["final_x"], t["final_best"], color=colour, s=16, alpha=0.7, lw=0, zorder=3)


def _frontier(ax, trials: pd.DataFrame) -> None:
    front = trials[trials["pareto"]].sort_values("final_x")
    if len(front) == 0:
        return
    ax.scatter(
        front["final_x"],
        front["final_best"],
        facecolor="none",
        edgecolor="black",
        s=70,
        lw=1.3,
        zorder=5,
        label="Pareto-optimal trials",
    )


def y_limits(values, chance: float | None, min_span: float = 0.2) -> tuple[float, float]:
    """From chance (or the data's low end) to a little above the data, never narrower than
    `min_span`: a 1-point difference must look like 1 point, not like the whole axis."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    lo = chance if chance is not None else (float(v.min()) if len(v) else 0.0)
    hi = float(v.max()) if len(v) else lo + min_span
    lo = min(lo, float(v.min())) if len(v) else lo
    hi = max(hi + 0.05 * (hi - lo), lo + min_span)
    return lo - 0.02 * (hi - lo), hi


def frontier_figure(
    curves: pd.DataFrame, trials: pd.DataFrame, summary: dict, paths: list[Path]
) -> None:
    """Draw the curves, bands, trial end points, Pareto trials, chance, target and budget."""
    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(10, 5.5))
    colours = palette(list(summary["groups"]))
    _group_lines(ax, curves, trials, colours)
    _frontier(ax, trials)
    chance = common.CHANCE.get(summary["y"])
    if chance is not None:
        ax.axhline(chance, color="black", lw=1, alpha=0.6, label=f"chance {chance:.2f}")
    if summary["target"] is not None:
        ax.axhline(
            summary["target"], color="grey", ls=":", lw=1.2, label=f"target {summary['target']:.3f}"
        )
    if summary["budget"] is not None:
        ax.axvline(summary["budget"], color="grey", ls="-.", lw=1, label="equal-time point")
    values = np.concatenate(
        [curves["hi"].to_numpy(), curves["mean"].to_numpy(), trials["final_best"].to_numpy()]
    )
    ax.set_ylim(*y_limits(values, chance))
    ax.set_xlim(left=0)
    x_label = common.AXIS_LABELS.get(summary["x"], summary["x"])
    y_label = common.METRIC_LABELS.get(summary["y"], summary["y"])
    ax.set_xlabel(x_label)
    ax.set_ylabel(f"{y_label}, test half")
    devices = ", ".join(summary.get("device_types", [])) or "unknown device"
    sel = summary.get("selected_on", summary["y"])
    ax.set_title(
        f"{y_label} vs {x_label}; device: {devices}\n"
        f"{'latest evaluation' if sel == 'latest' else f'checkpoint selected on {sel}'}; "
        "mean over seeds, 95% paired bootstrap band",
        fontsize=11,
    )
    ax.legend(
        title=summary["by"] or "group",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=9,
        title_fontsize=10,
        frameon=False,
    )
    fig.tight_layout()
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
