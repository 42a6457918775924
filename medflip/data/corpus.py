"""Studies as arrays: images, training texts, report labels and image labels.

The synthetic corpus is rendered once per (seed, index range, image size, generator code)
into the on-disk cache as uint8 and memory-mapped afterwards, so training never waits on
the renderer; real sources keep file paths and decode lazily with `sources.read_image`.
Pixel values everywhere are normalised by the one pair of constants here.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import multiprocessing as mp
import os
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from medflip.data import prepared
from medflip.data.cache import atomic_dir, cache_dir, code_version, digest, locked  # noqa: F401
from medflip.data.records import Record, read_image, training_text
from medflip.data.synthetic import SyntheticCXR

log = logging.getLogger("medflip.data")

# Fixed pixel normalisation (images in [0, 1]): roughly the corpus mean and spread, and
# the same for every run so that checkpoints and evaluation sets agree.
IMAGE_MEAN, IMAGE_STD = 0.5, 0.25
_CHUNK = 1000  # studies per render task
_PARALLEL_FROM = 4000  # fewer studies render in-process (process start-up is not free)


def normalize(images):
    """[0, 1] pixels -> model input: (x - IMAGE_MEAN) / IMAGE_STD (numpy or torch)."""
    return (images - IMAGE_MEAN) / IMAGE_STD


@dataclass
class Corpus:
    """N studies (one image each); pixels in memory/mmap (synthetic) or files (real)."""

    texts: list[str]  # training text (IMPRESSION + FINDINGS)
    labels: np.ndarray  # float32 [N, 14] report-coded 1 / 0 / -1 / NaN
    # float32 [N, 14] the image side of the soft targets: its own study's report labels,
    # on every source (a real dataset knows nothing else; the synthetic generator's truth
    # is for evaluation sets only, as radiologist labels would be)
    image_labels: np.ndarray
    groups: np.ndarray  # int64 [N] study code: unpaired texts come from another study
    image_size: int
    pixels: np.ndarray | None = None  # uint8 [N, H, W] (or prepared.Pixels, memory-mapped)
    paths: list[str] | None = None  # image files, decoded on access
    tokens_dir: str = ""  # where token ids of these texts are cached (a prepared entry)

    def __len__(self) -> int:
        return len(self.texts)

    def image(self, i: int) -> np.ndarray:
        """float32 [H, W] in [0, 1]; raises sources.ImageError for an undecodable file."""
        if self.pixels is not None:
            return self.pixels[i].astype(np.float32) / 255.0
        return read_image(self.paths[i], self.image_size)


# What the synthetic corpus (pixels, report texts, labels, training_text) depends on.
GENERATOR_CODE = ("synthetic/*.py", "layouts/synthetic.py", "labels*.py", "records.py")


def to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)


def _render_chunk(seed: int, start: int, stop: int, image_size: int):
    """Render studies [start, stop): (uint8 [n, H, W], texts, report labels [n, 14])."""
    data = SyntheticCXR(seed, stop, image_size)
    n = stop - start
    pixels = np.empty((n, image_size, image_size), np.uint8)
    labels = np.empty((n, 14), np.float32)
    texts = []
    for j, i in enumerate(range(start, stop)):
        item = data[i]
        pixels[j] = to_uint8(item["image"])
        labels[j] = item["labels"]
        texts.append(training_text(item["report"]))
    return pixels, texts, labels


def _workers(count: int) -> int:
    if count < _PARALLEL_FROM:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, count // _CHUNK))


def _render_into(out: str, seed: int, start: int, stop: int, image_size: int) -> None:
    """Render into directory `out`: images.npy (uint8), labels.npy, texts.json."""
    n = stop - start
    pixels = np.lib.format.open_memmap(
        os.path.join(out, "images.npy"), "w+", np.uint8, (n, image_size, image_size)
    )
    labels = np.empty((n, 14), np.float32)
    texts: list[str] = [""] * n
    chunks = [(a, min(a + _CHUNK, stop)) for a in range(start, stop, _CHUNK)]

    def store(results) -> None:
        for (a, b), (p, t, lab) in zip(chunks, results, strict=True):
            lo, hi = a - start, b - start
            pixels[lo:hi], labels[lo:hi], texts[lo:hi] = p, lab, t

    workers = _workers(n)
    if workers == 1:
        store(_render_chunk(seed, a, b, image_size) for a, b in chunks)
    else:  # spawn: forking a process that runs Ray/torch threads can deadlock
        with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            store(
                pool.map(
                    _render_chunk,
                    repeat(seed),
                    [a for a, _ in chunks],
                    [b for _, b in chunks],
                    repeat(image_size),
                )
            )
    pixels.flush()
    np.save(os.path.join(out, "labels.npy"), labels)
    with open(os.path.join(out, "texts.json"), "w") as fh:
        json.dump(texts, fh)


def synthetic_corpus(seed: int, start: int, stop: int, image_size: int) -> Corpus:
    """Studies [start, stop) of corpus `seed`, rendered once into the cache, then mmapped."""
    code = code_version(*GENERATOR_CODE)
    key = digest(["synthetic-corpus-v1", str(seed), str(start), str(stop), str(image_size), code])
    path = os.path.join(cache_dir(), f"synthetic-{key}")
    if not os.path.isdir(path):
        with locked(path):
            if not os.path.isdir(path):
                log.info(
                    "rendering synthetic studies [%d, %d) at %d px into %s",
                    start,
                    stop,
                    image_size,
                    path,
                )
                with atomic_dir(path) as tmp:
                    _render_into(tmp, seed, start, stop, image_size)
    with open(os.path.join(path, "texts.json")) as fh:
        texts = json.load(fh)
    labels = np.load(os.path.join(path, "labels.npy"))
    return Corpus(
        texts,
        labels,
        labels.copy(),  # the image side: its own report's labels, as on real data
        np.arange(start, stop),
        image_size,
        pixels=np.load(os.path.join(path, "images.npy"), mmap_mode="r"),
    )


def records_corpus(records: list[Record], image_size: int, texts: list[str]) -> Corpus:
    """Real records (one image each) with the given training texts; images decoded lazily."""
    codes: dict[str, int] = {}
    groups = np.array([codes.setdefault(r.study_id, len(codes)) for r in records], np.int64)

    def stack(vectors) -> np.ndarray:  # [N, 14]
        vectors = list(vectors)
        return np.stack(vectors).astype(np.float32) if vectors else np.zeros((0, 14), np.float32)

    # soft targets: the labels of the text the tower reads; the image: its study's labels
    text_labels = stack(r.labels if r.text_labels is None else r.text_labels for r in records)
    labels = stack(r.labels for r in records)
    paths = [r.image_path for r in records]
    pixels = prepared.pixels_for(records, image_size)  # None: decode from the source files
    tokens_dir = records[0].prepared if records and pixels is not None else ""
    return Corpus(list(texts), text_labels, labels, groups, image_size, pixels, paths, tokens_dir)
