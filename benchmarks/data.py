"""Throughput of the embedded synthetic corpus (medflip.data.synthetic) on one core.

Prints images/s at 64 and 128 px (the `images()` path: study sampling + rendering), full
items/s (`__getitem__`: image, report, labels, truth) and reports/s (sampling + report),
each the median over repeats of disjoint index ranges, by wall clock and by this
process's CPU time. On a shared machine the CPU-time figures are the honest "one core"
number: wall time also counts the moments other processes hold the core. Ends with one
line of JSON.

    python benchmarks/data.py [--n 400] [--repeats 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before numpy/torch load

import numpy as np  # noqa: E402

from medflip.data.synthetic import SyntheticCXR  # noqa: E402


def _rate(fn, n: int, repeats: int) -> tuple[float, float]:
    """Median items/s of fn(start) over `repeats` runs, by wall clock and by CPU time."""
    wall, cpu = [], []
    for r in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn(r)
        wall.append(n / (time.perf_counter() - w0))
        cpu.append(n / max(time.process_time() - c0, 1e-9))
    return statistics.median(wall), statistics.median(cpu)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/data.py",
        description="Synthetic corpus throughput (images/s at 64 and 128 px, reports/s) on "
        "one core; ends with one line of JSON.",
    )
    parser.add_argument("--n", type=int, default=400, help="items per repeat (default 400)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats, median (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # the corpus itself needs only numpy
        pass
    n, repeats = args.n, args.repeats
    out: dict = {}
    for size in (64, 128):
        data = SyntheticCXR(args.seed, (2 * repeats + 1) * n, size)
        data.images(range(8))  # build the per-size banks outside the timing
        wall, cpu = _rate(lambda r, d=data: d.images(range(r * n, (r + 1) * n)), n, repeats)
        print(f"{size:4d} px  images/s  {wall:7.0f} wall  {cpu:7.0f} cpu")
        out[f"images_per_s_{size}"], out[f"cpu_images_per_s_{size}"] = round(wall), round(cpu)
        base = repeats * n

        def items(r, d=data, base=base):
            for i in range(base + r * n, base + (r + 1) * n):
                d[i]

        wall, cpu = _rate(items, n, repeats)
        print(f"{size:4d} px  items/s   {wall:7.0f} wall  {cpu:7.0f} cpu   (image+report+truth)")
        out[f"items_per_s_{size}"], out[f"cpu_items_per_s_{size}"] = round(wall), round(cpu)
    data = SyntheticCXR(args.seed, repeats * n * 4, 64)
    m = 4 * n
    wall, cpu = _rate(lambda r: data.reports(range(r * m, (r + 1) * m)), m, repeats)
    print(f"reports/s           {wall:7.0f} wall  {cpu:7.0f} cpu")
    out["reports_per_s"], out["cpu_reports_per_s"] = round(wall), round(cpu)
    out["load_avg_1min"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    out["cores"] = os.cpu_count()
    out["numpy"] = np.__version__
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
