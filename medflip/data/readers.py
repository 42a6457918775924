"""One reader per published layout; each returns records and counts what it skipped.

Called through `medflip.data.sources.load_records` (which documents the layouts).
"""

from __future__ import annotations

import glob
import os
import re
import xml.etree.ElementTree as ET

import numpy as np

from medflip.data.labels import OBSERVATIONS
from medflip.data.sources import (
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

_NO_LABELS = np.full(len(OBSERVATIONS), np.nan, dtype=np.float32)


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


# ---------------------------------------------------------------- MIMIC-CXR-JPG


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
    the label policy (`sources.soft_target_labels`)."""
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
    records = []
    for row in read_csv(meta_path, ("dicom_id", "subject_id", "study_id", "ViewPosition")):
        subject, study, dicom = row["subject_id"], row["study_id"], row["dicom_id"]
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
    return records


# ---------------------------------------------------------------- CheXpert

_CHEXPERT_PREFIX = re.compile(r"^CheXpert-v1\.0(-small)?/")
# (candidate tables, split): the first existing table of each entry is read.
_CHEXPERT_TABLES = (
    (("train.csv",), "train"),
    (("valid.csv",), "validate"),
    (("test_labels.csv", "test.csv"), "test"),
)


def _chexpert_table(base: str, table: str, split: str, skipped: SkipCounts) -> list[Record]:
    records = []
    for row in read_csv(table, ("Path",)):
        rel = _CHEXPERT_PREFIX.sub("", row["Path"].strip())
        path = os.path.join(base, rel)
        if not os.path.isfile(path):
            skipped.add("missing image", path)
            continue
        try:
            labels = parse_labels(row, table)
        except ValueError:
            skipped.add("bad label value", f"{table}: {rel}")
            continue
        parts = rel.split("/")  # train/patient00001/study1/view1_frontal.jpg
        patient = parts[1] if len(parts) > 3 else rel
        study = "/".join(parts[1:3]) if len(parts) > 3 else rel
        frontal = row.get("Frontal/Lateral", "Frontal") != "Lateral"
        view = (row.get("AP/PA") or "").strip() if frontal else "LATERAL"
        records.append(Record(path, None, labels, patient, study, view, split))
    return records


def read_chexpert(root: str, skipped: SkipCounts, label_text: str) -> list[Record]:
    """CheXpert train/valid(/test) CSVs; images without reports (report None), so the
    label policy does not apply: soft targets use the table."""
    root = require_dir(root, "CheXpert: train.csv and valid.csv")
    base = next(
        (
            d
            for d in (
                root,
                os.path.join(root, "CheXpert-v1.0-small"),
                os.path.join(root, "CheXpert-v1.0"),
            )
            if os.path.isfile(os.path.join(d, "train.csv"))
        ),
        None,
    )
    if base is None:
        raise SourceError(
            f"{root}: no CheXpert train.csv (expected it in the root or in "
            "CheXpert-v1.0-small/ or CheXpert-v1.0/)"
        )
    records = []
    for names, split in _CHEXPERT_TABLES:
        tables = [os.path.join(base, n) for n in names if os.path.isfile(os.path.join(base, n))]
        if tables:
            records += _chexpert_table(base, tables[0], split, skipped)
    return records


# ---------------------------------------------------------------- OpenI / IU-Xray


def _openi_image_dirs(root: str) -> list[str]:
    cands = ("NLMCXR_png", "images", os.path.join("images", "images_normalized"), "")
    return [os.path.join(root, c) for c in cands if os.path.isdir(os.path.join(root, c))]


def _openi_report(tree: ET.ElementTree) -> str:
    """The FINDINGS and IMPRESSION AbstractTexts as a headed report ("" if both are empty)."""
    parts = {}
    for node in tree.iter("AbstractText"):
        label = (node.get("Label") or "").upper()
        if label in ("FINDINGS", "IMPRESSION"):
            parts[label] = " ".join("".join(node.itertext()).split())
    return "\n".join(f"{k}: {v}" for k, v in sorted(parts.items()) if v)


def read_openi(root: str, skipped: SkipCounts, label_text: str) -> list[Record]:
    """IU-Xray: one XML report per study, several PNGs (`parentImage` ids) per report."""
    root = require_dir(root, "OpenI: ecgen-radiology/*.xml and NLMCXR_png/ (or images/)")
    xml_dir = os.path.join(root, "ecgen-radiology")
    if not os.path.isdir(xml_dir):
        raise SourceError(f"{root}: no ecgen-radiology/ directory (expected the OpenI XML reports)")
    image_dirs = _openi_image_dirs(root)
    records = []
    for xml_path in sorted(glob.glob(os.path.join(xml_dir, "*.xml"))):
        try:
            tree = ET.parse(xml_path)
        except (ET.ParseError, OSError):
            skipped.add("corrupt report", xml_path)
            continue
        raw = _openi_report(tree)
        if not raw:
            skipped.add("empty report", xml_path)
            continue
        report = training_text(raw)
        labels, text = soft_target_labels(None, raw, label_text)
        uid = tree.find("uId")
        study = uid.get("id") if uid is not None and uid.get("id") else os.path.basename(xml_path)
        for node in tree.iter("parentImage"):
            name = f"{node.get('id')}.png"
            path = next(
                (
                    os.path.join(d, name)
                    for d in image_dirs
                    if os.path.isfile(os.path.join(d, name))
                ),
                None,
            )
            if path is None:
                skipped.add("missing image", name)
                continue
            records.append(Record(path, report, labels, study, study, text_labels=text))
    return records


# ---------------------------------------------------------------- generic manifest


def _manifest_path(root: str) -> str:
    if os.path.isfile(root):
        return root
    require_dir(root, "a manifest.csv or manifest.parquet")
    for name in ("manifest.parquet", "manifest.csv", "manifest.csv.gz"):
        if os.path.isfile(os.path.join(root, name)):
            return os.path.join(root, name)
    tables = glob.glob(os.path.join(root, "*.csv")) + glob.glob(os.path.join(root, "*.parquet"))
    if len(tables) == 1:
        return tables[0]
    raise SourceError(
        f"{root}: expected manifest.parquet or manifest.csv (found {len(tables)} candidate tables)"
    )


def _manifest_rows(path: str) -> tuple[list[dict], list[str]]:
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return table.to_pylist(), table.column_names
    rows = list(read_csv(path))
    return rows, list(rows[0]) if rows else []


def _clean(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip()


def read_manifest(root: str, skipped: SkipCounts, label_text: str) -> list[Record]:
    """A CSV/Parquet table; label columns are the study's labels, else they are extracted
    from `report`; the soft targets follow the label policy."""
    path = _manifest_path(root)
    rows, columns = _manifest_rows(path)
    if "image_path" not in columns:
        raise SourceError(f"{path}: missing column image_path")
    has_labels = any(c in OBSERVATIONS for c in columns)
    base = os.path.dirname(os.path.abspath(path))
    records = []
    for k, row in enumerate(rows):
        image = os.path.join(base, _clean(row["image_path"]))
        split = normalize_split(_clean(row.get("split")), path)  # a bad value stops the run
        if not os.path.isfile(image):
            skipped.add("missing image", image)
            continue
        raw = _clean(row.get("report"))
        report = training_text(raw) or None
        if report is None and "report" in columns:
            skipped.add("empty report", f"{path} row {k + 2}")
        try:
            table = parse_labels(row, path) if has_labels else None
        except ValueError:
            skipped.add("bad label value", f"{path} row {k + 2}")
            continue
        labels, text = soft_target_labels(table, raw if report else None, label_text)
        if labels is None:
            labels = text = _NO_LABELS.copy()
        if report is None and np.isnan(labels).all():
            skipped.add("no report and no labels", image)
            continue
        patient = _clean(row.get("patient_id")) or _clean(row.get("study_id")) or image
        study = _clean(row.get("study_id")) or image
        view = _clean(row.get("view"))
        records.append(Record(image, report, labels, patient, study, view, split, text))
    return records
