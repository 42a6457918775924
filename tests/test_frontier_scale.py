"""The vectorised frontier pieces against the per-row / per-resample loops they replaced, and
the resample mean's memory (what got frontier.py killed on a 1M-row table)."""

import tracemalloc
import warnings

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


def _arm_loop(arm, reps, grid, seed_idx, carry_to, failed):
    """The replaced construction: build every resample's picked curves, then nanmean."""
    span = max([r.trial.final_x for r in arm] + [carry_to])
    m = np.stack(
        [paired.on_grid(r, rep, grid, span, failed) for r, rep in zip(arm, reps, strict=True)]
    )
    m = np.broadcast_to(m, (len(arm), len(seed_idx), len(grid))) if m.shape[1] == 1 else m
    picked = m[seed_idx, np.arange(len(seed_idx))[:, None], :]  # [B, K, G]
    with warnings.catch_warnings():  # all-NaN columns: NaN, as intended
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(picked, axis=1)


@pytest.mark.parametrize("items", [False, True])
def test_resampled_arm_curves_match_the_picked_mean(items, monkeypatch):
    rng = np.random.default_rng(3)
    arm = [_run(rng, s, int(rng.integers(3, 12)), failed=s == 4) for s in range(9)]
    grid = np.linspace(-1, 40, 60)  # starts before every first evaluation: NaN columns
    seed_idx = rng.integers(0, len(arm), size=(50, len(arm)))
    weights = paired.item_weights(rng, arm, 50) if items else None
    reps = [paired.reported(r, weights) for r in arm]
    monkeypatch.setattr(paired, "_BLOCK", 900)  # several blocks of resamples
    got = paired.arm_curves(arm, reps, grid, seed_idx, 25.0, 0.2)
    want = _arm_loop(arm, reps, grid, seed_idx, 25.0, 0.2)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)
    # Before any evaluation only a drawn diverged run (seed 4: chance everywhere) has a value.
    np.testing.assert_array_equal(np.isnan(got[:, 0]), ~(seed_idx == 4).any(axis=1))
    assert not np.isnan(got[:, np.searchsorted(grid, 10.0)]).any()  # all evaluated by 10
    point = paired.arm_curves(arm, [paired.reported(r, None) for r in arm], grid, None, 25, 0.2)
    with warnings.catch_warnings():  # all-NaN columns: NaN, as intended
        warnings.simplefilter("ignore", RuntimeWarning)
        plain = np.nanmean(
            np.stack([paired.on_grid(r, paired.reported(r, None), grid, 25, 0.2)[0] for r in arm]),
            axis=0,
        )
    np.testing.assert_allclose(point[0], plain, rtol=1e-12, equal_nan=True)


def test_resampled_mean_never_builds_the_resample_by_seed_array():
    # 400 seeds x 1,000 resamples x 300 costs: the picked array alone would be 960 MB.
    rng = np.random.default_rng(0)
    arm = [_run(rng, s, 20) for s in range(400)]
    grid = np.linspace(0, 60, 300)
    seed_idx = rng.integers(0, len(arm), size=(1000, len(arm)))
    reps = [paired.reported(r, None) for r in arm]
    tracemalloc.start()
    out = paired.arm_curves(arm, reps, grid, seed_idx, 60.0, 0.2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.shape == (1000, 300) and np.isfinite(out[:, -1]).all()
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MB"  # ~7 MB measured


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
