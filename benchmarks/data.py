"""Data throughput on one core: the synthetic corpus, and real JPEGs raw vs prepared.

Real data (`--real-n` JPEGs the size of MIMIC-CXR-JPG's, 2500x3000 grayscale, generated
here): decode + resize images/s per core (`sources.read_image` at 224 px), the prepare
run's images/s, and training pairs/s of one loader process (PretrainDataset items +
collate, the work each DataLoader process does) from the source files and from the
prepared cache, side by side; `cache_vs_raw` is their ratio.

Prints images/s at 64 and 128 px (the `images()` path: study sampling + rendering), full
items/s (`__getitem__`: image, report, labels, truth) and reports/s (sampling + report),
each the median over repeats of disjoint index ranges, by wall clock and by this
process's CPU time. On a shared machine the CPU-time figures are the honest "one core"
number: wall time also counts the moments other processes hold the core. Ends with one
line of JSON.

    python benchmarks/data.py [--n 400] [--repeats 5] [--seed 0] [--real-n 48]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
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


def _write_jpegs(root: str, n: int, seed: int) -> None:
    """n MIMIC-sized JPEGs (a synthetic film upscaled, with grain) and a manifest.csv."""
    from PIL import Image

    data = SyntheticCXR(seed, n, 256)
    rng = np.random.default_rng(seed)
    rows = ["image_path,report,patient_id"]
    for i in range(n):
        item = data[i]
        img = Image.fromarray((item["image"] * 255).astype(np.uint8)).resize((2500, 3000))
        grain = rng.normal(0, 3, (3000, 2500))
        pixels = np.clip(np.asarray(img, np.float32) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(root, f"{i}.jpg"), quality=95)
        report = item["report"].replace("\n", " ").replace('"', "'")
        rows.append(f'{i}.jpg,"{report}",p{i}')
    with open(os.path.join(root, "manifest.csv"), "w") as fh:
        fh.write("\n".join(rows) + "\n")


def _pairs_per_s(dataset, repeats: int, passes: int, batch: int = 8) -> tuple[float, float]:
    """Median pairs/s of `passes` passes over the dataset in collated batches."""
    from medflip.data.dataset import collate

    n = len(dataset) - len(dataset) % batch
    starts = [a for _ in range(passes) for a in range(0, n, batch)]

    def run(r):
        for a in starts:
            collate([dataset[i] for i in range(a, a + batch)])

    return _rate(run, n * passes, repeats)


def real(n: int, repeats: int, seed: int) -> dict:
    """Raw decode vs the prepared cache at 224 px, one process (see the module doc)."""
    from medflip import variants
    from medflip.config import apply_overrides
    from medflip.data import dataset as D
    from medflip.data import prepare, sources
    from medflip.data.corpus import records_corpus

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MEDFLIP_CACHE"] = os.path.join(tmp, "cache")
        os.environ.pop("MEDFLIP_PREPARED", None)
        _write_jpegs(tmp, n, seed)
        size = os.path.getsize(os.path.join(tmp, "0.jpg"))
        paths = [os.path.join(tmp, f"{i}.jpg") for i in range(n)]
        wall, cpu = _rate(lambda r: [sources.read_image(p, 224) for p in paths], n, repeats)
        print(f"raw JPEG 2500x3000 ({size / 1e6:.1f} MB) -> 224 px: {cpu:6.1f} images/s cpu")
        out |= {"jpeg_mb": round(size / 1e6, 2), "decode_images_per_s": round(wall, 1)}
        out["cpu_decode_images_per_s"] = round(cpu, 1)
        cfg = apply_overrides(
            variants.get("demo"),
            {"data.source": "manifest", "data.root": tmp, "data.image_size": 224},
        )
        t0 = time.perf_counter()
        prepare.prepare(cfg, workers=1)
        out["prepare_images_per_s"] = round(n / (time.perf_counter() - t0), 1)
        tok = D.build_tokenizer(cfg)
        cached = D.build_train_dataset(cfg, tok)
        train, _ = sources.partition(sources.load_records("manifest", tmp).records)
        corpus = records_corpus(train, 224, [r.report for r in train])
        raw = D.PretrainDataset(
            corpus,
            tok,
            cfg.data.max_text_len,
            cached.image_index,
            cached.text_index,
            cached.paired,
        )
        for name, ds, passes in (("raw", raw, 1), ("cache", cached, 20)):
            wall, cpu = _pairs_per_s(ds, repeats, passes)
            print(f"loader process, {name:5s}: {cpu:8.1f} pairs/s cpu  {wall:8.1f} wall")
            out[f"{name}_pairs_per_s"], out[f"cpu_{name}_pairs_per_s"] = (
                round(wall, 1),
                round(cpu, 1),
            )
    out["cache_vs_raw"] = round(out["cpu_cache_pairs_per_s"] / out["cpu_raw_pairs_per_s"], 1)
    out["loader_processes_for_4000_pairs_per_s"] = round(4000 / out["cpu_cache_pairs_per_s"], 2)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/data.py",
        description="Synthetic corpus throughput (images/s at 64 and 128 px, reports/s) and "
        "real-JPEG decode vs prepared-cache pairs/s, one core; ends with one line of JSON.",
    )
    parser.add_argument("--n", type=int, default=400, help="items per repeat (default 400)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats, median (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument("--real-n", type=int, default=48, help="MIMIC-sized JPEGs (0: skip)")
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
    if args.real_n:
        out |= real(args.real_n, args.repeats, args.seed)
    out["load_avg_1min"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    out["cores"] = os.cpu_count()
    out["numpy"] = np.__version__
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
