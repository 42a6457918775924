"""analysis/frontier.py on tables whose answers are known by hand."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tables
from scipy.interpolate import PchipInterpolator

from analysis import common, curves, frontier, frontier_report, stats
from medflip.results import table as results


def test_nanmedian_matches_numpy_and_keeps_inf():
    a = np.random.default_rng(0).normal(size=(7, 5, 9))
    a[a > 1.2] = np.nan
    a[:, 0, 0] = np.nan
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        want = np.nanmedian(a, axis=0)
    np.testing.assert_allclose(stats.nanmedian(a, axis=0), want, equal_nan=True)
    assert stats.nanmedian(np.array([1.0, np.inf, np.inf])) == np.inf
    assert stats.nanmedian(np.array([1.0, 3.0, np.inf, np.inf])) == np.inf
    assert stats.nanmedian(np.array([1.0, 3.0, 5.0, np.inf])) == 4.0


def test_pareto_frontier_of_a_listed_set_and_against_brute_force():
    cost = np.array([1, 2, 2, 3, 4, 4, 5, 6.0])
    acc = np.array([0.3, 0.5, 0.4, 0.5, 0.7, 0.7, 0.6, 0.8])
    # (2,.4) loses to (2,.5); (3,.5) to (2,.5); (5,.6) to (4,.7); the two (4,.7) tie.
    assert curves.pareto_mask(cost, acc).tolist() == [1, 1, 0, 0, 1, 1, 0, 1]
    rng = np.random.default_rng(1)
    c, a = rng.integers(0, 6, 60).astype(float), rng.integers(0, 6, 60).astype(float)
    brute = [
        not any(c[j] <= c[i] and a[j] >= a[i] and (c[j] < c[i] or a[j] > a[i]) for j in range(60))
        for i in range(60)
    ]
    assert curves.pareto_mask(c, a).tolist() == brute


def test_hypervolume_of_a_known_staircase():
    # Corners (1,.5) (2,.7) (4,.9) and a dominated (3,.6), reference (5, .2):
    # [1,2) x .3 + [2,4) x .5 + [4,5) x .7 = .3 + 1.0 + .7 = 2.0
    cost, acc = np.array([1, 2, 3, 4.0]), np.array([0.5, 0.7, 0.6, 0.9])
    assert curves.hypervolume(cost, acc, (5, 0.2)) == pytest.approx(2.0)
    stairs = np.array([[0.5, 0.7, 0.9], [0.2, 0.2, 0.2]])  # vectorised; a flat chance line adds 0
    np.testing.assert_allclose(curves.staircase_area([1, 2, 4], stairs, (5, 0.2)), [2.0, 0.0])
    # A trial ending at 5 (the reference cost). Without a validation metric its curve is
    # each latest evaluation as measured (no running maximum), monotone-cubic between
    # evaluations and from chance at 0; its area over chance is that curve's integral.
    one = tables.table(tables.trial([1, 2, 3, 4, 5], [0.5, 0.7, 0.6, 0.9, 0.9]))
    latest = frontier.analyse(one, ref_y=0.2, n_boot=10)["summary"]
    assert latest["selected_on"] == "latest"
    assert latest["groups"]["all"]["hypervolume"] == pytest.approx(
        _pchip_area([0.5, 0.7, 0.6, 0.9, 0.9]), rel=1e-3
    )
    # Selected on a validation metric equal to it, the held checkpoint's values.
    one["val_zeroshot_acc"] = one["zeroshot_acc"]
    out = frontier.analyse(one, ref_y=0.2, n_boot=10)["summary"]
    assert out["reference_point"] == [5.0, 0.2]
    assert out["groups"]["all"]["hypervolume"] == pytest.approx(
        _pchip_area([0.5, 0.7, 0.7, 0.9, 0.9]), rel=1e-3
    )


def _pchip(xs, ys, at):
    return float(PchipInterpolator([0.0, *xs], [0.2, *ys])(min(at, xs[-1])))


def _pchip_area(ys):
    """Area over chance 0.2 of the PCHIP through (0, 0.2) and (k, ys[k-1]) up to 5."""
    return float(PchipInterpolator(np.arange(6.0), [0.2, *ys]).integrate(0, 5)) - 0.2 * 5


def test_a_group_twice_as_fast_has_speedup_two():
    df = tables.sweep(levels=(0.0, 0.5), seeds=5, speed={0.0: 1.0, 0.5: 2.0}, noise=0.01)
    s = frontier.analyse(df, by="mask.image_ratio", target=0.6, n_boot=500)["summary"]
    g = s["groups"]["0.5"]
    # every seed's curve is the baseline's at half the cost: kappa = 2 seed by seed (to the
    # fit's tolerance), so the interval is that one value
    assert g["speedup"] == pytest.approx(2.0, rel=1e-3)
    assert g["speedup_ci"] == [pytest.approx(2.0, rel=1e-3)] * 2
    assert g["reached"] == "5/5" and s["groups"]["0"]["speedup"] == 1.0
    # At the baseline's budget the faster group has long plateaued: no worse accuracy.
    assert g["acc_at_budget"] >= s["groups"]["0"]["acc_at_budget"] - 0.01


def test_default_target_is_most_of_the_baselines_gain_over_chance():
    rows = [tables.trial([10, 20], [0.3, f], seed=s) for s, f in enumerate([0.5, 0.6, 0.7, 0.8])]
    s = frontier.analyse(tables.table(*rows), n_boot=10)["summary"]
    # mean at the budget 0.65; chance 0.2; 0.2 + 0.9 * 0.45 = 0.605: reached by 0.7 and 0.8
    assert s["target"] == pytest.approx(0.605) and s["groups"]["all"]["reached"] == "2/4"
    assert s["target_from"] == "baseline's accuracy at its budget"


def test_bands_narrow_with_more_seeds():
    widths = []
    for seeds in (4, 40):
        df = tables.sweep(levels=(0.0,), seeds=seeds, noise=0.04, seed=3)
        c = frontier.analyse(df, n_boot=300)["curves"]
        widths.append(float(np.nanmean(c["hi"] - c["lo"])))
    assert widths[1] < 0.6 * widths[0], widths


def test_a_group_that_never_reaches_and_a_diverged_trial():
    xs = [10, 20, 30]
    df = tables.table(
        *[tables.trial(xs, [0.4, 0.6, 0.7], level=0.0, seed=s) for s in range(3)],
        *[tables.trial(xs, [0.3, 0.4, 0.5], level=0.5, seed=s) for s in range(3)],
        tables.trial(xs, [0.5, 0.8, 0.9], level=0.75, seed=0, status="diverged"),
        tables.trial([5, 10, 15], [0.5, 0.7, 0.7], level=0.75, seed=1),
    )
    s = frontier.analyse(df, by="mask.image_ratio", n_boot=200)["summary"]
    assert s["target"] == pytest.approx(0.2 + 0.9 * 0.5)
    never = s["groups"]["0.5"]  # slower on every seed alike: a finite kappa < 1, not "never"
    assert never["reached"] == "0/3" and never["speedup"] < 0.8
    assert never["speedup_ci"][1] < 0.8 and never["diff_ci"][1] < 0
    mixed = s["groups"]["0.75"]  # the diverged seed passed 0.7 but counts as never reaching
    assert mixed["reached"] == "1/2" and not mixed["paired"]  # seeds 0, 1 vs 0, 1, 2
    # the diverged seed holds chance at equal time: (0.2 + 0.7) / 2
    assert mixed["acc_at_budget"] == pytest.approx(0.45)
    out = frontier.analyse(df, by="mask.image_ratio", n_boot=10)["trials"]
    assert not out[out["status"] == "diverged"]["pareto"].any()


def test_accuracy_at_the_baselines_budget():
    df = tables.table(
        *[tables.trial([10, 20, 30 + s], [0.4, 0.5, 0.6], level=0.0, seed=s) for s in range(3)],
        *[tables.trial([5, 25, 40], [0.2 + s / 10, 0.7, 0.9], level=0.5, seed=s) for s in range(3)],
    )
    s = frontier.analyse(df, by="mask.image_ratio", n_boot=200)["summary"]
    assert s["budget"] == 31.0  # median of 30, 31, 32
    # between the evaluations at 25 (0.7) and 40 (0.9), on each seed's PCHIP curve
    arm = [_pchip([5, 25, 40], [0.2 + s / 10, 0.7, 0.9], 31) for s in range(3)]
    assert s["groups"]["0.5"]["acc_at_budget"] == pytest.approx(np.mean(arm))
    # 0.6 (stopped at 30: a run that stopped keeps its final value), 0.6 (at 31), and
    # between 0.5 (at 20) and 0.6 (at 32)
    base = [_pchip([10, 20, 30 + s], [0.4, 0.5, 0.6], 31) for s in range(3)]
    assert base[0] == base[1] == pytest.approx(0.6) and 0.5 < base[2] < 0.6
    assert s["groups"]["0"]["acc_at_budget"] == pytest.approx(np.mean(base))
    lo, hi = s["groups"]["0.5"]["acc_at_budget_ci"]
    assert lo < np.mean(arm) < hi


def test_one_seed_has_curves_without_bands():
    df = tables.table(
        tables.trial([10, 20], [0.4, 0.6], level=0.0), tables.trial([5, 10], [0.4, 0.6], level=0.5)
    )
    out = frontier.analyse(df, by="mask.image_ratio", n_boot=50)
    assert out["curves"]["mean"].notna().any() and out["curves"]["lo"].isna().all()
    g = out["summary"]["groups"]["0.5"]
    assert g["speedup"] == pytest.approx(2.0, rel=1e-3) and np.isnan(g["speedup_ci"][0])
    assert g["interval"] == "evaluation noise only (1 seed)"
    assert "cannot tell (1 seed)" in frontier_report.headline(out["summary"])[0]


def test_combined_experiments_are_not_double_counted(tmp_path):
    df = tables.sweep(levels=(0.0, 0.5), seeds=3)
    results.write(df, tmp_path / "a")
    results.write(df.assign(experiment="b"), tmp_path / "b")
    twice = results.load([tmp_path / "a", tmp_path / "a" / "results.parquet"])
    s1 = frontier.analyse(twice, by="mask.image_ratio", n_boot=10)["summary"]
    assert s1["groups"]["0.5"]["n"] == 3
    both = results.load([tmp_path / "a", tmp_path / "b"])
    s2 = frontier.analyse(both, by="mask.image_ratio", n_boot=10)["summary"]
    assert s2["groups"]["0.5"]["n"] == 6


def test_device_types_are_never_mixed_on_a_time_axis():
    df = pd.concat(
        [
            tables.sweep(levels=(0.0,), seeds=2),
            tables.sweep(levels=(0.0,), seeds=2, experiment="gpu").assign(
                device_type="NVIDIA H100"
            ),
        ],
        ignore_index=True,
    )
    with pytest.raises(common.AnalysisError, match=r"'NVIDIA H100', 'cpu'.*--device-type"):
        common.select_device(df, "train_time_s", None)
    assert len(common.select_device(df, "samples_seen", None)) == len(df)  # not a time
    one = common.select_device(df, "train_time_s", "NVIDIA H100")
    assert set(one["device_type"]) == {"NVIDIA H100"}


def _cli(capsys, *argv):
    code = common.cli("frontier.py", frontier.main, list(argv))
    return code, capsys.readouterr()


def test_clear_errors(tmp_path, capsys, monkeypatch):
    results.write(tables.sweep(levels=(0.0, 0.5), seeds=2), tmp_path / "run")
    code, out = _cli(capsys, str(tmp_path / "run"), "--y", "zeroshot_accuracy")
    assert code == 2 and "'zeroshot_accuracy' is not a metric" in out.err
    assert "zeroshot_acc" in out.err and out.err.count("\n") == 1
    code, out = _cli(capsys, str(tmp_path / "run"), "--by", "mask.image_rati")
    assert code == 2 and "did you mean mask.image_ratio" in out.err
    monkeypatch.chdir(tmp_path)  # no ./runs here
    code, out = _cli(capsys)
    assert code == 2 and "no results" in out.err
    code, out = _cli(capsys, str(tmp_path / "missing"))
    assert code == 2 and "missing" in out.err


def test_cli_writes_every_output(tmp_path):
    df = tables.sweep(levels=(0.0, 0.5, 0.75), seeds=4, speed={0.0: 1, 0.5: 1.6, 0.75: 2.0})
    results.write(
        pd.concat([df, tables.table(tables.trial([1, 2], [0.3, 0.4], level=0.25))]),
        tmp_path / "run",
    )
    proc = subprocess.run(
        [sys.executable, "analysis/frontier.py", str(tmp_path / "run"), "--bootstrap", "200"],
        capture_output=True,
        text=True,
        cwd=tables.ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "run" / "analysis"
    assert str(out) in proc.stdout and "grouping by mask.image_ratio" in proc.stdout
    for name in ("frontier.png", "frontier.svg", "frontier.csv", "summary.md", "summary.json"):
        assert (out / name).stat().st_size > 100, name
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baseline"] == "0" and set(summary["groups"]) == {"0", "0.25", "0.5", "0.75"}
    assert set(summary["groups"]["0.5"]) >= {
        "speedup",
        "speedup_ci",
        "reached",
        "acc_at_budget",
        "acc_at_budget_ci",
        "hypervolume",
        "hypervolume_ci",
    }
    curves_csv = pd.read_csv(out / "frontier.csv")
    assert list(curves_csv.columns[:5]) == ["group", "x", "mean", "lo", "hi"]
    md = (out / "summary.md").read_text()
    # tables.sweep has no val_* column: each trial's latest evaluation, as measured
    assert "| 0.5 |" in md and "latest evaluation, as measured" in md
    assert "no per-item results" in md
    assert "mask.image_ratio=0.25 vs 0: cannot tell (1 seed)" in md  # one seed: no verdict
    assert "## What it cost" in md


def test_a_hundred_trials_of_fifty_reports_are_all_analysed():
    """Speed lives in benchmarks/sweep_scale.py (load + frontier at 1M rows); this checks
    that a sweep of this size is analysed whole: every trial, every group."""
    df = tables.sweep(levels=(0.0, 0.25, 0.5, 0.75, 0.9), seeds=20, reports=50)
    out = frontier.analyse(df, by="mask.image_ratio", n_boot=1000)
    assert len(out["trials"]) == 100 and len(out["summary"]["groups"]) == 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_arm_evaluated_four_times_as_often_gains_nothing(seed):
    # The same true curve, noisy items; arm 0.5 is evaluated every 2.5 s, the baseline every 10 s.
    df = tables.identical_curves(seed=seed)
    s = frontier.analyse(df, by="mask.image_ratio", n_boot=1000)["summary"]
    base, often = s["groups"]["0"], s["groups"]["0.5"]
    assert s["selected_on"] == "val_zeroshot_acc" and not s["items_resampled"]  # 3 seeds
    for key in ("acc_at_budget", "hypervolume"):
        (lo, hi), (blo, bhi) = often[f"{key}_ci"], base[f"{key}_ci"]
        assert lo <= bhi and blo <= hi, (key, often[f"{key}_ci"], base[f"{key}_ci"])
    assert often["diff_ci"][0] <= 0 <= often["diff_ci"][1], often["diff_ci"]
    assert often["speedup_ci"][0] <= 1 <= often["speedup_ci"][1], often["speedup_ci"]


def test_a_running_max_over_test_would_favour_the_arm_evaluated_more_often():
    # The control for the test above: selecting on the reported (test) values themselves,
    # as a best-so-far over test evaluations does, puts that arm ahead on the same data.
    df = tables.identical_curves(seed=0)
    df = df.assign(val_zeroshot_acc=df["zeroshot_acc"])  # "selection" on test
    s = frontier.analyse(df, by="mask.image_ratio", n_boot=1000)["summary"]
    assert s["groups"]["0.5"]["diff"] > 0.01


def test_a_loss_is_minimised():
    # Lower is better: the arm whose loss falls twice as fast reaches the target first.
    xs = np.arange(10.0, 110.0, 10.0)
    df = tables.table(
        *[
            tables.trial(xs, 2 * np.exp(-xs / 40) + 0.01 * s, level=0.0, seed=s, y="loss")
            for s in range(3)
        ],
        *[
            tables.trial(xs, 2 * np.exp(-xs / 20) + 0.01 * s, level=0.5, seed=s, y="loss")
            for s in range(3)
        ],
    )
    s = frontier.analyse(df, y="loss", by="mask.image_ratio", n_boot=200)["summary"]
    fast, base = s["groups"]["0.5"], s["groups"]["0"]
    assert s["minimised"] and fast["acc_at_budget"] < base["acc_at_budget"]
    assert fast["diff"] < 0 and fast["p_improvement"] == 1.0 and fast["speedup"] > 1.5
    lo, hi = fast["acc_at_budget_ci"]
    assert lo <= fast["acc_at_budget"] <= hi
