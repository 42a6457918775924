"""What a sweep's orchestration costs per trial as the sweep grows: 100 vs 1,000 vs 5,000 trials.

The real launcher (`launch.make_plan` from the sweep CLI's own parser), the real Tuner
(`tuning.build_tuner`: results recorder, progress view, Optuna searcher with seeds
replicated, Tune's loggers) on local Ray; only the trainable is replaced by a function that
reports `--reports` synthetic evaluations in milliseconds, so what is measured is the Tune
layer alone (the Ray Train worker start-up is benchmarks/orchestration.py's). Grid:
`mask_ratio` (5 points x trials/5 seeds); Optuna: `temperature` (TPE, trials suggestions).
Each sweep runs in a fresh process (its own Ray), so memory and CPU figures are its own.

Per trial: driver CPU s, wall s, recorder s (time inside the results callback), searcher s
per suggestion (time inside suggest + tell), files and bytes on disk, driver peak memory;
and the ratio of each at the largest to the smallest size (goal <= 1.5). Plus: one 20-row
results append at 1k..1M existing rows, the rewrite-the-table way (`before`) and the
append-only way (`after`), and `results.load` + `analysis/frontier.py` on a 1M-row table.

Usage: python benchmarks/sweep_scale.py [--trials 100,1000,5000] [--searchers grid,optuna]
    [--reports 20] [--append-rows 1000,10000,100000,1000000] [--frontier-rows 1000000]
Tiny (the test suite): --trials 10,20 --append-rows 1000 --frontier-rows 2000
Ends with one line of JSON with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


FIELDS = (
    "driver_cpu_s",
    "wall_s",
    "recorder_s",
    "searcher_s_per_suggestion",
    "files",
    "bytes",
    "driver_peak_mb",
)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=_ints, default=[100, 1000, 5000], help="sweep sizes")
    p.add_argument("--searchers", default="grid,optuna", help="grid, optuna or both")
    p.add_argument("--reports", type=int, default=20, help="reports per trial")
    p.add_argument("--concurrency", type=int, default=4, help="trials at once")
    p.add_argument(
        "--append-rows", type=_ints, default=[1000, 10_000, 100_000, 1_000_000], help="table sizes"
    )
    p.add_argument("--frontier-rows", type=int, default=1_000_000, help="0: skip")
    p.add_argument(
        "--new-process-per-trial",
        dest="reuse_actors",
        action="store_false",
        help="Tune's default: one process start per trial (slow; constant per trial)",
    )
    p.add_argument("--timeout-s", type=int, default=3600, help="per sweep")
    p.add_argument("--one", help=argparse.SUPPRESS)  # "grid:100": run one sweep, print JSON
    p.add_argument("--storage", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_sweeps(args) -> dict:
    """Each (searcher, size) in its own process; returns {searcher: {size: figures}}."""
    out: dict = {}
    for searcher in args.searchers.split(","):
        for n in args.trials:
            with tempfile.TemporaryDirectory(prefix="sweep-scale-") as storage:
                cmd = [sys.executable, __file__, "--one", f"{searcher}:{n}", "--storage", storage]
                cmd += ["--reports", str(args.reports), "--concurrency", str(args.concurrency)]
                cmd += [] if args.reuse_actors else ["--new-process-per-trial"]
                t0 = time.perf_counter()
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=args.timeout_s, cwd=ROOT
                )
                lines = proc.stdout.strip().splitlines()
                if proc.returncode != 0 or not lines:
                    raise SystemExit(
                        f"{searcher}:{n} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
                    )
                figures = json.loads(lines[-1])
                figures["process_wall_s"] = time.perf_counter() - t0
                out.setdefault(searcher, {})[n] = figures
                print(f"{searcher:>6} {n:>5} trials: {json.dumps(figures)}", flush=True)
    return out


def ratios(sweeps: dict) -> dict:
    """Per-trial figure at the largest size / at the smallest (1.0 = flat)."""
    out = {}
    for searcher, by_n in sweeps.items():
        small, large = by_n[min(by_n)], by_n[max(by_n)]
        out[searcher] = {
            f: round(large[f] / small[f], 2) if small.get(f) else None for f in FIELDS if f in small
        }
    return out


def print_table(sweeps: dict, rat: dict) -> None:
    print(f"\n{'searcher':>8} {'trials':>6} " + " ".join(f"{f:>26}" for f in FIELDS))
    for searcher, by_n in sweeps.items():
        for n, fig in sorted(by_n.items()):
            cells = " ".join(f"{fig.get(f, float('nan')):>26.4g}" for f in FIELDS)
            print(f"{searcher:>8} {n:>6} {cells}")
        cells = " ".join(f"{str(rat[searcher].get(f)):>26}" for f in FIELDS)
        print(f"{searcher:>8} {'ratio':>6} {cells}")


def main(argv=None) -> int:
    args = parse(argv)
    if args.one:
        from benchmarks import sweep_scale_trial

        kind, n = args.one.split(":")
        print(json.dumps(sweep_scale_trial.run_one(kind, int(n), args)))
        return 0
    load_before = (
        Path("/proc/loadavg").read_text().split()[:3] if os.path.exists("/proc/loadavg") else []
    )
    sweeps = run_sweeps(args) if args.trials else {}
    rat = ratios(sweeps) if sweeps else {}
    if sweeps:
        print_table(sweeps, rat)
    from benchmarks import sweep_scale_table as table  # pandas: after argparse

    appends = table.append_costs(args.append_rows)
    frontier = table.frontier_cost(args.frontier_rows) if args.frontier_rows else None
    load_after = (
        Path("/proc/loadavg").read_text().split()[:3] if os.path.exists("/proc/loadavg") else []
    )
    summary = {
        "sweeps": {s: {str(n): f for n, f in by_n.items()} for s, by_n in sweeps.items()},
        "ratio_largest_to_smallest": rat,
        "append_20_rows_s": appends,
        "load_frontier": frontier,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
