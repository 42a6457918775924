"""One command per paper claim: Fig. 1, Table 1, Table 3 and Fig. 3 from sweeps' results.

    python analysis/report.py RUN_DIR [RUN_DIR ...] [--out DIR] [--quick]

Each input experiment is matched to the section whose key it varies (mask.image_ratio:
Fig. 1; loss.svd_weight: Table 1; mask.variant: Table 3; data.fraction: Fig. 3). Every
number is a held-out test figure of the checkpoint selected on validation, at the
baseline's budget, with a 95% paired bootstrap interval over test items and seeds
(analysis/paired.py through frontier.analyse). Each section ends with a verdict on the
paper's claim: confirmed (the interval excludes no effect in the claimed direction),
refuted (it excludes it in the other direction) or cannot tell. Writes report.md,
report.tex and one PNG per section into --out (default: <first run>/report).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import pandas as pd

if __package__ in (None, ""):  # run as a script: make the `analysis` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis import common, frontier, report_figures  # noqa: E402

# section -> (key, baseline level, paper claim, the level the claim is about ("best" = the
# best non-baseline level), direction of the claimed effect on accuracy at equal time)
SECTIONS = {
    "fig1": ("mask.image_ratio", "0", "masking image patches (FLIP) buys accuracy for the compute"),
    "table1": ("loss.svd_weight", "0", "the SVD term (beta > 0) improves zero-shot accuracy"),
    "table3": ("mask.variant", "none", "image masking beats no masking (Table 3)"),
    "fig3": ("data.fraction", None, "masking is at least as good with less pretraining data"),
}
TITLES = {
    "fig1": "Fig. 1: zero-shot accuracy vs training time per image mask ratio",
    "table1": "Table 1: SVD weight beta",
    "table3": "Table 3: masking variants",
    "fig3": "Fig. 3: accuracy vs share of pretraining data, per masking arm",
}


def verdict(lo: float, hi: float) -> str:
    """The claim's verdict from the 95% interval of its effect (positive = as claimed)."""
    if any(isinstance(v, float) and math.isnan(v) for v in (lo, hi)):
        return "cannot tell (no interval)"
    if lo > 0:
        return "confirmed"
    if hi < 0:
        return "refuted"
    return "cannot tell"


def _experiments_varying(df: pd.DataFrame, key: str) -> pd.DataFrame:
    """Rows of the experiments that vary `key`; one varying data.fraction is Fig. 3's
    (its mask-ratio arms are compared per fraction there, not pooled into Fig. 1)."""
    keep = []
    for e, rows in df.groupby("experiment"):
        varies = rows[key].nunique(dropna=False) > 1
        fig3 = key != "data.fraction" and rows["data.fraction"].nunique(dropna=False) > 1
        if varies and not fig3:
            keep.append(e)
    return df[df["experiment"].isin(keep)]


def _analyse(df, key, baseline, n_boot) -> dict:
    common.check_pooling(df, key, "the sweep's axis")
    return frontier.analyse(df, by=key, baseline=baseline, n_boot=n_boot)


def _rows(summary: dict) -> list[dict]:
    out = []
    for level, g in summary["groups"].items():
        out.append(
            {
                "level": level,
                "seeds": g["n"],
                "acc": g["acc_at_budget"],
                "acc_ci": g["acc_at_budget_ci"],
                "diff": g["diff"],
                "diff_ci": g["diff_ci"],
                "speedup": g["speedup"],
                "speedup_ci": g["speedup_ci"],
                "p": g["p_improvement"],
            }
        )
    return out


def _best(rows: list[dict], baseline: str) -> dict:
    others = [r for r in rows if r["level"] != baseline and not math.isnan(r["acc"])]
    return max(others, key=lambda r: r["acc"]) if others else rows[0]


def section(df: pd.DataFrame, name: str, n_boot: int) -> dict | None:
    """The analysed section `name`, or None when no input varies its key."""
    key, baseline, claim = SECTIONS[name]
    if name == "fig3":
        return fraction_section(df, n_boot)
    rows_df = _experiments_varying(df, key)
    if len(rows_df) == 0:
        return None
    result = _analyse(rows_df, key, baseline, n_boot)
    summary = result["summary"]
    rows = _rows(summary)
    best = _best(rows, summary["baseline"])
    effect = best["diff_ci"]
    if name == "fig1":  # the claim is about compute: the speedup's interval vs 1
        lo, hi = best["speedup_ci"]
        effect = (lo - 1, hi - 1)
    return {
        "name": name,
        "key": key,
        "claim": claim,
        "rows": rows,
        "baseline": summary["baseline"],
        "about": best["level"],
        "verdict": verdict(*effect),
        "result": result,
    }


def fraction_section(df: pd.DataFrame, n_boot: int) -> dict | None:
    """Fig. 3: per data fraction, the arms (mask.image_ratio) at equal time."""
    rows_df = _experiments_varying(df, "data.fraction")
    if len(rows_df) == 0:
        return None
    arm_key = "mask.image_ratio"
    rows, smallest = [], None
    for frac in common.sorted_levels(rows_df["data.fraction"], "data.fraction"):
        part = rows_df[rows_df["data.fraction"] == frac]
        summary = _analyse(part, arm_key, "0", n_boot)["summary"]
        for r in _rows(summary):
            rows.append({**r, "fraction": common.label(frac), "arm": r["level"]})
        smallest = smallest or (summary, frac)
    masked = [r for r in rows if r["fraction"] == common.label(smallest[1]) and r["arm"] != "0"]
    effect = masked[0]["diff_ci"] if masked else (math.nan, math.nan)
    return {
        "name": "fig3",
        "key": "data.fraction",
        "claim": SECTIONS["fig3"][2],
        "rows": rows,
        "baseline": "0",
        "about": f"{arm_key}={masked[0]['arm'] if masked else '?'} at data.fraction="
        f"{common.label(smallest[1])}",
        "verdict": verdict(*effect) if masked else "cannot tell (no masked arm)",
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run dirs or results.parquet files of the sweeps")
    p.add_argument("--out", help="output dir (default: <first run>/report)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument(
        "--quick", action="store_true", help="a preset for 2 cores: 200 bootstrap resamples"
    )
    p.add_argument("--device-type", help="keep only rows of this device type")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    n_boot = 200 if args.quick else args.bootstrap
    df, paths = common.load_inputs(args.runs)
    df = common.select_device(df, "train_time_s", args.device_type)
    sections = {name: section(df, name, n_boot) for name in SECTIONS}
    found = {k: v for k, v in sections.items() if v is not None}
    if not found:
        keys = ", ".join(s[0] for s in SECTIONS.values())
        raise common.AnalysisError(f"no input varies any of {keys}: nothing to report")
    out = Path(args.out) if args.out else common.results_dir(paths[0]) / "report"
    written = report_figures.write(found, TITLES, out, paths)
    for name, sec in sections.items():
        state = "no input" if sec is None else sec["verdict"]
        print(f"{TITLES[name]}: {state}")
    print(f"wrote {', '.join(p.name for p in written)} to {out} in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(common.cli("report.py", main))
