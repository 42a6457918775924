"""The results-table part of benchmarks/sweep_scale.py: append cost and load + frontier time.

Tables are synthetic but valid (the demo config, 100 reports per trial, the mask_ratio
grid's ratios x seeds), built in one vectorised frame rather than row by row.
"""

from __future__ import annotations

if __name__ == "__main__":  # a helper, not a benchmark: say so instead of printing nothing
    raise SystemExit(
        "benchmarks/sweep_scale_table.py is part of a benchmark:"
        " run benchmarks/sweep_scale.py (--help lists the options)"
    )

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from medflip import config, variants
from medflip.results import table as results

ROOT = Path(__file__).resolve().parent.parent
RATIOS = (0.0, 0.25, 0.5, 0.75, 0.9)
STEPS = 100  # reports per trial in the synthetic tables


def synthetic(rows: int, first_trial: int = 0, steps: int = STEPS) -> pd.DataFrame:
    """`rows` results rows: rows/steps trials x `steps` reports (one trial when fewer)."""
    steps = min(steps, rows)
    trials = max(1, rows // steps)
    t = np.repeat(np.arange(first_trial, first_trial + trials), steps)  # [rows]
    s = np.tile(np.arange(1, steps + 1), trials) * 10  # [rows]
    ratio = np.asarray(RATIOS)[t % len(RATIOS)]
    seed = t // len(RATIOS)
    rng = np.random.default_rng(first_trial)
    acc = 0.2 + 0.4 * (1 - np.exp(-s / 300)) - 0.05 * ratio + rng.normal(0, 0.01, len(t))
    flat = config.flatten(variants.get("demo"))
    df = pd.DataFrame({k: [v] * len(t) for k, v in flat.items() if k != "seed"})
    df["experiment"] = "scale"
    df["sweep"] = "mask_ratio"
    df["trial_id"] = [f"t{i:07d}" for i in t]
    df["seed"] = seed
    df["mask.image_ratio"] = ratio
    df["step"] = s
    df["train_time_s"] = s * (1 - ratio) * 0.05
    df["zeroshot_acc"] = acc
    df["status"] = np.where(s == steps * 10, "completed", "running")
    df["device_type"] = "cpu"
    return results.frame(df)


def _rewrite_append(path, rows) -> None:
    """The pre-change `results.append`: read the whole table, merge, rewrite it."""
    results.write(results.merge(results.load(path), rows), path)


def append_costs(sizes: list[int], repeats: int = 5) -> dict:
    """Median seconds of one 20-row append to a table of each size, both ways side by side."""
    out = {}
    new_rows = synthetic(20, first_trial=10**6, steps=20)
    for rows in sizes:
        base = synthetic(rows)
        fig = {}
        for how, fn, reps in (
            ("before_rewrite", _rewrite_append, max(1, min(repeats, 3 if rows < 10**6 else 2))),
            ("after_append", results.append, repeats),
        ):
            with tempfile.TemporaryDirectory(prefix="append-") as d:
                results.write(base, d)
                times = []
                for _ in range(reps):
                    t0 = time.perf_counter()
                    fn(d, new_rows)
                    times.append(time.perf_counter() - t0)
                assert len(results.load(d)) == rows + 20  # nothing lost, nothing doubled
            fig[how] = round(statistics.median(times), 4)
            fig[f"{how}_repeats"] = reps
        out[str(rows)] = fig
        print(f"append 20 rows to {rows:>8} rows: {fig}", flush=True)
    return out


def frontier_cost(rows: int) -> dict:
    """`results.load` (base + 10 appended parts) and `analysis/frontier.py` end to end."""
    with tempfile.TemporaryDirectory(prefix="frontier-") as d:
        results.write(synthetic(rows), d)
        for i in range(10):  # mid-sweep: a few parts not yet compacted
            results.append(d, synthetic(20, first_trial=10**6 + i, steps=20))
        t0 = time.perf_counter()
        df = results.load(d)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(ROOT / "analysis" / "frontier.py"), d, "--target", "0.4"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "MPLBACKEND": "Agg"},
        )
        frontier_s = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(
                f"frontier.py failed (rc {proc.returncode}): "
                f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
    fig = {
        "rows": len(df),
        "load_s": round(load_s, 3),
        "frontier_end_to_end_s": round(frontier_s, 2),
        # the largest child so far: frontier.py (the sweeps' children are smaller)
        "frontier_peak_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }
    print(f"load + frontier on {len(df)} rows: {fig}", flush=True)
    return fig
