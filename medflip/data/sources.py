"""Published dataset layouts -> one list of `Record`s.

The entry point (`load_records`, `cached_records`, `partition`) over the registered layouts
(`medflip.data.layouts`, one module each; record types in `medflip.data.records`, also
re-exported here). Researchers bring their own credentialed data in the layout it is
published in:

- `mimic-cxr`: MIMIC-CXR-JPG (`files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg`,
  `mimic-cxr-2.*-metadata.csv(.gz)`, `-chexpert` (else `-negbio`) and `-split` CSVs) plus the
  MIMIC-CXR reports (`files/pXX/pNNNNNNNN/sNNNNNNNN.txt`, in `files/`, `mimic-cxr-reports/files/`
  under the root, or `mimic-cxr-reports/files/` beside it).
- `chexpert`: `train.csv` / `valid.csv` (Path prefixed `CheXpert-v1.0[-small]/`); no reports.
- `openi`: IU-Xray, `ecgen-radiology/*.xml` + PNGs in `NLMCXR_png/`, `images/` or the root.
- `manifest`: a CSV or Parquet table with `image_path` (relative to the table or absolute),
  `report`, optional label columns named like OBSERVATIONS, `patient_id`, `study_id`, `split`,
  `view`.

A missing root or metadata file is one `SourceError` naming the path and what was expected.
Missing images and empty reports are skipped, counted in `SkipCounts` and logged once; images
are only decoded later (`read_image`), where the dataset skips and counts corrupt files.
"""

from __future__ import annotations

import functools
import logging
import os

from medflip.data import layouts, prepared
from medflip.data.records import (  # noqa: F401 (re-exported: the data layer's vocabulary)
    DEFAULT_LABEL_TEXT,
    HOLDOUT_SHARE,
    LABEL_TEXTS,
    SPLITS,
    UNSPLIT_TEST_SHARE,
    ImageError,
    LoadedSource,
    Record,
    SkipCounts,
    SourceError,
    fill_splits,
    hash_fraction,
    normalize_split,
    parse_labels,
    read_csv,
    read_image,
    soft_target_labels,
    text_labels,
    training_text,
)
from medflip.registry import DATA_SOURCES

log = logging.getLogger("medflip.data")

# ---------------------------------------------------------------- entry point


def load_records(source: str, root: str, label_text: str = DEFAULT_LABEL_TEXT) -> LoadedSource:
    """Read `root` in the published layout of `source` into records (+ what was skipped).

    Raises `SourceError` if the root or a required metadata file is missing; everything
    else that is wrong with single items is skipped, counted and logged once.
    """
    if DATA_SOURCES[source].embedded:
        raise SourceError(f"data.source: {source!r} is embedded; it has no records to read")
    skipped = SkipCounts()
    records = layouts.get(source).read(root, skipped, label_text)
    fill_splits(records)
    skipped.log(f"{source} at {root}")
    if not records:
        raise SourceError(f"{root}: no usable {source} records (skipped: {skipped})")
    log.info("%s: %d records from %s", source, len(records), root)
    return LoadedSource(source, os.path.abspath(root), records, skipped)


@functools.lru_cache(maxsize=2)
def cached_records(source: str, root: str, label_text: str = DEFAULT_LABEL_TEXT) -> LoadedSource:
    """`load_records`, once per process: training data and evaluation sets share one read.
    A prepared cache of (source, root, label_text) is read instead when there is one."""
    loaded = prepared.read_records(prepared.entry_dir(source, root, label_text), source, root)
    if loaded is not None:
        log.info("%s: %d records from the prepared cache", source, len(loaded.records))
        return loaded
    return load_records(source, root, label_text)


def load_image(record: Record, image_size: int):
    """float32 [H, W] in [0, 1]: from the prepared shards when the record came from a
    prepared cache at this size, else decoded from its file (`read_image`)."""
    pixels = prepared.pixels_for([record], image_size) if record.prepared else None
    if pixels is None:
        return read_image(record.image_path, image_size)
    return pixels[0].astype("float32") / 255.0


def is_frontal(view: str) -> bool:
    """PA / AP (and their decubitus/axial variants) or unknown; laterals are left out, as
    in MedCLIP/GLoRIA, because the towers are trained and evaluated on frontal films."""
    view = view.strip().upper()
    return view == "" or view.startswith(("PA", "AP"))


def partition(records: list[Record]) -> tuple[list[Record], list[Record]]:
    """(train, evaluation) frontal records, disjoint by patient.

    Evaluation = the official validate/test splits plus HOLDOUT_SHARE of the training
    patients (by a hash of the id, so CheXpert's 234 validation images are not all there is
    to sample 5x200 from); training = every other patient.
    """
    held = {
        r.patient_id
        for r in records
        if r.split != "train" or hash_fraction("holdout:" + r.patient_id) < HOLDOUT_SHARE
    }
    frontal = [r for r in records if is_frontal(r.view)]
    return (
        [r for r in frontal if r.patient_id not in held],
        [r for r in frontal if r.patient_id in held],
    )
