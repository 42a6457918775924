"""Layout `mimic-cxr`: MIMIC-CXR-JPG + the MIMIC-CXR reports.

Named in `medflip.registry.DATA_SOURCES`.
"""

from __future__ import annotations

import os

import numpy as np

from medflip.data.layouts import Layout
from medflip.data.records import (
    Record,
    SkipCounts,
    SourceError,
    find_one,
    normalize_split,
    parse_labels,
    read_csv,
    require_dir,
    soft_target_labels,
    training_text,
)


def _read_report(path: str, skipped: SkipCounts) -> str | None:
    """A report file's raw text; None (counted) if it is unreadable or has no usable text."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            raw = fh.read()
    except OSError:
        skipped.add("unreadable report", path)
        return None
    if not training_text(raw):
        skipped.add("empty report", path)
        return None
    return raw


def _mimic_tables(root: str) -> tuple[str, str | None, str | None]:
    meta = find_one(
        root,
        ("mimic-cxr-2.*-metadata.csv.gz", "mimic-cxr-2.*-metadata.csv"),
        "MIMIC-CXR-JPG metadata file",
    )
    labels = find_one(
        root,
        ("mimic-cxr-2.*-chexpert.csv.gz", "mimic-cxr-2.*-chexpert.csv"),
        "labels",
        required=False,
    )
    labels = labels or find_one(
        root, ("mimic-cxr-2.*-negbio.csv.gz", "mimic-cxr-2.*-negbio.csv"), "labels", required=False
    )
    split = find_one(
        root, ("mimic-cxr-2.*-split.csv.gz", "mimic-cxr-2.*-split.csv"), "split", required=False
    )
    return meta, labels, split


def _mimic_study_reports(root: str, skipped: SkipCounts):
    """(subject, study) -> raw report text, read from the first reports dir that has it."""
    dirs = [
        os.path.join(root, "files"),
        os.path.join(root, "mimic-cxr-reports", "files"),
        os.path.join(os.path.dirname(root), "mimic-cxr-reports", "files"),
    ]
    dirs = [d for d in dirs if os.path.isdir(d)]
    cache: dict[tuple[str, str], str | None] = {}

    def lookup(subject: str, study: str) -> str | None:
        key = (subject, study)
        if key not in cache:
            rel = os.path.join(f"p{subject[:2]}", f"p{subject}", f"s{study}.txt")
            hits = [os.path.join(d, rel) for d in dirs]
            path = next((h for h in hits if os.path.isfile(h)), None)
            if path is None:
                skipped.add("missing report", rel)
            cache[key] = _read_report(path, skipped) if path else None
        return cache[key]

    return lookup


def read_mimic(root: str, skipped: SkipCounts, label_text: str) -> list[Record]:
    """MIMIC-CXR-JPG + reports. CSV labels are the study's labels; the soft targets follow
    the label policy (`sources.soft_target_labels`). A study whose image files are all
    absent but whose report exists is one text-only record (image_path "")."""
    root = require_dir(root, "MIMIC-CXR-JPG: files/ and mimic-cxr-2.*-metadata.csv(.gz)")
    if not os.path.isdir(os.path.join(root, "files")):
        raise SourceError(f"{root}: no files/ directory (expected files/pXX/pNNNNNNNN/sNNNNNNNN/)")
    meta_path, labels_path, split_path = _mimic_tables(root)
    table_labels = {}
    for row in read_csv(labels_path, ("subject_id", "study_id")) if labels_path else ():
        try:
            table_labels[(row["subject_id"], row["study_id"])] = parse_labels(row, labels_path)
        except ValueError:
            skipped.add("bad label value", f"{labels_path} study {row['study_id']}")
    splits = {}
    for row in read_csv(split_path, ("dicom_id", "split")) if split_path else ():
        splits[row["dicom_id"]] = normalize_split(row["split"], split_path)
    report_of = _mimic_study_reports(root, skipped)
    derived: dict[tuple[str, str], np.ndarray] = {}
    records, imaged, listed = [], set(), {}
    for row in read_csv(meta_path, ("dicom_id", "subject_id", "study_id", "ViewPosition")):
        subject, study, dicom = row["subject_id"], row["study_id"], row["dicom_id"]
        listed.setdefault((subject, study), splits.get(dicom, ""))
        rel = os.path.join("files", f"p{subject[:2]}", f"p{subject}", f"s{study}", f"{dicom}.jpg")
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            skipped.add("missing image", path)
            continue
        raw = report_of(subject, study)
        table = table_labels.get((subject, study))
        if table is None and raw is None:
            skipped.add("no report and no labels", path)
            continue
        if (subject, study) not in derived:  # one extraction per study, not per image
            derived[(subject, study)] = soft_target_labels(table, raw, label_text)
        labels, text = derived[(subject, study)]
        view, split = row["ViewPosition"] or "", splits.get(dicom, "")
        report = training_text(raw) if raw else None
        records.append(Record(path, report, labels, subject, study, view, split, text))
        imaged.add((subject, study))
    for (subject, study), split in listed.items():  # every image file absent: text-only
        raw = None if (subject, study) in imaged else report_of(subject, study)
        if raw is not None:
            table = table_labels.get((subject, study))
            labels, text = soft_target_labels(table, raw, label_text)
            report = training_text(raw)
            records.append(Record("", report, labels, subject, study, "", split, text))
    return records


LAYOUT = Layout(read=read_mimic)
