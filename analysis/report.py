"""One command per paper claim: Fig. 1, Table 1, Table 3 and Fig. 3 from sweeps' results.

    python analysis/report.py RUN_DIR [RUN_DIR ...] [--out DIR] [--quick]

Each input experiment is matched to the section whose key it varies (mask.image_ratio:
Fig. 1; loss.svd_weight: Table 1; mask.variant: Table 3; data.fraction: Fig. 3). Every
number is a held-out test figure of the checkpoint `--select` holds (frontier.py's
default rule), at equal time, through frontier.analyse: intervals are t intervals over
seeds, Bonferroni-simultaneous over the section's arms. Each section ends with a verdict
on the paper's claim about one arm -- pre-specified, or chosen on validation -- from its
Holm-adjusted p (analysis/claims.py): confirmed, refuted, or cannot tell (always with one
seed). Fig. 3 is a non-inferiority test with `--margin`. Writes report.md, report.tex and
one PNG per section into --out (default: <first run>/report).
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

from analysis import claims, common, frontier, inference, report_figures  # noqa: E402

# section -> (key, baseline level, paper claim, the arm the claim names: pre-specified as
# the paper states it, or None = chosen on validation)
SECTIONS = {
    "fig1": (
        "mask.image_ratio",
        "0",
        "masking image patches (FLIP, ratio 0.5) learns faster for the compute",
        "0.5",
    ),
    "table1": (
        "loss.svd_weight",
        "0",
        "the SVD term (beta > 0) improves zero-shot accuracy",
        None,
    ),
    "table3": ("mask.variant", "none", "image masking beats no masking (Table 3)", "image"),
    "fig3": (
        "data.fraction",
        None,
        "masking is at least as good (non-inferior) with less pretraining data",
        None,
    ),
}
TITLES = {
    "fig1": "Fig. 1: zero-shot accuracy vs training time per image mask ratio",
    "table1": "Table 1: SVD weight beta",
    "table3": "Table 3: masking variants",
    "fig3": "Fig. 3: accuracy vs share of pretraining data, per masking arm",
}


def verdict(lo: float, hi: float, p_adj: float = 0.0, n: int = 2) -> str:
    """The claim's verdict from its effect's interval and adjusted p (inference.verdict)."""
    if any(isinstance(v, float) and math.isnan(v) for v in (lo, hi)) and n >= 2:
        return "cannot tell (no interval)"
    if n >= 2 and p_adj < 1 - inference.LEVEL and (lo > 0 or hi < 0):
        return "confirmed" if lo > 0 else "refuted"
    return inference.verdict(lo, hi, p_adj, n) if n < 2 else "cannot tell"


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


def _analyse(df, key, baseline, opts, level=inference.LEVEL) -> dict:
    common.check_pooling(df, key, "the sweep's axis")
    return frontier.analyse(
        df, by=key, baseline=baseline, n_boot=opts.n_boot, select=opts.select, level=level
    )


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
                "diff_p": g["diff_p"],
                "diff_sd": g["diff_sd"],
                "values": g["values"],
                "speedup": g["speedup"],
                "speedup_ci": g["speedup_ci"],
                "speedup_p": g["speedup_p"],
                "p": g["p_improvement"],
            }
        )
    return out


def _claimed(df, name: str, summary: dict, rows: list[dict]) -> tuple[str, str]:
    """(the arm the claim is about, how it was chosen)."""
    key, _, _, named = SECTIONS[name]
    others = [r["level"] for r in rows if r["level"] != summary["baseline"]]
    if named in others:
        return named, "pre-specified"
    picked = claims.on_validation(df, key, summary["x"], summary["y"], summary["budget"], others)
    if picked is not None:
        return picked, "chosen on validation"
    return others[0], "the first level (no validation to choose on)"


def section(df: pd.DataFrame, name: str, opts) -> dict | None:
    """The analysed section `name`, or None when no input varies its key."""
    key, baseline, claim, _ = SECTIONS[name]
    if name == "fig3":
        return fraction_section(df, opts)
    rows_df = _experiments_varying(df, key)
    if len(rows_df) == 0:
        return None
    m = max(1, rows_df[key].nunique() - 1)  # the family: every arm against the baseline
    result = _analyse(rows_df, key, baseline, opts, inference.family_level(m))
    summary = result["summary"]
    rows = _rows(summary)
    others = [r for r in rows if r["level"] != summary["baseline"]]
    if not others:
        return None
    about, how = _claimed(rows_df, name, summary, rows)
    effects = {}
    for r in others:  # fig1's claim is about compute: log kappa against 0
        n = min(r["seeds"], summary["groups"][summary["baseline"]]["n"])
        if name == "fig1":
            lo, hi = (math.log(v) if v > 0 else math.nan for v in r["speedup_ci"])
            effects[r["level"]] = (lo, hi, r["speedup_p"], n)
        else:
            effects[r["level"]] = (*r["diff_ci"], r["diff_p"], n)
    fam = claims.family(effects, about)
    return {
        "name": name,
        "key": key,
        "claim": claim,
        "rows": rows,
        "baseline": summary["baseline"],
        "about": f"{key}={about}, {how}; Holm over {fam['family']} arm(s), adjusted p "
        f"{common.fmt(fam['p_adjusted'], '.3g')}",
        "verdict": fam["verdict"],
        "result": result,
        "rule": summary["selection_rule"],
        "level": summary["level"],
    }


def fraction_section(df: pd.DataFrame, opts) -> dict | None:
    """Fig. 3: per data fraction, every masked arm (mask.image_ratio) against the unmasked
    one at equal time; non-inferiority with opts.margin over every fraction, and the
    masking x fraction interaction."""
    rows_df = _experiments_varying(df, "data.fraction")
    if len(rows_df) == 0:
        return None
    arm_key, rows, rule = "mask.image_ratio", [], ""
    for frac in common.sorted_levels(rows_df["data.fraction"], "data.fraction"):
        part = rows_df[rows_df["data.fraction"] == frac]
        summary = _analyse(part, arm_key, "0", opts)["summary"]
        rule = summary["selection_rule"]
        for r, g in zip(_rows(summary), summary["groups"].values(), strict=True):
            rows.append({**r, "fraction": common.label(frac), "arm": r["level"], "g": g})
    masked = sorted({r["arm"] for r in rows if r["arm"] != "0"})
    if not masked:
        return None
    diffs = {
        (r["fraction"], r["arm"]): (r["diff"], r["diff_sd"], r["seeds"])
        for r in rows
        if r["arm"] != "0"
    }
    ni = claims.non_inferiority(diffs, opts.margin)
    runs = pd.DataFrame(
        [
            {"acc": v, "arm": r["arm"], "fraction": r["fraction"], "seed": s}
            for r in rows
            for v, s in zip(r["values"], r["g"]["seeds"], strict=True)
        ]
    )
    p_int = claims.interaction(runs)
    return {
        "name": "fig3",
        "key": "data.fraction",
        "claim": SECTIONS["fig3"][2],
        "rows": rows,
        "baseline": "0",
        "about": f"{arm_key}={', '.join(masked)} at every data fraction, margin "
        f"{100 * opts.margin:g} points (one-sided 95 % at each: intersection-union); "
        f"masking x fraction interaction p = {common.fmt(p_int, '.3g')} (OLS F test)",
        "verdict": ni["verdict"],
        "interaction_p": p_int,
        "rule": rule,
        "level": inference.LEVEL,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run dirs or results.parquet files of the sweeps")
    p.add_argument("--out", help="output dir (default: <first run>/report)")
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        help="item resamples for arms with one seed (intervals are t over seeds otherwise)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="kept for scripts: the same 1,000 resamples (only one-seed arms resample; "
        "fewer flipped verdicts with the bootstrap seed)",
    )
    p.add_argument(
        "--select",
        default="auto",
        choices=("auto", "val", "latest"),
        help="the checkpoint each trial holds, as frontier.py --select (default auto: "
        "validation only with enough validation items per evaluation)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=claims.MARGIN,
        help="Fig. 3 non-inferiority margin, accuracy (default 0.02: 2 points)",
    )
    p.add_argument("--device-type", help="keep only rows of this device type")
    args = p.parse_args(argv)
    args.n_boot = max(1000, args.bootstrap) if args.quick else args.bootstrap
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    df, paths = common.load_inputs(args.runs)
    df = common.select_device(df, "train_time_s", args.device_type)
    sections = {name: section(df, name, args) for name in SECTIONS}
    found = {k: v for k, v in sections.items() if v is not None}
    if not found:
        keys = ", ".join(s[0] for s in SECTIONS.values())
        raise common.AnalysisError(f"no input varies any of {keys}: nothing to report")
    out = Path(args.out) if args.out else common.results_dir(paths[0]) / "report"
    written = report_figures.write(found, TITLES, out, paths)
    for name, sec in sections.items():
        state = "no input" if sec is None else sec["verdict"]
        rule = "" if sec is None else f" [checkpoint: {sec['rule']}]"
        print(f"{TITLES[name]}: {state}{rule}")
    print(f"wrote {', '.join(p.name for p in written)} to {out} in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(common.cli("report.py", main))
