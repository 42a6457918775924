"""analysis/ablation.py: t-intervals, paired differences, outputs, on hand-made tables."""

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tables

from analysis import ablation, ablation_format, common, frontier, stats
from medflip.results import table as results

# Hand values: (variant, seed) -> final probe_acc.
PROBE = {
    ("none", 0): 0.50,
    ("none", 1): 0.60,
    ("none", 2): 0.70,
    ("image", 0): 0.55,
    ("image", 1): 0.62,
    ("image", 2): 0.69,
    ("text", 0): 0.40,
    ("text", 1): 0.45,
}


def _ablation_table(failed_seed=None):
    trials = []
    for (variant, seed), probe in PROBE.items():
        status = "failed" if (variant, seed) == failed_seed else "completed"
        # The last report has no zero-shot value: the trial's last evaluation counts.
        trials.append(
            tables.trial(
                [10, 20, 30],
                [0.3, probe - 0.1, math.nan],
                level=variant,
                by="mask.variant",
                seed=seed,
                status=status,
                metrics={"probe_acc": probe},
            )
        )
    return tables.table(*trials)


@pytest.mark.parametrize(
    "df, want", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423)]
)
def test_t_quantile_matches_tables(df, want):
    assert stats.t_quantile(df) == pytest.approx(want, abs=1e-4)


def test_t_interval_by_hand():
    mean, lo, hi, n = stats.t_interval(np.array([0.5, 0.6, 0.7, np.nan]))
    half = 4.302653 * 0.1 / math.sqrt(3)
    assert n == 3 and mean == pytest.approx(0.6)
    assert (lo, hi) == (pytest.approx(0.6 - half, abs=1e-6), pytest.approx(0.6 + half, abs=1e-6))
    assert math.isnan(stats.t_interval(np.array([0.5]))[1])


def test_table_means_paired_differences_and_wins():
    long, notes = ablation.table(_ablation_table(), "mask.variant")
    assert long.attrs["baseline"] == "none"
    assert list(dict.fromkeys(long["level"])) == ["none", "image", "text"]  # baseline first
    probe = long[long["metric"] == "probe_acc"].set_index("level")
    assert probe.loc["image", "mean"] == pytest.approx((0.55 + 0.62 + 0.69) / 3)
    # image - none by seed: +.05, +.02, -.01 -> mean .02, sd .03, t(2) interval
    half = 4.302653 * 0.03 / math.sqrt(3)
    assert probe.loc["image", "diff"] == pytest.approx(0.02)
    assert probe.loc["image", "diff_hi"] == pytest.approx(0.02 + half, abs=1e-6)
    assert probe.loc["image", "wins"] == 2 and probe.loc["image", "n_paired"] == 3
    # text ran seeds 0 and 1 only: paired on those two
    assert probe.loc["text", "diff"] == pytest.approx(((0.40 - 0.50) + (0.45 - 0.60)) / 2)
    assert probe.loc["text", "n_paired"] == 2 and probe.loc["text", "wins"] == 0
    assert math.isnan(probe.loc["none", "diff"])
    zs = long[long["metric"] == "zeroshot_acc"].set_index("level")
    assert zs.loc["none", "mean"] == pytest.approx(0.5)  # last *reported* values: .4 .5 .6
    assert set(long["metric"]) == {"zeroshot_acc", "probe_acc"}  # only metrics present
    assert notes == [
        "checkpoint: each trial's last evaluation (auto: the table has no val_zeroshot_acc)"
    ]


def test_trials_stopped_before_the_budget_are_left_out_and_counted():
    df = _ablation_table()
    df.loc[df["trial_id"] == "mask.variant=image-s2", "status"] = "stopped"  # ASHA
    long, notes = ablation.table(df, "mask.variant")
    probe = long[long["metric"] == "probe_acc"].set_index("level")
    assert probe.loc["image", "n"] == 2  # compared at one budget: the stopped seed is out
    assert any(n.startswith("1 trial(s) that ended before the common budget") for n in notes)
    # a time budget that some trial reached: the trials short of it are out as well
    df = _ablation_table()
    df["optim.time_budget_s"] = 30.0
    df.loc[(df["trial_id"] == "mask.variant=text-s1") & (df["step"] == 30), "train_time_s"] = 25.0
    long, notes = ablation.table(df, "mask.variant")
    assert long[(long["metric"] == "probe_acc") & (long["level"] == "text")]["n"].item() == 1


def test_failed_trials_are_left_out_and_noted():
    long, notes = ablation.table(_ablation_table(failed_seed=("image", 2)), "mask.variant")
    probe = long[long["metric"] == "probe_acc"].set_index("level")
    assert probe.loc["image", "n"] == 2 and probe.loc["image", "mean"] == pytest.approx(0.585)
    assert any("1 diverged/failed" in n and "image: 1" in n for n in notes)


def test_missing_metric_and_factor_errors(capsys, tmp_path):
    with pytest.raises(common.AnalysisError, match=r"'retrieval_t2i_p1'.*available: .*probe_acc"):
        ablation.table(_ablation_table(), "mask.variant", metrics=["retrieval_t2i_p1"])
    results.write(_ablation_table(), tmp_path / "run")
    code = common.cli(
        "ablation.py", ablation.main, [str(tmp_path / "run"), "--factor", "mask.varaint"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "did you mean mask.variant" in err and "Traceback" not in err


def test_cli_writes_markdown_csv_and_latex(tmp_path):
    results.write(_ablation_table(), tmp_path / "run")
    out = tmp_path / "tables"
    proc = subprocess.run(
        [
            sys.executable,
            "analysis/ablation.py",
            str(tmp_path / "run"),
            "--factor",
            "mask.variant",
            "--baseline",
            "none",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tables.ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    csv = pd.read_csv(out / "ablation.csv")
    assert list(csv.columns) == ablation.COLUMNS and len(csv) == 6
    md = (out / "ablation.md").read_text()
    assert "| image | 3 |" in md and "+0.020 ± 0.075 (2/3)" in md  # half = 4.303*.03/sqrt 3
    tex = (out / "ablation.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and "Linear probe" in tex
    assert "probe\\_acc" not in tex and "Masking" in tex  # readable names, not columns
    assert r"\textbf{0.620}" in tex  # image has the best mean probe accuracy


def test_different_configs_are_never_pooled_as_seeds(tmp_path, capsys):
    # A joint-sweep-like table: every trial seed 0, variants differ in tau as well.
    rows = []
    for i, (variant, tau) in enumerate([("none", 0.07), ("none", 0.1), ("image", 0.07)]):
        trial = tables.trial(
            [10, 20], [0.3, 0.4 + i / 20], level=variant, by="mask.variant", trial_id=f"t{i}"
        )
        for r in trial:
            r["loss.temperature"] = tau
        rows.append(trial)
    results.write(tables.table(*rows), tmp_path / "run")
    run = str(tmp_path / "run")
    cli = common.cli
    assert cli("ablation.py", ablation.main, [run, "--factor", "mask.variant"]) == 2
    err = capsys.readouterr().err
    assert "--factor mask.variant" in err and "loss.temperature in {0.07, 0.1}" in err
    assert "--where loss.temperature=0.07" in err and "--by" not in err
    assert cli("frontier.py", frontier.main, [run, "--by", "mask.variant"]) == 2
    assert "more than --by mask.variant" in capsys.readouterr().err
    kept = [run, "--factor", "mask.variant", "--where", "loss.temperature=0.07"]
    assert cli("ablation.py", ablation.main, [*kept, "--out", str(tmp_path)]) == 0
    assert "none" in (tmp_path / "ablation.md").read_text()


def test_tied_bests_are_not_bolded():
    long = pd.DataFrame(
        {
            "factor": "f",
            "level": ["a", "b", "c"],
            "metric": "zeroshot_acc",
            "n": 3,
            "mean": [0.5, 0.5, 0.4],
            "ci_lo": 0.4,
            "ci_hi": 0.6,
        }
    )
    assert "**" not in "".join(ablation_format.wide(long)["zeroshot_acc"])
    long.loc[2, "mean"] = 0.6
    assert ablation_format.wide(long)["zeroshot_acc"].str.contains(r"\*\*").tolist() == [
        False,
        False,
        True,
    ]
