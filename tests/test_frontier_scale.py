"""The vectorised frontier pieces against the per-row loops and the library calls they
replace."""

import numpy as np
import pandas as pd
import pytest

from analysis import curves, paired


def _noisy(rng, n: int) -> np.ndarray:
    v = np.round(rng.normal(0.5, 0.1, n), 2)  # rounded: ties with the best happen
    v[rng.random(n) < 0.2] = np.nan
    return v


def _held_loop(val):  # the reference: one report at a time
    out, best, where = np.zeros(len(val), dtype=int), -np.inf, 0
    for r, v in enumerate(val):
        if not np.isnan(v) and v >= best:
            best, where = v, r
        out[r] = where
    return out


def _held_values_loop(val, test):
    out, best, where = np.full(len(val), np.nan), -np.inf, -1
    for r, v in enumerate(val):
        if not np.isnan(v) and not np.isnan(test[r]) and v >= best:
            best, where = v, r
        if where >= 0:
            out[r] = test[where]
    return out


@pytest.mark.parametrize("n", [0, 1, 7, 200])
def test_held_checkpoints_match_the_loop(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        val, test = _noisy(rng, n), _noisy(rng, n)
        np.testing.assert_array_equal(paired.held(val), _held_loop(val))
        np.testing.assert_array_equal(curves.held_values(val, test), _held_values_loop(val, test))


def _run(rng, seed: int, reports: int, failed: bool = False) -> paired.Run:
    x = np.cumsum(rng.uniform(1, 3, reports))
    test = np.clip(0.2 + 0.5 * (1 - np.exp(-x / 20)) + rng.normal(0, 0.02, reports), 0, 1)
    correct = (rng.random((reports, 30)) < test[:, None]).astype(np.uint8)  # [R, N]
    t = curves.Trial("e", f"t{seed}", 0.0, seed, "diverged" if failed else "completed", x, test)
    return paired.Run(t, x, correct.mean(1), paired.held(_noisy(rng, reports)), correct)


def test_curves_match_pchip_per_run_and_hold_after_the_last_evaluation():
    """paired.curve (vectorised over resamples) against scipy's PCHIP run by run: NaN
    before the first evaluation without an anchor, chance for a diverged run, the final
    value held up to carry_to and NaN past it. (Seeds are no longer resampled: intervals
    are t over seeds, analysis/inference.py, so no [B, K, G] array exists to bound.)"""
    from scipy.interpolate import PchipInterpolator

    rng = np.random.default_rng(3)
    grid = np.linspace(-1, 40, 60)
    for s in range(9):
        run = _run(rng, s, int(rng.integers(3, 12)), failed=s == 4)
        rep = paired.reported(run, None)
        got = paired.curve(run, rep, grid, 25.0, None, 0.2)[0]
        if s == 4:
            assert (got == 0.2).all()
            continue
        want = PchipInterpolator(run.x, rep[0])(np.clip(grid, run.x[0], run.x[-1]))
        want[(grid < run.x[0]) | (grid > 25.0)] = np.nan
        np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def test_trials_match_a_dataframe_per_trial():
    rng = np.random.default_rng(1)
    parts = []
    for i in range(30):
        n = int(rng.integers(1, 9))
        parts.append(
            pd.DataFrame(
                {
                    "experiment": f"e{i % 2}",
                    "trial_id": f"t{i:02d}",
                    "step": rng.permutation(np.arange(1, n + 1) * 10),  # rows out of order
                    "train_time_s": rng.uniform(0, 50, n),
                    "zeroshot_acc": _noisy(rng, n),
                    "val_zeroshot_acc": _noisy(rng, n),
                    "status": rng.choice(np.array(["running", "completed", None], object), n),
                    "seed": i // 3,
                    "mask.image_ratio": (0.0, 0.5, 0.75)[i % 3],
                }
            )
        )
    df = pd.concat(parts, ignore_index=True).sample(frac=1, random_state=0)
    got = curves.trials(df, "train_time_s", "zeroshot_acc", "mask.image_ratio", "val_zeroshot_acc")
    want = []
    for (exp, tid), rows in df.groupby(["experiment", "trial_id"], sort=True):
        rows = rows.sort_values("step")
        status = rows["status"].dropna()
        want.append(
            (
                exp,
                tid,
                rows["mask.image_ratio"].iloc[-1],
                rows["seed"].iloc[-1],
                status.iloc[-1] if len(status) else "running",
                np.maximum.accumulate(rows["train_time_s"].to_numpy()),
                _held_values_loop(
                    rows["val_zeroshot_acc"].to_numpy(), rows["zeroshot_acc"].to_numpy()
                ),
            )
        )
    assert len(got) == len(want) == 30
    for t, (exp, tid, group, seed, status, x, best) in zip(got, want, strict=True):
        assert (t.experiment, t.trial_id, t.group, t.seed, t.status) == (
            exp,
            tid,
            group,
            seed,
            status,
        )
        np.testing.assert_array_equal(t.x, x)
        np.testing.assert_array_equal(t.best, best)
