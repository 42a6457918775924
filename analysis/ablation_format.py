"""Writes an ablation table (analysis/ablation.py) as Markdown, CSV and booktabs LaTeX."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from analysis import common


def _half(mean: float, hi: float) -> float:
    return hi - mean  # t-intervals are symmetric


def cell(r, diff: bool = False, bold: bool = False, tex: bool = False) -> str:
    """'0.612 ± 0.010' (or '+0.012 ± 0.004 (3/3)' for a difference); no ± with one seed."""
    pm = r"$\pm$" if tex else "±"
    if diff:
        if pd.isna(r.diff):
            return "--" if tex else "—"
        text = f"{r.diff:+.3f}"
        if not math.isnan(r.diff_hi):
            text += f" {pm} {_half(r.diff, r.diff_hi):.3f}"
        return f"{text} ({int(r.wins)}/{int(r.n_paired)})"
    if math.isnan(r.mean):
        return "n/a"
    text = f"{r.mean:.3f}"
    if bold:
        text = "\\textbf{" + text + "}" if tex else f"**{text}**"
    if not math.isnan(r.ci_hi):
        text += f" {pm} {_half(r.mean, r.ci_hi):.3f}"
    return text


TEX_NAMES = {  # LaTeX column heads: what a reader calls the metric, not its column name
    "zeroshot_acc": "Zero-shot acc.",
    "zeroshot_f1": "Zero-shot F1",
    "zeroshot_binary_acc": "Binary acc.",
    "zeroshot_binary_bacc": "Binary bal. acc.",
    "zeroshot_binary_auroc": "Binary AUROC",
    "probe_acc": "Linear probe",
    **{f"retrieval_i2t_p{k}": f"I$\\to$T P@{k}" for k in (1, 2, 5, 10)},
    **{f"retrieval_t2i_p{k}": f"T$\\to$I P@{k}" for k in (1, 2, 5, 10)},
    "mask.variant": "Masking",
    "mask.image_ratio": "Mask ratio",
    "loss.svd_weight": "SVD weight $\\beta$",
    "loss.temperature": "$\\tau$",
    "data.fraction": "Data fraction",
}


def _unique_best(long: pd.DataFrame) -> pd.Series:
    """True where a level's mean is the single best of its metric (ties: nobody bold)."""
    best = long.groupby("metric")["mean"].transform("max")
    ties = long.assign(top=long["mean"] == best).groupby("metric")["top"].transform("sum")
    return (long["mean"] == best) & (ties == 1)


def wide(long: pd.DataFrame, diff: bool = False, tex: bool = False) -> pd.DataFrame:
    """Levels as rows, metrics as columns, formatted cells; a metric's single best mean in
    bold (tied bests are not bolded: a tie is no winner)."""
    top = _unique_best(long)
    cells = [
        cell(r, diff=diff, bold=(not diff) and bool(t), tex=tex)
        for r, t in zip(long.itertuples(), top, strict=True)
    ]
    frame = long.assign(cell=cells)
    out = frame.pivot(index="level", columns="metric", values="cell")
    levels = list(dict.fromkeys(long["level"]))
    metrics = list(dict.fromkeys(long["metric"]))
    out = out.reindex(index=levels, columns=metrics)
    n = long.groupby("level")["n"].max().reindex(levels)
    out.insert(0, "n", n.astype(str))
    return out


def to_markdown(long: pd.DataFrame, notes: list[str]) -> str:
    factor, base = long["factor"].iloc[0], long.attrs["baseline"]
    parts = [
        f"# Ablation: `{factor}` (baseline `{base}`)",
        "",
        "Mean ± half-width of the 95% Student-t interval over seeds, each trial's final "
        "values; a metric's single best mean in bold (none when tied).",
        "",
    ]
    means = wide(long)
    parts.append(
        common.markdown_table(
            [factor] + list(means.columns), [[lv] + list(row) for lv, row in means.iterrows()]
        )
    )
    diffs = wide(long, diff=True).drop(columns="n")
    parts += [
        "",
        f"## Difference from `{base}`, paired by seed",
        "",
        "Mean ± half-width of the 95% t-interval of (level − baseline) over the seeds "
        "both ran; (k/n) = seeds where the level is strictly better.",
        "",
        common.markdown_table(
            [factor] + list(diffs.columns), [[lv] + list(row) for lv, row in diffs.iterrows()]
        ),
    ]
    parts += [""] + [f"Note: {n}" for n in notes]
    return "\n".join(parts).rstrip() + "\n"


def _tex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
    ):
        text = text.replace(a, b)
    return text


def _tex_tabular(frame: pd.DataFrame, first: str) -> list[str]:
    cols = [first] + list(frame.columns)
    lines = [
        r"\begin{tabular}{l" + "c" * len(frame.columns) + "}",
        r"\toprule",
        " & ".join(TEX_NAMES.get(c, _tex_escape(c)) for c in cols) + r" \\",
        r"\midrule",
    ]
    for lv, row in frame.iterrows():
        lines.append(" & ".join([_tex_escape(str(lv))] + list(row)) + r" \\")
    return lines + [r"\bottomrule", r"\end{tabular}"]


def to_latex(long: pd.DataFrame) -> str:
    """Two booktabs tables (means; paired differences) for a paper."""
    factor, base = long["factor"].iloc[0], long.attrs["baseline"]
    lines = [
        f"% Ablation of {factor}: mean $\\pm$ 95% t-interval half-width over seeds",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
    ]
    lines += _tex_tabular(wide(long, tex=True), factor)
    lines += [
        r"\caption{Ablation of \texttt{"
        + _tex_escape(factor)
        + r"}: mean $\pm$ 95\% t-interval over seeds.}",
        r"\end{table}",
        "",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
    ]
    lines += _tex_tabular(wide(long, diff=True, tex=True).drop(columns="n"), factor)
    lines += [
        r"\caption{Difference from \texttt{"
        + _tex_escape(base)
        + r"}, paired by seed (seeds better / paired).}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def write(long: pd.DataFrame, notes: list[str], out: Path) -> list[Path]:
    """ablation.md, ablation.csv (long form, numbers) and ablation.tex into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "ablation.md", out / "ablation.csv", out / "ablation.tex"]
    paths[0].write_text(to_markdown(long, notes))
    long.to_csv(paths[1], index=False)
    paths[2].write_text(to_latex(long))
    return paths
