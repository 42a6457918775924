"""The prepared cache of a real source: read once by `python -m medflip.data.prepare`.

    <out>/<source>-<key>/            key: source, root, label policy, reader code (VERSION)
        records.parquet              one row per image: path, report, labels, split, ...
                                     (then one per text-only report, image_path "")
        skipped.json                 what the reader skipped and why
        images-<size>px/             per image size:
            shard-00000.npy          uint8 [SHARD, size, size], rows k*SHARD .. (k+1)*SHARD
            shard-00000.json         written after its .npy: the shard is done (+ bad rows)
            manifest.json            written last: every shard is done (counts, settings)
        tokens-<key>.npz             token ids of a training corpus, per tokenizer + texts

Every file is written under a temporary name and renamed, so a killed run leaves only
whole files and a re-run finishes the shards that are missing. Training memory-maps the
shards; `<out>` is `$MEDFLIP_PREPARED`, else `<cache dir>/prepared` (a location, not a
setting: it is not part of the config or its hash).
"""

from __future__ import annotations

import functools
import json
import os

import numpy as np

from medflip.data.cache import atomic_file, cache_dir, code_version, digest
from medflip.data.records import ImageError, LoadedSource, Record, SkipCounts, read_image

VERSION = "prepared-v1"  # bump when the layout or what a record holds changes
SHARD = 1024  # images per shard: 51 MB at 224 px, a Ray task's worth of decoding


def default_out() -> str:
    return os.environ.get("MEDFLIP_PREPARED") or os.path.join(cache_dir(), "prepared")


def entry_dir(source: str, root: str, label_text: str, out: str = "") -> str:
    code = code_version("layouts/*.py", "records.py", "sources.py", "labels*.py")
    key = digest([VERSION, source, os.path.abspath(root), label_text, code])
    return os.path.join(out or default_out(), f"{source}-{key}")


def images_dir(entry: str, image_size: int) -> str:
    return os.path.join(entry, f"images-{image_size}px")


def is_complete(images: str) -> bool:
    return os.path.isfile(os.path.join(images, "manifest.json"))


def shard_path(images: str, k: int, ext: str) -> str:
    return os.path.join(images, f"shard-{k:05d}.{ext}")


def shard_ranges(n: int) -> list[tuple[int, int]]:
    return [(a, min(a + SHARD, n)) for a in range(0, n, SHARD)]


# ---------------------------------------------------------------- records


def write_records(entry: str, loaded: LoadedSource) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(entry, exist_ok=True)
    recs = loaded.records + loaded.text_only  # images first: row k = shard row k
    table = pa.table(
        {
            "image_path": [r.image_path for r in recs],
            "report": [r.report for r in recs],
            "labels": [r.labels.tolist() for r in recs],
            "text_labels": [
                None if r.text_labels is None else r.text_labels.tolist() for r in recs
            ],
            "patient_id": [r.patient_id for r in recs],
            "study_id": [r.study_id for r in recs],
            "view": [r.view for r in recs],
            "split": [r.split for r in recs],
        }
    )
    with atomic_file(os.path.join(entry, "skipped.json")) as tmp, open(tmp, "w") as fh:
        json.dump({"counts": dict(loaded.skipped.counts), "examples": loaded.skipped.examples}, fh)
    with atomic_file(os.path.join(entry, "records.parquet")) as tmp:
        pq.write_table(table, tmp)


def read_records(entry: str, source: str, root: str) -> LoadedSource | None:
    """The records of a prepared entry (None if there is none): no source file is read."""
    path = os.path.join(entry, "records.parquet")
    if not os.path.isfile(path):
        return None
    import pyarrow.parquet as pq

    cols = pq.read_table(path).to_pydict()
    labels = np.asarray(cols["labels"], np.float32).reshape(-1, 14)  # [N, 14]
    records = [
        Record(
            cols["image_path"][k],
            cols["report"][k],
            labels[k],
            cols["patient_id"][k],
            cols["study_id"][k],
            cols["view"][k],
            cols["split"][k],
            None
            if cols["text_labels"][k] is None
            else np.asarray(cols["text_labels"][k], np.float32),
            prepared=entry,
            row=k,
        )
        for k in range(len(labels))
    ]
    with open(os.path.join(entry, "skipped.json")) as fh:
        saved = json.load(fh)
    skipped = SkipCounts()
    skipped.counts.update(saved["counts"])
    skipped.examples.update(saved["examples"])
    return LoadedSource(source, os.path.abspath(root), records, skipped)


# ---------------------------------------------------------------- images


def decode_shard(paths: list[str], image_size: int) -> tuple[np.ndarray, list[int]]:
    """(uint8 [n, size, size], rows that could not be decoded: left black)."""
    out = np.zeros((len(paths), image_size, image_size), np.uint8)
    bad = []
    for j, path in enumerate(paths):
        try:
            out[j] = np.rint(read_image(path, image_size) * 255.0).astype(np.uint8)
        except ImageError:
            bad.append(j)
    return out, bad


def write_shard(images: str, k: int, pixels: np.ndarray, bad: list[int]) -> None:
    with atomic_file(shard_path(images, k, "npy")) as tmp, open(tmp, "wb") as fh:
        np.save(fh, pixels)
    with atomic_file(shard_path(images, k, "json")) as tmp, open(tmp, "w") as fh:
        json.dump({"rows": len(pixels), "bad": bad}, fh)


@functools.lru_cache(maxsize=8)
def _shards(images: str) -> tuple[list[np.ndarray], frozenset[int]]:
    """Memory-mapped shards of a complete images dir and its undecodable rows."""
    with open(os.path.join(images, "manifest.json")) as fh:
        n = json.load(fh)["images"]
    arrays, bad = [], set()
    for k, (a, _) in enumerate(shard_ranges(n)):
        arrays.append(np.load(shard_path(images, k, "npy"), mmap_mode="r"))
        with open(shard_path(images, k, "json")) as fh:
            bad.update(a + j for j in json.load(fh)["bad"])
    return arrays, frozenset(bad)


class Pixels:
    """uint8 [len(rows), H, W] view of prepared shards, as `Corpus.pixels` (memory-mapped).
    A row that failed to decode at prepare time raises `ImageError`, as decoding would."""

    def __init__(self, images: str, rows: list[int], paths: list[str]):
        self.shards, self.bad = _shards(images)
        self.rows, self.paths = rows, paths

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> np.ndarray:
        row = self.rows[i]
        if row in self.bad:
            raise ImageError(f"{self.paths[i]}: cannot decode image (at prepare time)")
        return self.shards[row // SHARD][row % SHARD]  # [H, W]


def pixels_for(records: list[Record], image_size: int) -> Pixels | None:
    """The prepared pixels of `records` at `image_size`, if all of them have some."""
    entries = {r.prepared for r in records}
    if len(entries) != 1 or "" in entries:
        return None
    images = images_dir(entries.pop(), image_size)
    if not is_complete(images):
        return None
    return Pixels(images, [r.row for r in records], [r.image_path for r in records])
