"""Shared record types and helpers every layout uses; imports no reader (layouts/ import it).

`Record` (one image with its study's report and labels), `SkipCounts`, `LoadedSource`,
the errors, image decoding (`read_image`), the text the tower reads (`training_text`), the
label policy (`text_labels`, `soft_target_labels`) and the CSV / split / label-cell helpers.
"""

from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from medflip.data import labels as labeling
from medflip.data import labels_rules as labeling_rules
from medflip.data.labels import OBSERVATIONS

log = logging.getLogger("medflip.data")

SPLITS = ("train", "validate", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "validate",
    "valid": "validate",
    "validate": "validate",
    "validation": "validate",
    "test": "test",
}
# Sources without an official split: this share of patients (by a hash of the id) is "test".
UNSPLIT_TEST_SHARE = 0.2
# Training patients also held out for evaluation (see `partition`).
HOLDOUT_SHARE = 0.05


class SourceError(ValueError):
    """A dataset root, metadata file or column that is missing or malformed (names the path)."""


class ImageError(OSError):
    """An image file that cannot be decoded (corrupt, truncated, not an image)."""


@dataclass
class Record:
    """One image with its study's report and labels."""

    image_path: str  # "" = a text-only record: a report whose image files are absent
    report: str | None  # IMPRESSION then FINDINGS, whitespace-collapsed; None = no report
    labels: np.ndarray  # float32 [14] in OBSERVATIONS order: 1 / 0 / -1 / NaN (blank)
    patient_id: str
    study_id: str
    view: str = ""  # "PA", "AP", "LATERAL", ... ("" = unknown)
    split: str = ""  # "train" | "validate" | "test"
    # float32 [14]: the labels of the text the tower reads, under the label policy
    # (`text_labels`); None = no report (soft targets then use `labels`).
    text_labels: np.ndarray | None = None
    prepared: str = ""  # the prepared-cache entry this record was read from ("" = the source)
    row: int = -1  # its row in that entry's image shards


@dataclass
class SkipCounts:
    """What was skipped and why (reason -> count), with one example path per reason."""

    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)

    def add(self, reason: str, where: str = "") -> None:
        self.counts[reason] += 1
        self.examples.setdefault(reason, where)

    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        parts = [f"{why}: {n} (e.g. {self.examples[why]})" for why, n in self.counts.items()]
        return "; ".join(parts) or "nothing"

    def log(self, what: str) -> None:
        if self.counts:
            log.warning("%s: skipped %d: %s", what, self.total(), self)


@dataclass
class LoadedSource:
    """A source's records. Reports whose image files are all absent are records with
    image_path "" (a reader keeps them rather than dropping the report); they are moved
    to `text_only` here, the one place, so `records` always has an image to decode."""

    source: str
    root: str
    records: list[Record]
    skipped: SkipCounts
    text_only: list[Record] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.text_only = [*self.text_only, *(r for r in self.records if not r.image_path)]
        self.records = [r for r in self.records if r.image_path]


# ---------------------------------------------------------------- images and report text


def read_image(path: str, image_size: int) -> np.ndarray:
    """Decode `path` to float32 [image_size, image_size] in [0, 1], grayscale.

    Aspect-preserving resize of the shorter side to `image_size`, then a center crop: chest
    films are near-square, so the crop loses only thin top/bottom margins, where padding
    would waste pixels (GLoRIA/MedCLIP's resize + center crop). 16-bit images are scaled by
    their maximum. Raises `ImageError` naming the file if it cannot be decoded.
    """
    try:
        with Image.open(path) as img:
            img.draft("L", (image_size, image_size))  # JPEG: DCT-scaled decode, 2-5x faster
            if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
                arr = np.asarray(img, dtype=np.float32)
                img = Image.fromarray((arr * (255.0 / max(float(arr.max()), 1.0))).astype(np.uint8))
            img = img.convert("L")
            w, h = img.size
            scale = image_size / min(w, h)
            nw, nh = max(image_size, round(w * scale)), max(image_size, round(h * scale))
            img = img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=3.0)
            left, top = (nw - image_size) // 2, (nh - image_size) // 2
            img = img.crop((left, top, left + image_size, top + image_size))
            return np.asarray(img, dtype=np.float32) / 255.0  # [H, W]
    except (OSError, ValueError, SyntaxError) as err:  # PIL's ways of saying "corrupt"
        raise ImageError(f"{path}: cannot decode image ({err})") from err


def training_text(report: str) -> str:
    """The text medflip trains on: IMPRESSION then FINDINGS (no EXAMINATION/INDICATION/...).

    The impression comes first so that truncation to `data.max_text_len` keeps it. A report
    with neither section gives its last paragraph (MIMIC's own section-extraction fallback);
    text without any section headers is used whole. Whitespace is collapsed.
    """
    if not labeling_rules.SECTION_HEADER.search(report):
        return " ".join(report.split())
    parts = [labeling.section(report, "impression"), labeling.section(report, "findings")]
    text = " ".join(" ".join(parts).split())
    if text:
        return text
    paragraphs = [p for p in re.split(r"\n\s*\n", report) if p.strip()]
    return " ".join(paragraphs[-1].split()) if paragraphs else ""


# The report text the labels behind the soft targets are extracted from (data.label_text).
# "findings_impression": the text the tower reads (`training_text`), so a finding stated
# only in FINDINGS is in the soft targets; "impression": CheXpert's rule (IMPRESSION, else
# FINDINGS; a dataset's own label table wins).
LABEL_TEXTS = ("findings_impression", "impression")
DEFAULT_LABEL_TEXT = LABEL_TEXTS[0]


def text_labels(raw: str, label_text: str) -> np.ndarray:
    """float32 [14] for a raw report under policy `label_text` (one decision, every reader)."""
    if label_text not in LABEL_TEXTS:
        raise SourceError(f"data.label_text: {label_text!r} is not one of {', '.join(LABEL_TEXTS)}")
    if label_text == "impression":
        return labeling.label_vector(raw)
    return labeling.label_vector(training_text(raw))


def soft_target_labels(table: np.ndarray | None, raw: str | None, label_text: str):
    """(labels, text_labels) of one study: `labels` (evaluation, what the image shows) is
    the dataset's own table when it has one, else the text's; `text_labels` (soft targets)
    follow the policy -- CheXpert's rule keeps the table, the default reads the text."""
    derived = None
    if raw is not None and not (label_text == "impression" and table is not None):
        derived = text_labels(raw, label_text)
    if derived is None:
        derived = table
    return (table if table is not None else derived), derived


# ---------------------------------------------------------------- helpers


def _open_text(path: str):
    if path.endswith(".gz"):
        return gzip.open(path, "rt", newline="", encoding="utf-8")
    return open(path, newline="", encoding="utf-8")


def read_csv(path: str, required: tuple[str, ...] = ()) -> Iterator[dict[str, str]]:
    """Rows of a (possibly gzipped) CSV; `SourceError` if a required column is missing."""
    with _open_text(path) as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise SourceError(f"{path}: missing column(s) {', '.join(missing)}")
        yield from reader


def parse_labels(row: dict, where: str) -> np.ndarray:
    """Label columns named like OBSERVATIONS (1/0/-1/blank) -> float32 [14]; NaN if absent."""
    out = np.full(len(OBSERVATIONS), np.nan, dtype=np.float32)
    for k, name in enumerate(OBSERVATIONS):
        cell = row.get(name)
        if cell is None or (isinstance(cell, float) and np.isnan(cell)) or str(cell).strip() == "":
            continue
        try:
            value = float(cell)
        except ValueError:
            value = math.nan  # "yes", "pos", ...: refused below with what is allowed
        if value not in (1.0, 0.0, -1.0):
            raise ValueError(
                f"{where}: {name}={cell!r} is not a label value; allowed: 1 (positive), "
                "0 (negative), -1 (uncertain) or blank (not mentioned)"
            )
        out[k] = value
    return out


def normalize_split(value: str, where: str) -> str:
    key = str(value or "").strip().lower()
    if key == "":
        return ""
    if key not in _SPLIT_ALIASES:
        raise SourceError(f"{where}: split {value!r} is not one of {', '.join(SPLITS)}")
    return _SPLIT_ALIASES[key]


def hash_fraction(key: str) -> float:
    """A stable number in [0, 1) for an id (the same in every process and run)."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:12], 16) / 16**12


def fill_splits(records: list[Record]) -> None:
    """Records without an official split: UNSPLIT_TEST_SHARE of patients -> test, by hash."""
    for r in records:
        if not r.split:
            r.split = "test" if hash_fraction(r.patient_id) < UNSPLIT_TEST_SHARE else "train"


def require_dir(path: str, what: str) -> str:
    if not path or not os.path.isdir(path):
        raise SourceError(f"{path!r}: dataset root not found (expected {what})")
    return os.path.abspath(path)


def find_one(root: str, patterns: tuple[str, ...], what: str, required: bool = True) -> str | None:
    """The newest-versioned file matching the first pattern that matches anything."""
    for pattern in patterns:
        hits = sorted(glob.glob(os.path.join(root, pattern)), key=_version_key)
        if hits:
            return hits[-1]
    if required:
        raise SourceError(f"{root}: no {what} found (expected {' or '.join(patterns)})")
    return None


def _version_key(path: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", os.path.basename(path)))
