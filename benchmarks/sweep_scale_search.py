"""The searcher part of benchmarks/sweep_scale.py without Ray: the sweep's own Optuna searcher
(`tuning.search_alg`: OptunaSearch, TPE, the journal file, seeds replicated) asked and told
N times in a row, as Tune's driver does, with no trial in between.

Per checkpoint N: median seconds of one suggest + tell over the last suggestions before N,
the seconds of one `save` (what Tune checkpoints every few seconds) and the saved bytes.
Usage: python benchmarks/sweep_scale_search.py [--sizes 100,1000,5000]. JSON last line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


WINDOW = 20  # suggestions per median


def searcher_costs(sizes: list[int]) -> dict:
    from medflip.sweep import journal, launch, tuning  # Ray and Optuna: after argparse
    from medflip.sweep.spaces import get

    space = get("temperature")
    out = {}
    with tempfile.TemporaryDirectory(prefix="search-scale-") as storage:
        argv = ["--storage", storage, "--name", "s", "--variant", "tiny"]
        argv += ["--num-samples", str(max(sizes))]
        plan = launch.make_plan(space, launch.build_parser(space).parse_args(argv))
        searcher, metric = tuning.search_alg(plan), space.metrics[0]
        times: list[float] = []
        for i in range(1, max(sizes) + 1):
            t0 = time.perf_counter()
            config = searcher.suggest(f"t{i}")
            tau = config["loss.temperature"]
            searcher.on_trial_complete(f"t{i}", {metric: 0.5 - abs(tau - 0.07)})
            times.append(time.perf_counter() - t0)
            if i in sizes:
                path = os.path.join(storage, f"state-{i}.pkl")
                t0 = time.perf_counter()
                searcher.save(path)
                save_s = time.perf_counter() - t0
                out[str(i)] = {
                    "suggest_tell_s": round(statistics.median(times[-WINDOW:]), 5),
                    "save_s": round(save_s, 4),
                    "state_bytes": os.path.getsize(path),
                    "journal_bytes": os.path.getsize(journal.study_path(plan.experiment_dir)),
                }
                print(f"searcher at {i} suggestions: {out[str(i)]}", flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="100,1000,5000")
    sizes = [int(x) for x in p.parse_args().sizes.split(",")]
    load = Path("/proc/loadavg").read_text().split()[:3]
    out = searcher_costs(sizes)
    small, large = out[str(min(sizes))], out[str(max(sizes))]
    ratio = {k: round(large[k] / small[k], 2) for k in ("suggest_tell_s", "save_s")}
    loadafter = Path("/proc/loadavg").read_text().split()[:3]
    print(json.dumps({"by_size": out, "ratio": ratio, "loadavg": [load, loadafter]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
