"""Layout `manifest`: a generic CSV/Parquet manifest (image_path, report, labels, ...).

Named in `medflip.registry.DATA_SOURCES`.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from medflip.data.labels import OBSERVATIONS
from medflip.data.layouts import Layout
from medflip.data.records import (
    Record,
    SkipCounts,
    SourceError,
    normalize_split,
    parse_labels,
    read_csv,
    require_dir,
    soft_target_labels,
    training_text,
)

_NO_LABELS = np.full(len(OBSERVATIONS), np.nan, dtype=np.float32)


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
    """A CSV/Parquet table; label columns are the study's labels, else (no label columns,
    or all of a row's label cells blank: per row) they are extracted from `report`; the
    soft targets follow the label policy. A bad label value stops the read, naming the
    row, column, value and what is allowed. A row with a report and an
    empty (or absent) image_path is a text-only record (image_path "")."""
    path = _manifest_path(root)
    rows, columns = _manifest_rows(path)
    if "image_path" not in columns:
        raise SourceError(f"{path}: missing column image_path")
    has_labels = any(c in OBSERVATIONS for c in columns)
    base = os.path.dirname(os.path.abspath(path))
    records = []
    for k, row in enumerate(rows):
        named = _clean(row["image_path"])
        image = os.path.join(base, named) if named else ""
        split = normalize_split(_clean(row.get("split")), path)  # a bad value stops the run
        raw = _clean(row.get("report"))
        report = training_text(raw) or None
        if image and not os.path.isfile(image):
            skipped.add("missing image", image)
            if report is None:
                continue
            image = ""  # its report is still kept, as a text-only record
        if not image and report is None:
            skipped.add("no image and no report", f"{path} row {k + 2}")
            continue
        if report is None and "report" in columns:
            skipped.add("empty report", f"{path} row {k + 2}")
        try:
            table = parse_labels(row, f"{path} row {k + 2}") if has_labels else None
        except ValueError as exc:  # a typo in one's own table: say which cell, stop
            raise SourceError(str(exc)) from None
        if table is not None and np.isnan(table).all():
            table = None  # this row's label cells are all blank: its report's labels, per row
        labels, text = soft_target_labels(table, raw if report else None, label_text)
        if labels is None:
            labels = text = _NO_LABELS.copy()
        if report is None and np.isnan(labels).all():
            skipped.add("no report and no labels", image)
            continue
        where = image or f"{path} row {k + 2}"
        patient = _clean(row.get("patient_id")) or _clean(row.get("study_id")) or where
        study = _clean(row.get("study_id")) or where
        view = _clean(row.get("view"))
        records.append(Record(image, report, labels, patient, study, view, split, text))
    return records


LAYOUT = Layout(read=read_manifest)
