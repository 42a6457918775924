"""Results tables whose answers are known by hand, built with the real schema.

Config columns come from `medflip.config.flatten(medflip.variants.get("demo"))`, rows from
`medflip.results.table.row`, so a schema change breaks these builders, not silently the tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medflip import config, variants
from medflip.results import table as results

ROOT = Path(__file__).resolve().parent.parent  # the checkout: the CLIs' working directory

DEMO = config.flatten(variants.get("demo"))
MANIFEST = {
    "git_sha": "0" * 40,
    "medflip_version": "0.1.0",
    "torch_version": "2.x",
    "ray_version": "2.60.0",
    "num_workers": 1,
}


def trial(
    xs,
    ys,
    *,
    level=0.0,
    by="mask.image_ratio",
    seed=0,
    experiment="exp",
    trial_id=None,
    status="completed",
    device_type="cpu",
    x="train_time_s",
    y="zeroshot_acc",
    metrics=None,
) -> list[dict]:
    """Rows of one trial reporting `y` = ys at `x` = xs (steps 10, 20, ...).

    Every report but the last is "running"; the last carries `status`. `metrics` adds the
    same extra metrics to every row (e.g. {"probe_acc": 0.5}).
    """
    flat = dict(DEMO, seed=seed)
    if by:
        flat[by] = level
    tid = trial_id or f"{by}={level}-s{seed}"
    rows = []
    for i, (xv, yv) in enumerate(zip(xs, ys, strict=True)):
        m = {
            "step": 10 * (i + 1),
            "samples_seen": 1280 * (i + 1),
            x: float(xv),
            y: float(yv),
            "device_type": device_type,
            "status": status if i == len(xs) - 1 else "running",
            **(metrics or {}),
        }
        rows.append(results.row(flat, m, MANIFEST, experiment, "test", tid))
    return rows


def table(*trials: list[dict]) -> pd.DataFrame:
    """The validated results frame of some trials."""
    return results.frame([r for rows in trials for r in rows])


def rise(xs: np.ndarray, top: float, scale: float) -> np.ndarray:
    """A saturating accuracy curve 0.2 + (top - 0.2) * (1 - exp(-x / scale))."""
    return 0.2 + (top - 0.2) * (1 - np.exp(-np.asarray(xs, dtype=float) / scale))


def sweep(
    levels=(0.0, 0.5), seeds=3, reports=20, speed=None, noise=0.01, seed=0, experiment="exp"
) -> pd.DataFrame:
    """A mask-ratio sweep: level l runs `speed[l]`x faster.

    Seed s of every level reports the same accuracies as the baseline's seed s, at the
    baseline's costs divided by the level's speed, so cost ratios are exact.
    """
    rng = np.random.default_rng(seed)
    speed = speed or {lv: 1.0 + lv * 2 for lv in levels}
    out = []
    for s in range(seeds):
        base_x = np.cumsum(rng.uniform(8, 12, reports))  # [R] report costs of the baseline
        ys = rise(base_x, 0.7, 60) + rng.normal(0, noise, reports)
        for lv in levels:
            out.append(trial(base_x / speed[lv], ys, level=lv, seed=s, experiment=experiment))
    return table(*out)


def noisy_trial(
    xs, true_acc, difficulty, rng, *, level, seed, n_val=500, by="mask.image_ratio", **kw
) -> list[dict]:
    """Rows of one trial evaluated at `xs` on a shared test set of items.

    Item i is right with probability sigmoid(logit(true_acc) + difficulty[i]) (the same
    items for every arm: pairing), drawn afresh at each evaluation (the model changes); the
    validation half is n_val independent draws at the same true accuracy.
    """
    from medflip.evaluation import items

    rows = trial(xs, np.zeros(len(xs)), level=level, seed=seed, by=by, **kw)
    for row, p in zip(rows, true_acc, strict=True):
        logit = np.log(p / (1 - p)) + difficulty  # [N]
        correct = rng.random(len(difficulty)) < 1 / (1 + np.exp(-logit))
        row["zeroshot_acc"] = float(correct.mean())
        row["zeroshot_items"] = items.pack(correct)
        row["val_zeroshot_acc"] = float(rng.binomial(n_val, p) / n_val)
    return rows


def identical_curves(every=(10.0, 2.5), seeds=3, budget=200.0, n_items=500, seed=0):
    """Two arms with the same true learning curve; arm 0.5 is evaluated 4x as often."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 1.0, n_items)
    out = []
    for s in range(seeds):
        offset = rng.normal(0, 0.01)  # seed-to-seed variation of the true curve
        for level, dt in zip((0.0, 0.5), every, strict=True):
            xs = np.arange(dt, budget + 1e-9, dt)
            acc = np.clip(rise(xs, 0.6, 60) + offset, 0.05, 0.95)
            out.append(noisy_trial(xs, acc, difficulty, rng, level=level, seed=s))
    return table(*out)


def claims_sweeps(seeds=3, seed=0) -> dict[str, pd.DataFrame]:
    """Noisy per-item tables of the four paper sweeps, with known answers: mask ratio 0.5
    runs 2x faster (Fig. 1); beta has no effect (Table 1); image masking +5 points
    (Table 3); masking +5 points at every data fraction (Fig. 3)."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 1.0, 500)

    def arm(level, key, s, speed=1.0, gain=0.0, experiment="exp", extra=None):
        xs = np.arange(10.0, 160.0 + 1e-9, 10.0)
        acc = np.clip(rise(xs * speed, 0.6 + gain, 50), 0.05, 0.95)
        tid = f"{key}={level}-s{s}-{extra}"
        rows = noisy_trial(
            xs,
            acc,
            difficulty,
            rng,
            level=level,
            seed=s,
            by=key,
            experiment=experiment,
            trial_id=tid,
        )
        for r in rows:
            r.update(extra or {})
        return rows

    out = {}
    out["mask_ratio"] = table(
        *[
            arm(lv, "mask.image_ratio", s, sp, experiment="fig1")
            for lv, sp in ((0.0, 1.0), (0.5, 2.0))
            for s in range(seeds)
        ]
    )
    out["svd_weight"] = table(
        *[
            arm(b, "loss.svd_weight", s, experiment="table1")
            for b in (0.0, 0.1, 0.5)
            for s in range(seeds)
        ]
    )
    out["masking_variants"] = table(
        *[
            arm(v, "mask.variant", s, gain=g, experiment="table3")
            for v, g in (("none", 0.0), ("image", 0.05))
            for s in range(seeds)
        ]
    )
    out["data_efficiency"] = table(
        *[
            arm(
                f,
                "data.fraction",
                s,
                gain=g - 0.2 * (1 - f),
                experiment="fig3",
                extra={"mask.image_ratio": r},
            )
            for f in (0.25, 1.0)
            for r, g in ((0.0, 0.0), (0.5, 0.05))
            for s in range(seeds)
        ]
    )
    return out
