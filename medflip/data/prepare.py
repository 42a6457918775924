"""Read a real source once into the prepared cache (`medflip.data.prepared`).

    python -m medflip.data.prepare --source mimic-cxr --root /data/mimic-cxr-jpg \\
        --image-size 224 [--workers 16] [--variant paper --set KEY=VALUE]
    python -m medflip.sweep.prepare --address auto ...   # the same, as Ray tasks

Lists the records (reports read, labels extracted: once), decodes and resizes every image
into uint8 shards in parallel worker processes -- or as Ray tasks across the cluster's
nodes (`medflip.sweep.prepare`, which passes its mapper in) -- and tokenises the
training texts with the experiment's tokenizer (`--variant`/`--set`, as runs will).
Re-running finishes what is missing; a finished cache is a no-op. Training and
evaluation use it when it exists.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import json
import logging
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterator

from medflip import config, variants
from medflip.data import prepared, sources
from medflip.data.cache import atomic_file
from medflip.registry import DATA_SOURCES

log = logging.getLogger("medflip.data")

Job = tuple[int, list[str], int]  # (shard index, image paths, image size)


def run_job(job: Job):
    """One shard, in a worker process or a Ray task: (index, uint8 [n, H, W], bad rows)."""
    k, paths, image_size = job
    return (k, *prepared.decode_shard(paths, image_size))


def local_map(jobs: list[Job], workers: int) -> Iterator:
    """`run_job` over `jobs` in `workers` spawned processes, results as they finish."""
    if workers <= 1:
        yield from map(run_job, jobs)
        return
    # spawn: forking a process that runs torch threads can deadlock
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        for fut in cf.as_completed([pool.submit(run_job, j) for j in jobs]):
            yield fut.result()


def build_images(
    entry: str, records: list[sources.Record], image_size: int, mapper: Callable
) -> dict:
    """Decode the shards that are not done yet; write the manifest when all are."""
    images = prepared.images_dir(entry, image_size)
    os.makedirs(images, exist_ok=True)
    ranges = prepared.shard_ranges(len(records))
    todo = [
        (k, [r.image_path for r in records[a:b]], image_size)
        for k, (a, b) in enumerate(ranges)
        if not os.path.isfile(prepared.shard_path(images, k, "json"))
    ]
    from tqdm import tqdm  # a transformers dependency: rate and ETA

    total = sum(len(p) for _, p, _ in todo)
    with tqdm(total=total, unit="img", desc=f"{image_size}px shards", file=sys.stderr) as bar:
        for k, pixels, bad in mapper(todo):
            prepared.write_shard(images, k, pixels, bad)
            bar.update(len(pixels))
    bad = 0
    for k in range(len(ranges)):
        with open(prepared.shard_path(images, k, "json")) as fh:
            bad += len(json.load(fh)["bad"])
    summary = {
        "version": prepared.VERSION,
        "images": len(records),
        "shards": len(ranges),
        "shard_size": prepared.SHARD,
        "image_size": image_size,
        "undecodable": bad,
        "decoded_this_run": total,
    }
    with atomic_file(os.path.join(images, "manifest.json")) as tmp, open(tmp, "w") as fh:
        json.dump(summary, fh, indent=1)
    return summary


def prepare(
    cfg: config.Config, workers: int, mapper: Callable | None = None, out: str = ""
) -> dict:
    """Build (or finish) the prepared cache of `cfg`'s source; returns its summary.
    `mapper(jobs)` yields `run_job` results (default: `workers` local processes)."""
    d = cfg.data
    entry = prepared.entry_dir(d.source, d.root, d.label_text, out)
    loaded = prepared.read_records(entry, d.source, d.root)
    if loaded is None:
        # cached: the launcher's data check has just read the source in this process
        loaded = sources.cached_records(d.source, d.root, d.label_text)
        prepared.write_records(entry, loaded)
        loaded = prepared.read_records(entry, d.source, d.root)
    mapper = mapper or functools.partial(local_map, workers=workers)
    summary = build_images(entry, loaded.records, d.image_size, mapper)
    if not out or os.path.abspath(out) == os.path.abspath(prepared.default_out()):
        sources.cached_records.cache_clear()  # the prepared records from now on
        from medflip.data import dataset  # tokens with the experiment's tokenizer

        dataset.build_train_dataset(cfg, dataset.build_tokenizer(cfg))
    splits = {s: sum(r.split == s for r in loaded.records) for s in sources.SPLITS}
    return {"entry": entry, **summary, "splits": splits, "skipped": dict(loaded.skipped.counts)}


def ensure(cfg: config.Config, mapper: Callable | None = None) -> None:
    """Prepare `cfg`'s real source unless its cache at `data.image_size` is complete. The
    sweep launcher calls it once before the first trial (`mapper`: Ray tasks on a cluster),
    so a real source is prepared instead of read by every worker."""
    if DATA_SOURCES[cfg.data.source].embedded:
        return  # an embedded corpus has its own render cache
    images = prepared.images_dir(
        prepared.entry_dir(cfg.data.source, cfg.data.root, cfg.data.label_text), cfg.data.image_size
    )
    if not prepared.is_complete(images):
        print(json.dumps(prepare(cfg, os.cpu_count() or 1, mapper)), file=sys.stderr)


def main(argv: list[str] | None = None, ray_mapper: Callable | None = None) -> int:
    """The CLI; `ray_mapper(address)` (from `medflip.sweep.prepare`) enables --address."""
    # the Ray form (python -m medflip.sweep.prepare) is this CLI with a mapper: its own name
    where = "sweep" if ray_mapper is not None else "data"
    p = argparse.ArgumentParser(prog=f"python -m medflip.{where}.prepare", description=__doc__)
    p.add_argument("--source", required=True, help="mimic-cxr, chexpert, openi or manifest")
    p.add_argument("--root", required=True, help="dataset root (or a manifest file)")
    p.add_argument(
        "--out",
        default="",
        help="cache dir (default $MEDFLIP_PREPARED, else "
        "<cache>/prepared; training reads the default)",
    )
    p.add_argument("--image-size", type=int, default=None, help="pixels per side")
    p.add_argument("--label-text", default=None, help="findings_impression or impression")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="local processes")
    p.add_argument(
        "--address", default=None, help="Ray cluster (python -m medflip.sweep.prepare only)"
    )
    p.add_argument("--variant", default="demo", help="the experiment's base config")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    sets = {"data.source": args.source, "data.root": args.root}
    if args.image_size is not None:
        sets["data.image_size"] = args.image_size
    if args.label_text is not None:
        sets["data.label_text"] = args.label_text
    try:
        cfg = config.apply_overrides(
            variants.get(args.variant), {**config.parse_sets(args.sets), **sets}
        )
        if args.workers < 1:
            raise config.ConfigError(f"--workers: must be >= 1, got {args.workers}")
        if args.address and ray_mapper is None:
            raise config.ConfigError(
                "--address: Ray runs from the sweep layer; use python -m medflip.sweep.prepare"
            )
        mapper = ray_mapper(args.address) if args.address else None
        summary = prepare(cfg, args.workers, mapper, args.out)
    except (config.ConfigError, sources.SourceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
